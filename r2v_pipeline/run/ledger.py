"""The run ledger: what became of every shot, by fingerprint, in SQLite (WAL).

Each state change is one committed transaction, so a run killed at any moment
(even ``kill -9``) leaves the ledger consistent and the next run resumes:

    planned → submitting → submitted (task id) → succeeded → downloaded
                    ↘ ambiguous          ↘ failed / expired

(every allowed move is declared in states.TRANSITIONS, and checked where it is written)

``submitting`` is written *before* the request goes out: a run that finds it
never learned whether a task was created, and reconciles instead of
resubmitting. The task id is committed before the first poll.

A shot is claimed by one live run at a time (runs heartbeat; a dead owner's
claims lapse), and tasks in progress are counted per account across runs, so
two overlapping runs neither submit the same shot twice nor overfill the
provider's slots.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Iterator

from .ledger_store import (
    DEAD_RUN_IN_FLIGHT,
    FOLLOWING,
    SENT_THROUGH,
    Charge,
    Lost,
    RunRecord,
    ShotRecord,
    refuse_if_taken,
    second_task_row,
)
from .states import IN_PROGRESS, TRANSITIONS, UNFINISHED, LedgerState, check_transition

LEDGER_FILE = "ledger.sqlite"
HEARTBEAT_STALE = 60.0  # seconds without a heartbeat before another host's run counts as gone


_SCHEMA = """
CREATE TABLE IF NOT EXISTS shots (
    fingerprint TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    account TEXT NOT NULL,
    endpoint TEXT,
    state TEXT NOT NULL,
    task_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    output TEXT,
    submit_started REAL,
    submitted_at REAL,
    started_at REAL,
    finished_at REAL,
    downloaded_at REAL,
    result_url TEXT,
    usage TEXT,
    sha256 TEXT,
    bytes INTEGER,
    code TEXT,
    message TEXT,
    updated_at REAL NOT NULL,
    submitted_by TEXT,
    request TEXT,
    planned_seconds REAL,
    billed_seconds REAL
);
CREATE INDEX IF NOT EXISTS shots_by_account ON shots (account, state);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    account TEXT NOT NULL,
    model TEXT NOT NULL,
    created_at REAL NOT NULL
);
-- The key (its hash) a task's submit went out with, for tasks that were their submit's own
-- answer: a table apart, so a ledger stays readable and writable by an earlier r2v.
CREATE TABLE IF NOT EXISTS task_keys (
    task_id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    key TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS task_keys_by_key ON task_keys (account, key, created_at);
CREATE TABLE IF NOT EXISTS timings (
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    resolution TEXT NOT NULL,
    duration INTEGER NOT NULL,
    seconds REAL NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS timings_by_model ON timings (provider, model, at);
CREATE TABLE IF NOT EXISTS uploads (
    sha256 TEXT NOT NULL,
    account TEXT NOT NULL,
    model TEXT NOT NULL,
    url TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (sha256, account, model)
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    pid_start TEXT
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT
);
-- Every task a run saw succeed (so billed), once per task: what spend over time is summed from.
-- billed_seconds is the provider's figure, NULL where it gives none (the plan's figure stands).
CREATE TABLE IF NOT EXISTS charges (
    task_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    key TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    account TEXT NOT NULL,
    planned_seconds REAL,
    billed_seconds REAL,
    cost REAL,
    at REAL NOT NULL
);
-- Runs that ended (a killed run leaves none; its charges still name it).
CREATE TABLE IF NOT EXISTS run_history (
    run_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    exit_code INTEGER NOT NULL,
    episodes TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    at REAL NOT NULL,
    fingerprint TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT
);
"""


_COLUMNS = [f.name for f in fields(ShotRecord)]
_STATE = _COLUMNS.index("state")

# The states a row may be in to move to each state (states.TRANSITIONS turned round; writing
# a state again is no move): the UPDATE of a state change checks the move itself.
_BEFORE: dict[LedgerState, tuple[str, ...]] = {
    after: tuple(sorted(b.value for b in TRANSITIONS if b is not None and (b is after or after in TRANSITIONS[b])))
    for after in LedgerState
}


class Locked(Exception):
    """Another live run works on this ledger, and this one asked to run alone."""


class Unusable(Exception):
    """The ledger cannot be opened: its folder is not usable (not a folder, no permission, disk full)."""


class Ledger:
    """The SQLite ledger: one implementation of ledger_store.LedgerStore."""

    def __init__(self, path: Path, connection: sqlite3.Connection, readonly: bool = False, exclusive: bool = False, run_id: str | None = None):
        self.path = path
        self.db = connection
        self.readonly = readonly
        self.moved_aside: Path | None = None  # where a corrupt ledger went
        # The columns to read: a read-only peek at an older ledger cannot add the new ones.
        present = {row[1] for row in connection.execute("PRAGMA table_info(shots)")}
        self._columns = ", ".join(c if c in present else f"NULL AS {c}" for c in _COLUMNS)
        has_pid_start = any(row[1] == "pid_start" for row in connection.execute("PRAGMA table_info(runs)"))
        self._pid_start = "pid_start" if has_pid_start else "NULL"
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.host = socket.gethostname()
        # Generation times by (provider, model, limit), newest first: read once per run, then
        # kept up to date with this run's own (another run's that finish meanwhile are
        # learnt by the next run; they only tune when to poll).
        self._timings: dict[tuple[str, str, int], list[tuple[str, int, float]]] = {}
        # The rows this run holds, as it last wrote them. While this run lives no other run
        # writes a row it holds (a claim is refused while its owner's process lives, and
        # this file is one host's), so the shot machine's reads of them are answered here;
        # every write of a row drops or refreshes it, a rolled-back transaction drops all.
        self._held: dict[str, ShotRecord] = {}
        self._synchronous: str | None = "NORMAL"  # as _connect leaves it (see _write)
        if not readonly:
            now = time.time()
            with self._write():
                if exclusive:
                    self._refuse_if_others()
                self.db.execute(
                    "INSERT INTO runs (run_id, host, pid, started_at, heartbeat_at, pid_start) VALUES (?, ?, ?, ?, ?, ?)",
                    (self.run_id, self.host, os.getpid(), now, now, _pid_start(os.getpid())),
                )

    def _refuse_if_others(self) -> None:
        for run_id, host, pid, started in self.db.execute("SELECT run_id, host, pid, started_at FROM runs"):
            if self.owner_alive(run_id):
                since = time.strftime("%Y-%m-%d %H:%M", time.localtime(started))
                raise Locked(f"another r2v run (pid {pid} on {host}, since {since}) works on the ledger {self.path}")

    @classmethod
    def open(cls, state_dir: Path, exclusive: bool = False, run_id: str | None = None) -> Ledger:
        """Open (or make) the ledger of a state folder; ``exclusive`` raises Locked
        when another live run has it open, Unusable when the folder cannot hold it.
        A ledger that is not a database (garbage, cut short) is moved aside, never
        deleted, and a new one begun: ``moved_aside`` says where the old one went."""
        path = state_dir / LEDGER_FILE
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            fresh = not path.exists()
        except OSError as error:
            raise Unusable(f"cannot use the state folder {state_dir}: {error.strerror or error}") from None
        moved: Path | None = None
        try:
            db = _connect(path)
        except sqlite3.DatabaseError as error:
            if isinstance(error, sqlite3.OperationalError) and "locked" in str(error):
                raise
            moved = _move_aside(path, str(error))
            fresh = True
            try:
                db = _connect(path)
            except sqlite3.DatabaseError as again:
                raise Unusable(f"cannot make a new ledger at {path}: {again}") from None
        except OSError as error:
            raise Unusable(f"cannot open the ledger {path}: {error.strerror or error}") from None
        try:
            ledger = cls(path, db, exclusive=exclusive, run_id=run_id)
        except Locked:
            db.close()
            raise
        ledger.moved_aside = moved
        if fresh:
            with ledger._write(durable=True):  # lost, the next run would not look for the tasks the old ledger knew
                db.execute("INSERT OR REPLACE INTO meta VALUES ('adoption', 'pending')")
        return ledger

    @property
    def fresh(self) -> bool:
        """Begun without the history of the tasks already made (new, lost, or a corrupt one
        moved aside), and no run on it has yet looked the provider's tasks over to the end:
        a run killed while looking leaves it fresh for the next."""
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key = 'adoption'").fetchone()
        except sqlite3.OperationalError:  # a read-only peek at a ledger of an earlier version
            return False
        return row is not None and row[0] == "pending"

    def looked_over(self) -> None:
        """A run on a fresh ledger found (and adopted) what the provider had made."""
        with self._write():
            self.db.execute("DELETE FROM meta WHERE key = 'adoption'")

    @classmethod
    def peek(cls, state_dir: Path) -> Ledger | None:
        """The ledger for reading only (plan, status); None if no run has made one,
        or if it cannot be read (the next run moves a corrupt one aside)."""
        path = state_dir / LEDGER_FILE
        if not path.is_file():
            return None
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0, isolation_level=None)
            return cls(path, db, readonly=True)
        except sqlite3.DatabaseError:
            return None

    def close(self) -> None:
        self._held.clear()
        if not self.readonly:
            with self._write():
                self.db.execute("UPDATE shots SET owner = NULL WHERE owner = ?", (self.run_id,))
                self.db.execute("DELETE FROM runs WHERE run_id = ?", (self.run_id,))
        self.db.close()

    @contextmanager
    def _write(self, durable: bool = False) -> Iterator[None]:
        """One transaction that takes the write lock at once (no lost updates between runs).

        Every commit survives the process being killed (WAL, synchronous=NORMAL). A
        ``durable`` one also survives a power cut: it is synced (synchronous=FULL) before
        COMMIT returns, and with it every commit before it (the WAL is one file, synced
        to its end). Durable are the commits money hangs on: a submit about to go out,
        a task id, a payment. The rest (a claim, a state the ledger can learn again
        from the provider, a download, which the video store keeps) wait for the next
        sync instead of paying an fsync each. The level is switched only when it changes."""
        level = "FULL" if durable else "NORMAL"
        if self._synchronous != level:
            self._synchronous = None  # unknown until the switch is done
            self.db.execute(f"PRAGMA synchronous={level}")
            self._synchronous = level
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            self._held.clear()  # what the transaction wrote is undone
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    # --- reading -----------------------------------------------------------

    def get(self, fingerprint: str) -> ShotRecord | None:
        held = self._held.get(fingerprint)
        if held is not None:
            return held
        row = self.db.execute(f"SELECT {self._columns} FROM shots WHERE fingerprint = ?", (fingerprint,)).fetchone()
        return _record(row) if row else None


    def versions(self, keys: list[str]) -> dict[str, list[ShotRecord]]:
        """Every request recorded for each shot key, newest first: what an edit changed."""
        wanted = set(keys)
        found: dict[str, list[ShotRecord]] = {}
        for row in self.db.execute(f"SELECT {self._columns} FROM shots ORDER BY updated_at DESC"):
            record = _record(row)
            if record.key in wanted:
                found.setdefault(record.key, []).append(record)
        return found

    def records(self, fingerprints: list[str] | None = None) -> dict[str, ShotRecord]:
        rows = self.db.execute(f"SELECT {self._columns} FROM shots").fetchall()
        wanted = set(fingerprints) if fingerprints is not None else None
        return {row[0]: _record(row) for row in rows if wanted is None or row[0] in wanted}

    def in_progress(self, account: str) -> int:
        """Tasks in progress on the account held by live runs (this one included), and
        those a killed run held that changed lately (DEAD_RUN_IN_FLIGHT)."""
        rows = self.db.execute(_IN_PROGRESS, (account, *_words(IN_PROGRESS))).fetchall()
        return self._counted(rows)

    def _holder_and_in_progress(self, fingerprint: str, account: str) -> tuple[str | None, int]:
        """Who holds a shot, and in_progress(account), read in one statement."""
        rows = self.db.execute(
            f"SELECT owner, NULL, 1 FROM shots WHERE fingerprint = ? UNION ALL {_IN_PROGRESS.replace('updated_at', 'updated_at, 0', 1)}",
            (fingerprint, account, *_words(IN_PROGRESS)),
        ).fetchall()
        holder = next((owner for owner, _, mine in rows if mine), None)
        return holder, self._counted([(owner, updated) for owner, updated, mine in rows if not mine])

    def _counted(self, rows: list[tuple[str, float | None]]) -> int:
        recent = time.time() - DEAD_RUN_IN_FLIGHT
        return sum(1 for owner, updated in rows if (updated or 0.0) > recent or self.owner_alive(owner))

    def known_tasks(self, account: str, from_store: bool = True) -> set[str]:
        # '?': a task known from the video store after the ledger was lost; its account is not recorded there.
        accounts = (account, "?") if from_store else (account,)
        marks = ", ".join("?" for _ in accounts)
        return {row[0] for row in self.db.execute(f"SELECT task_id FROM tasks WHERE account IN ({marks})", accounts)}

    def recorded_task(self, fingerprint: str) -> tuple[str, str, str] | None:
        row = self.db.execute(
            "SELECT t.task_id, t.account, t.model FROM tasks t JOIN shots s ON s.fingerprint = t.fingerprint"
            " WHERE t.fingerprint = ? AND s.state = ? AND t.created_at >= coalesce(s.submit_started, 0) ORDER BY t.created_at LIMIT 1",
            (fingerprint, LedgerState.SUBMITTING.value),
        ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def answered_through(self, account: str, key: str, since: float) -> tuple[str, float] | None:
        row = self.db.execute(
            "SELECT task_id, created_at FROM task_keys WHERE account = ? AND key = ? AND created_at > ? ORDER BY created_at DESC LIMIT 1",
            (account, key, since),
        ).fetchone()
        return (row[0], row[1]) if row else None

    def owner_alive(self, owner: str | None) -> bool:
        if owner is None:
            return False
        if owner == self.run_id:
            return True
        row = self.db.execute(f"SELECT host, pid, heartbeat_at, {self._pid_start} FROM runs WHERE run_id = ?", (owner,)).fetchone()
        if row is None:
            return False
        host, pid, heartbeat, started = row
        if host == self.host:
            # On this host the process itself answers: a run that is suspended, or
            # whose clock jumped, is alive while its process is (and is the same process).
            return _pid_alive(pid) and (started is None or _pid_start(pid) in (None, started))
        return time.time() - heartbeat < HEARTBEAT_STALE  # another host: only its heartbeat tells

    shared = False  # one host's runs: a shot another run holds is left to it

    def holders(self) -> dict[str, str]:
        """The live runs by id, each with where it runs ("host pid N")."""
        rows = self.db.execute("SELECT run_id, host, pid FROM runs").fetchall()
        return {run_id: f"{host} pid {pid}" for run_id, host, pid in rows if self.owner_alive(run_id)}

    def charges(self) -> list[Charge]:
        try:
            rows = self.db.execute(
                "SELECT run_id, task_id, key, provider, model, account, planned_seconds, billed_seconds, cost, at FROM charges ORDER BY at"
            ).fetchall()
        except sqlite3.OperationalError:  # a read-only peek at a ledger of an earlier version
            return []
        return [Charge(*row) for row in rows]

    def runs(self) -> list[RunRecord]:
        try:
            rows = self.db.execute(
                "SELECT run_id, host, started_at, finished_at, exit_code, episodes FROM run_history ORDER BY started_at"
            ).fetchall()
        except sqlite3.OperationalError:
            return []
        return [RunRecord(run_id, host, started, finished, code, tuple(json.loads(episodes))) for run_id, host, started, finished, code, episodes in rows]

    def ended(self, started: float, finished: float, exit_code: int, episodes: list[str]) -> None:
        with self._write():
            self.db.execute(
                "INSERT OR REPLACE INTO run_history VALUES (?, ?, ?, ?, ?, ?)",
                (self.run_id, self.host, started, finished, exit_code, json.dumps(sorted(episodes))),
            )

    def events(self, fingerprint: str) -> list[tuple[float, str, str | None]]:
        return list(self.db.execute("SELECT at, event, detail FROM events WHERE fingerprint = ? ORDER BY rowid", (fingerprint,)))

    # --- claiming and slots -------------------------------------------------

    def heartbeat(self) -> None:
        with self._write():
            self.db.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", (time.time(), self.run_id))

    def enter(
        self, fingerprint: str, key: str, provider: str, model: str, account: str, endpoint: str, output: str,
        request: str | None = None, planned_seconds: float | None = None,
    ) -> ShotRecord | None:
        """Record a planned shot (if new) and claim it for this run.
        None when another live run holds it."""
        now = time.time()
        with self._write():
            if _RETURNING:  # a new shot is written claimed, in one statement
                rows = self.db.execute(
                    "INSERT INTO shots (fingerprint, key, provider, model, account, endpoint, state, output, updated_at, owner, request,"
                    f" planned_seconds) VALUES (?, ?, ?, ?, ?, ?, 'planned', ?, ?, ?, ?, ?) ON CONFLICT (fingerprint) DO NOTHING RETURNING {self._columns}",
                    (fingerprint, key, provider, model, account, endpoint, output, now, self.run_id, request, planned_seconds),
                ).fetchall()
                if rows:
                    self._held[fingerprint] = _record(rows[0])
                    return self._held[fingerprint]
            else:
                self.db.execute(
                    "INSERT OR IGNORE INTO shots (fingerprint, key, provider, model, account, endpoint, state, output, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'planned', ?, ?)",
                    (fingerprint, key, provider, model, account, endpoint, output, now),
                )
            record = self.get(fingerprint)
            assert record is not None
            if record.owner not in (None, self.run_id) and self.owner_alive(record.owner):
                return None
            claimed = replace(
                record, owner=self.run_id, key=key, output=output, request=record.request if request is None else request,
                planned_seconds=record.planned_seconds if planned_seconds is None else planned_seconds,
            )  # fmt: skip
            if not record.state.unfinished:  # a task in the works stays with the account it was sent to
                claimed = replace(claimed, account=account, endpoint=endpoint)
            self.db.execute(
                "UPDATE shots SET owner = ?, key = ?, output = ?, request = ?, planned_seconds = ?, account = ?, endpoint = ? WHERE fingerprint = ?",
                (claimed.owner, key, output, claimed.request, claimed.planned_seconds, claimed.account, claimed.endpoint, fingerprint),
            )
        self._held[fingerprint] = claimed
        return claimed  # the row as written: read back, it is the same

    def release(self, fingerprint: str) -> None:
        """Let go of a shot this run cannot carry further (its task is left for a later run)."""
        with self._write():
            self._held.pop(fingerprint, None)
            self.db.execute("UPDATE shots SET owner = NULL WHERE fingerprint = ? AND owner = ?", (fingerprint, self.run_id))

    def adopt(self, fingerprint: str) -> ShotRecord | None:
        """Claim an unfinished shot left by a run that is gone; None if its owner lives."""
        with self._write():
            record = self.get(fingerprint)
            if record is None or (record.owner not in (None, self.run_id) and self.owner_alive(record.owner)):
                return None
            self._held.pop(fingerprint, None)
            self.db.execute("UPDATE shots SET owner = ? WHERE fingerprint = ?", (self.run_id, fingerprint))
        return self.get(fingerprint)

    def unfinished_elsewhere(self) -> list[ShotRecord]:
        """Unfinished shots whose run is gone: paid or maybe paid work to resume."""
        rows = self.db.execute(
            f"SELECT {self._columns} FROM shots WHERE state IN ({_marks(UNFINISHED)})", _words(UNFINISHED)
        ).fetchall()
        return [r for r in map(_record, rows) if not self.owner_alive(r.owner)]

    def start_submit(self, fingerprint: str, account: str, slots: int, endpoint: str | None = None, key: str | None = None) -> bool:
        """planned → submitting through ``account`` (a shot may move between accounts
        until it is sent), if the account has a free slot (counted across runs).
        Written before the request goes out, in the same transaction that checks this
        run still holds the shot: raises Lost when another run took it over."""
        now = time.time()
        # Durable: were 'submitting' lost to a power cut after the request went out, the
        # next run would take the shot for unsent and pay for it again.
        with self._write(durable=True):
            owner, taken = self._holder_and_in_progress(fingerprint, account)
            if owner != self.run_id:
                raise Lost(f"another r2v run took over {fingerprint[:12]}")
            if taken >= slots:
                return False
            where = {"endpoint": endpoint} if endpoint else {}
            self._set(fingerprint, LedgerState.SUBMITTING, now, submit_started=now, code=None, message=None, account=account, **where)
            if key is not None:
                self.db.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (now, fingerprint, SENT_THROUGH, key))
        return True

    # --- transitions --------------------------------------------------------

    def submitted(self, fingerprint: str, task_id: str, account: str, model: str, adopted: bool = False, key: str | None = None) -> None:
        """The shot's task is known: its submit answered, or (``adopted``) a task an earlier
        run paid for was found at the provider."""
        now = time.time()
        # The paid task's id first, on its own and durable: kept even if the state move below
        # is refused or lost (recorded_task finds it for a row still 'submitting').
        with self._write(durable=True):
            # Never dated before its submit began (a clock stepped back meanwhile): recorded_task
            # finds a task by that order.
            inserted = self.db.execute(
                "INSERT OR IGNORE INTO tasks SELECT ?, ?, ?, ?, max(?, coalesce((SELECT submit_started FROM shots WHERE fingerprint = ?), 0))",
                (task_id, fingerprint, account, model, now, fingerprint),
            )
            if not inserted.rowcount:  # known already: whose?
                refuse_if_taken(self.db, "?", task_id, fingerprint)
            if key is not None:
                self.db.execute("INSERT OR IGNORE INTO task_keys VALUES (?, ?, ?, ?)", (task_id, account, key, now))
        before = self.get(fingerprint)
        # A second paid task gets a row of its own, the only thing that makes a run fetch it: durable too.
        second = before is not None and before.task_id not in (None, task_id) and before.state in FOLLOWING
        with self._write(durable=second):
            record = self.get(fingerprint)
            if record is not None and record.task_id not in (None, task_id) and record.state in FOLLOWING:
                # The row follows another paid task: it keeps it, and this one gets a row of
                # its own that runs fetch aside (as the shared ledger does).
                row = second_task_row(record, task_id, account, model, None if adopted else self.run_id, now)
                check_transition(row["fingerprint"], None, LedgerState.SUBMITTED)
                self.db.execute(f"INSERT OR IGNORE INTO shots ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
                self.db.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (now, fingerprint, "second task", f"task {task_id} from run {self.run_id}: kept as {row['fingerprint'][:12]}"))
                self.db.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (now, row["fingerprint"], LedgerState.SUBMITTED.value, row["message"]))
                return
            self._set(
                fingerprint, LedgerState.SUBMITTED, now, count_attempt=True, task_id=task_id, account=account, submitted_at=now, result_url=None, usage=None,
                submitted_by=None if adopted else self.run_id, message="adopted from the provider's task list" if adopted else None,
            )  # fmt: skip

    def not_submitted(self, fingerprint: str, code: str | None = None, message: str | None = None) -> None:
        """submitting → planned: the request provably created no task."""
        with self._write():
            self._set(fingerprint, LedgerState.PLANNED, time.time(), submit_started=None, code=code, message=message)

    def succeeded(
        self,
        fingerprint: str,
        result_url: str,
        usage: dict[str, Any] | None,
        started_at: float | None = None,
        timing: tuple[str, str, str, int, float] | None = None,
        billed: float | None = None,
        cost: float | None = None,
    ) -> None:
        """The task is done; with it (one commit) when it started and how long it
        took, as (provider, model, resolution, duration, seconds) for the poll schedule,
        and the charge: this run saw the task billed (``cost`` at the plan's rate)."""
        now = time.time()
        with self._write(durable=True):  # the payment
            self._set(
                fingerprint, LedgerState.SUCCEEDED, now, result_url=result_url, usage=json.dumps(usage) if usage else None,
                finished_at=now, started_at=started_at, billed_seconds=billed,
            )
            if timing is not None:
                self.db.execute("INSERT INTO timings VALUES (?, ?, ?, ?, ?, ?)", (*timing, now))
            self.db.execute(
                "INSERT OR IGNORE INTO charges SELECT task_id, ?, fingerprint, key, provider, model, account, planned_seconds, ?, ?, ?"
                " FROM shots WHERE fingerprint = ? AND task_id IS NOT NULL",
                (self.run_id, billed, cost, now, fingerprint),
            )
        if timing is not None:  # committed: what timings() answers learns it too
            provider, model, resolution, duration, seconds = timing
            for (p, m, limit), known in self._timings.items():
                if (p, m) == (provider, model):
                    known.insert(0, (resolution, duration, seconds))
                    del known[limit:]

    def downloaded(self, fingerprint: str, output: str, sha256: str, size: int) -> None:
        now = time.time()
        with self._write():
            self._set(fingerprint, LedgerState.DOWNLOADED, now, output=output, sha256=sha256, bytes=size, downloaded_at=now, code=None, message=None)

    def failed(self, fingerprint: str, code: str, message: str, retry: bool = False) -> None:
        """A final failure, or (``retry``) back to planned for another submission."""
        now = time.time()
        with self._write():
            self._set(fingerprint, LedgerState.PLANNED if retry else LedgerState.FAILED, now, code=code, message=message, finished_at=now, submit_started=None)

    def ambiguous(self, fingerprint: str, message: str) -> None:
        with self._write():
            self._set(fingerprint, LedgerState.AMBIGUOUS, time.time(), code="Ambiguous", message=message)

    def expired(self, fingerprint: str, message: str) -> None:
        with self._write():
            self._set(fingerprint, LedgerState.EXPIRED, time.time(), code="Expired", message=message)

    def reset(self, fingerprint: str, message: str) -> None:
        """Back to planned on the user's word (--force, --retry-failed)."""
        with self._write():
            self._set(fingerprint, LedgerState.PLANNED, time.time(), code=None, message=message, task_id=None, result_url=None, submit_started=None)

    def rebuild(self, videos: list[tuple[str, dict[str, Any], str]]) -> int:
        """Rows for paid videos a new ledger does not know, from their provenance in the
        video store: (fingerprint, provenance, stored path). Their tasks become known, so
        none is taken for another shot's. Returns how many were added."""
        added = 0
        now = time.time()
        with self._write(durable=True):  # task ids
            for fingerprint, meta, path in videos:
                video = meta.get("video") or {}
                values = (
                    fingerprint, str(meta.get("key") or "?"), str(meta.get("provider") or "?"), str(meta.get("model") or "?"),
                    "?", None, LedgerState.DOWNLOADED.value, meta.get("task_id"), path, json.dumps(meta.get("usage")) if meta.get("usage") else None,
                    video.get("sha256"), video.get("bytes"), (meta.get("timestamps") or {}).get("downloaded"), meta.get("paid_by_run"), now,
                )
                inserted = self.db.execute(
                    "INSERT OR IGNORE INTO shots (fingerprint, key, provider, model, account, endpoint, state, task_id, output, usage,"
                    " sha256, bytes, downloaded_at, submitted_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    values,
                ).rowcount
                if inserted and meta.get("task_id"):
                    self.db.execute("INSERT OR IGNORE INTO tasks VALUES (?, ?, ?, ?, ?)", (meta["task_id"], fingerprint, "?", str(meta.get("model")), now))
                added += inserted
        return added

    def refingerprint(self, earlier: str, current: str, why: str) -> bool:
        """The row (and tasks) of a request an earlier r2v version fingerprinted differently
        become this request's. False when the current one already has a row."""
        with self._write():
            if self.get(current) is not None or self.get(earlier) is None:
                return False
            self._held.pop(earlier, None)
            self.db.execute("UPDATE shots SET fingerprint = ? WHERE fingerprint = ?", (current, earlier))
            self.db.execute("UPDATE tasks SET fingerprint = ? WHERE fingerprint = ?", (current, earlier))
            self.db.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (time.time(), current, "format changed", f"was {earlier}: {why}"))
        return True

    def note(self, fingerprint: str, event: str, detail: str | None = None) -> None:
        with self._write():
            self.db.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (time.time(), fingerprint, event, detail))

    def _set(self, fingerprint: str, state: LedgerState, now: float, count_attempt: bool = False, **values: Any) -> None:
        """Write a state, inside the caller's transaction, only along states.TRANSITIONS:
        the UPDATE names the states the row may move from; when it changes nothing, the
        row is read to say why (IllegalTransition). ``count_attempt``: one more submit."""
        message = values.get("message")
        values["state"] = state.value  # the stored word: ledgers read back the same across versions
        values["updated_at"] = now
        assignments = ", ".join([*(f"{name} = ?" for name in values), *(["attempts = attempts + 1"] if count_attempt else [])])
        before = _BEFORE[state]
        self._held.pop(fingerprint, None)
        update = f"UPDATE shots SET {assignments} WHERE fingerprint = ? AND state IN ({', '.join('?' * len(before))})"
        arguments = (*values.values(), fingerprint, *before)
        if _RETURNING:  # the row as written, to answer this run's next read of it
            rows = self.db.execute(f"{update} RETURNING {self._columns}", arguments).fetchall()
            if rows and (record := _record(rows[0])).owner == self.run_id:
                self._held[fingerprint] = record
            changed = bool(rows)
        else:
            changed = self.db.execute(update, arguments).rowcount > 0
        if not changed:
            row = self.db.execute("SELECT state FROM shots WHERE fingerprint = ?", (fingerprint,)).fetchone()
            check_transition(fingerprint, LedgerState(row[0]) if row else None, state)
        self.db.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (now, fingerprint, state.value, message))

    # --- what the runner learns and caches ------------------------------------

    def timings(self, provider: str, model: str, limit: int = 200) -> list[tuple[str, int, float]]:
        """Recent generation times of a model: (resolution, duration, seconds), newest first."""
        known = self._timings.get((provider, model, limit))
        if known is None:
            known = self._timings[(provider, model, limit)] = list(
                self.db.execute(
                    "SELECT resolution, duration, seconds FROM timings WHERE provider = ? AND model = ? ORDER BY at DESC LIMIT ?",
                    (provider, model, limit),
                )
            )
        return list(known)

    def upload(self, sha256: str, account: str, model: str, alive_until: float) -> str | None:
        """A cached upload of this content still alive at ``alive_until`` (provider time,
        like the expiry it was stored with)."""
        row = self.db.execute(
            "SELECT url FROM uploads WHERE sha256 = ? AND account = ? AND model = ? AND expires_at > ?",
            (sha256, account, model, alive_until),
        ).fetchone()
        return row[0] if row else None

    def remember_upload(self, sha256: str, account: str, model: str, url: str, expires_at: float) -> None:
        with self._write():
            self.db.execute("INSERT OR REPLACE INTO uploads VALUES (?, ?, ?, ?, ?)", (sha256, account, model, url, expires_at))


_RETURNING = sqlite3.sqlite_version_info >= (3, 35)  # UPDATE … RETURNING
_IN_PROGRESS = f"SELECT owner, updated_at FROM shots WHERE account = ? AND owner IS NOT NULL AND state IN ({', '.join('?' * len(IN_PROGRESS))})"


def _marks(values: frozenset[LedgerState]) -> str:
    return ", ".join("?" for _ in values)


def _words(states: frozenset[LedgerState]) -> tuple[str, ...]:
    return tuple(sorted(s.value for s in states))


def _record(row: tuple[Any, ...]) -> ShotRecord:
    values = list(row)
    values[_STATE] = LedgerState(values[_STATE])
    return ShotRecord(*values)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    try:  # a killed process nobody has reaped yet is a zombie: gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # the schema and its changes, synced
        db.executescript(_SCHEMA)
        for table, column, kind in (
            ("shots", "endpoint", "TEXT"), ("shots", "submitted_by", "TEXT"), ("shots", "request", "TEXT"),
            ("shots", "planned_seconds", "REAL"), ("shots", "billed_seconds", "REAL"), ("runs", "pid_start", "TEXT"),
        ):  # fmt: skip
            if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:  # a ledger of an earlier version
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        db.execute("SELECT count(*) FROM shots").fetchone()  # reads the pages: a file cut short shows here
        # From here a commit is synced only where Ledger._write(durable=True) says: a task
        # id, a payment, a submit about to go out.
        db.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        db.close()
        raise
    return db


def _move_aside(path: Path, why: str) -> Path:
    """Keep a ledger that cannot be read beside the new one: never deleted."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(str(path) + suffix)
        if part.exists():
            os.replace(part, Path(str(aside) + suffix))
    return aside


def _pid_start(pid: int) -> str | None:
    """When a process started (clock ticks since boot), so a reused pid is not taken for
    the run that had it; None where /proc cannot tell."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None
