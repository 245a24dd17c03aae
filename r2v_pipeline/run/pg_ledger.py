"""The run ledger on PostgreSQL: one ledger shared by the r2v runs of several hosts.

It keeps the SQLite ledger's promises (ledger_store.py) across machines:

* every state change is one committed transaction, written only along
  ``states.TRANSITIONS``, under the shot's row lock (``SELECT … FOR UPDATE``);
* a shot is held by one live run at a time, through a **lease**: the run's
  heartbeat (on the database server's clock, so hosts' clocks do not matter)
  keeps every shot it holds; a run silent for ``lease`` seconds is gone and
  another run may take its shots over (on the same host a dead process is
  gone at once);
* **fencing**: each claim of a shot takes a new token from a sequence. Moving a
  shot to ``submitting`` — the record written before a request goes out —
  checks, in the same transaction, that this run's token is still the shot's;
  a run that lost its lease (paused, partitioned) raises ``Lost`` and sends
  nothing. A late answer from such a run is still recorded (it names a paid
  task, which is never lost), but never over another task: a second task of a
  shot gets a row of its own, fetched aside as an earlier version's task is;
* tasks in progress are counted per account across hosts under one advisory
  lock per account, so hosts together never overfill an account's slots.

A database that cannot be reached raises ``LedgerUnreachable``: nothing more is
recorded, so nothing more is sent. A submit whose answer could not be recorded
stays ``submitting`` and the next run reconciles it against the provider's
task list (adopt.py) instead of paying again.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator

from .ledger import Locked, _pid_alive, _pid_start
from .ledger_store import (
    DEAD_RUN_IN_FLIGHT,
    FOLLOWING,
    SENT_THROUGH,
    Charge,
    LedgerUnreachable,
    Lost,
    RunRecord,
    ShotRecord,
    refuse_if_taken,
    second_task_row,
)
from .open_ledger import scrub
from .pg_schema import TooNew, migrate, version
from .states import IN_PROGRESS, UNFINISHED, LedgerState, check_transition

TIMINGS_FRESH = 30.0  # seconds a read of the timings table serves (this run's own new timings clear it)
LEASE = 60.0  # seconds without a heartbeat before a run's shots may be taken over (the runner beats every 10 s)
CONNECT_TIMEOUT = 10  # seconds to reach the server before the run gives up

_COLUMNS = [f.name for f in fields(ShotRecord)]
_SELECT = ", ".join(_COLUMNS)
_STATE = _COLUMNS.index("state")
_NOW = "extract(epoch from clock_timestamp())::double precision"  # the server's clock
_IN_PROGRESS = sorted(s.value for s in IN_PROGRESS)
_UNFINISHED = sorted(s.value for s in UNFINISHED)


class PgLedger:
    """The PostgreSQL ledger: one implementation of ledger_store.LedgerStore."""

    def __init__(
        self, db: Any, where: str, secret: str | None, schema: str, readonly: bool = False, exclusive: bool = False,
        lease: float = LEASE, run_id: str | None = None,
    ):  # fmt: skip
        self.db = db
        self.path = where  # what messages name: the URL without its password
        self._secret = secret
        self.schema = schema
        self.readonly = readonly
        self.lease = lease
        self.moved_aside: Path | None = None  # a server's database is never moved aside
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.host = socket.gethostname()
        self._tokens: dict[str, int] = {}  # fingerprint -> the fencing token of this run's claim
        self._timings: dict[tuple[str, str, int], tuple[float, list[tuple[str, int, float]]]] = {}  # asked -> (read at, rows)
        if not readonly:
            with self._tx():
                # One lock around the check and the insert: two runs starting at once on
                # one host cannot both find the other absent.
                self.db.execute("SELECT pg_advisory_xact_lock(hashtext('r2v-runs'))")
                if exclusive:
                    self._refuse_if_others()
                self.db.execute(
                    f"INSERT INTO runs (run_id, host, pid, started_at, heartbeat_at, pid_start) VALUES (%s, %s, %s, {_NOW}, {_NOW}, %s)",
                    (self.run_id, self.host, os.getpid(), _pid_start(os.getpid())),
                )

    # --- opening ---------------------------------------------------------------

    @classmethod
    def open(
        cls, url: str, where: str, secret: str | None, schema: str, exclusive: bool = False, lease: float = LEASE, run_id: str | None = None,
    ) -> PgLedger:  # fmt: skip
        """Connect, bring the schema up to date (once across hosts), and register this run.
        Raises LedgerUnreachable when the server cannot be reached or used, Locked as the
        SQLite ledger does (``exclusive``: another live run on this host)."""
        db = _connect(url, where, secret, schema)
        try:
            with _guard(where, secret):
                migrate(db, schema)
            return cls(db, where, secret, schema, exclusive=exclusive, lease=lease, run_id=run_id)
        except TooNew as error:
            db.close()
            raise LedgerUnreachable(f"cannot use the ledger {where}: {error}") from None
        except BaseException:
            db.close()
            raise

    @classmethod
    def peek(cls, url: str, where: str, secret: str | None, schema: str) -> PgLedger | None:
        """The ledger for reading only (plan, status); None when no run has made it yet."""
        db = _connect(url, where, secret, schema)
        with _guard(where, secret):
            made = version(db)
        if made is None:
            db.close()
            return None
        return cls(db, where, secret, schema, readonly=True)

    def close(self) -> None:
        try:
            if not self.readonly:
                with self._tx():
                    self.db.execute("UPDATE shots SET owner = NULL, lease = NULL WHERE owner = %s", (self.run_id,))
                    self.db.execute("DELETE FROM runs WHERE run_id = %s", (self.run_id,))
        except LedgerUnreachable:
            pass  # the shots' leases lapse on their own
        finally:
            try:
                self.db.close()
            except Exception:
                pass

    def _refuse_if_others(self) -> None:
        """--exclusive on a shared ledger: hosts share it by claiming shots, so only
        another live run on this host (an overlapping cron job) refuses the start."""
        rows = self.db.execute("SELECT run_id, pid, started_at FROM runs WHERE host = %s", (self.host,)).fetchall()
        for run_id, pid, started in rows:
            if self.owner_alive(run_id):
                since = time.strftime("%Y-%m-%d %H:%M", time.localtime(started))
                raise Locked(f"another r2v run (pid {pid} on {self.host}, since {since}) works on the ledger {self.path} from this host")

    # --- transactions ------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One transaction; a lost server becomes LedgerUnreachable (nothing was committed
        unless the commit itself answered)."""
        with _guard(self.path, self._secret):
            with self.db.transaction():
                yield

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with _guard(self.path, self._secret):
            return self.db.execute(sql, params).fetchall()

    # --- reading -----------------------------------------------------------------

    @property
    def fresh(self) -> bool:
        rows = self._rows("SELECT value FROM meta WHERE key = 'adoption'")
        return bool(rows) and rows[0][0] == "pending"

    def looked_over(self) -> None:
        with self._tx():
            self.db.execute("DELETE FROM meta WHERE key = 'adoption'")

    def get(self, fingerprint: str) -> ShotRecord | None:
        rows = self._rows(f"SELECT {_SELECT} FROM shots WHERE fingerprint = %s", (fingerprint,))
        return _record(rows[0]) if rows else None

    def records(self, fingerprints: list[str] | None = None) -> dict[str, ShotRecord]:
        if fingerprints is None:
            rows = self._rows(f"SELECT {_SELECT} FROM shots")
        else:
            rows = self._rows(f"SELECT {_SELECT} FROM shots WHERE fingerprint = ANY(%s)", (list(fingerprints),))
        return {row[0]: _record(row) for row in rows}

    def versions(self, keys: list[str]) -> dict[str, list[ShotRecord]]:
        found: dict[str, list[ShotRecord]] = {}
        for row in self._rows(f"SELECT {_SELECT} FROM shots WHERE key = ANY(%s) ORDER BY updated_at DESC", (list(keys),)):
            record = _record(row)
            found.setdefault(record.key, []).append(record)
        return found

    def owner_alive(self, owner: str | None) -> bool:
        if owner is None:
            return False
        if owner == self.run_id:
            return True
        return owner in self._live([owner])

    @property
    def shared(self) -> bool:
        """Hosts share the work: a run waits for a shot held elsewhere, and takes it over
        if that run dies. A read-only look (plan, status) shows such a shot as elsewhere."""
        return not self.readonly

    def holders(self) -> dict[str, str]:
        """Each live run's id and where it runs ("host pid N"): who holds which shot."""
        rows = self._rows("SELECT run_id, host, pid FROM runs")
        live = self._live([r[0] for r in rows])
        return {run_id: f"{host} pid {pid}" for run_id, host, pid in rows if run_id in live}

    def _live(self, run_ids: list[str]) -> set[str]:
        """Which of these runs hold their lease: a heartbeat within ``lease`` seconds by the
        server's clock; on this host, only while the process itself lives."""
        if not run_ids:
            return set()
        rows = self._rows(
            f"SELECT run_id, host, pid, pid_start, heartbeat_at > {_NOW} - %s FROM runs WHERE run_id = ANY(%s)",
            (self.lease, list(set(run_ids))),
        )
        live = {self.run_id} if self.run_id in run_ids and not self.readonly else set()
        for run_id, host, pid, started, beating in rows:
            if not beating:
                continue
            if host == self.host and not (_pid_alive(pid) and (started is None or _pid_start(pid) in (None, started))):
                continue  # a dead process on this host lost its lease at once
            live.add(run_id)
        return live

    def in_progress(self, account: str) -> int:
        """Tasks in progress on the account held by live runs of every host, and those a
        killed run held that changed lately (DEAD_RUN_IN_FLIGHT)."""
        rows = self._rows(
            "SELECT owner, updated_at > %s FROM shots WHERE account = %s AND owner IS NOT NULL AND state = ANY(%s)",
            (time.time() - DEAD_RUN_IN_FLIGHT, account, _IN_PROGRESS),
        )
        live = self._live([owner for owner, recent in rows if not recent])
        return sum(1 for owner, recent in rows if recent or owner in live)

    def known_tasks(self, account: str, from_store: bool = True) -> set[str]:
        accounts = [account, "?"] if from_store else [account]
        return {row[0] for row in self._rows("SELECT task_id FROM tasks WHERE account = ANY(%s)", (accounts,))}

    def recorded_task(self, fingerprint: str) -> tuple[str, str, str] | None:
        rows = self._rows(
            "SELECT t.task_id, t.account, t.model FROM tasks t JOIN shots s ON s.fingerprint = t.fingerprint"
            " WHERE t.fingerprint = %s AND s.state = %s AND t.created_at >= coalesce(s.submit_started, 0) ORDER BY t.created_at LIMIT 1",
            (fingerprint, LedgerState.SUBMITTING.value),
        )
        return (rows[0][0], rows[0][1], rows[0][2]) if rows else None

    def answered_through(self, account: str, key: str, since: float) -> tuple[str, float] | None:
        rows = self._rows(
            "SELECT task_id, created_at FROM task_keys WHERE account = %s AND key = %s AND created_at > %s ORDER BY created_at DESC LIMIT 1",
            (account, key, since),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def events(self, fingerprint: str) -> list[tuple[float, str, str | None]]:
        return [tuple(r) for r in self._rows("SELECT at, event, detail FROM events WHERE fingerprint = %s ORDER BY id", (fingerprint,))]  # type: ignore[misc]

    def unfinished_elsewhere(self) -> list[ShotRecord]:
        records = [_record(r) for r in self._rows(f"SELECT {_SELECT} FROM shots WHERE state = ANY(%s)", (_UNFINISHED,))]
        live = self._live([r.owner for r in records if r.owner])
        return [r for r in records if r.owner not in live]

    # --- the run and its claims --------------------------------------------------

    def heartbeat(self) -> None:
        """Keep this run's leases: one row, on the server's clock."""
        with self._tx():
            self.db.execute(f"UPDATE runs SET heartbeat_at = {_NOW} WHERE run_id = %s", (self.run_id,))

    def enter(
        self, fingerprint: str, key: str, provider: str, model: str, account: str, endpoint: str, output: str,
        request: str | None = None, planned_seconds: float | None = None,
    ) -> ShotRecord | None:
        now = time.time()
        with self._tx():
            self.db.execute(
                "INSERT INTO shots (fingerprint, key, provider, model, account, endpoint, state, output, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, 'planned', %s, %s) ON CONFLICT (fingerprint) DO NOTHING",
                (fingerprint, key, provider, model, account, endpoint, output, now),
            )
            held = self._lock(fingerprint)
            assert held is not None
            if held.record.owner not in (None, self.run_id) and self.owner_alive(held.record.owner):
                return None
            sets = "key = %s, output = %s, request = coalesce(%s, request), planned_seconds = coalesce(%s, planned_seconds)"
            params: tuple[Any, ...] = (key, output, request, planned_seconds)
            if not held.record.state.unfinished:  # a task in the works stays with the account it was sent to
                sets, params = f"{sets}, account = %s, endpoint = %s", (*params, account, endpoint)
            return self._claim(fingerprint, sets, params)

    def adopt(self, fingerprint: str) -> ShotRecord | None:
        with self._tx():
            held = self._lock(fingerprint)
            if held is None or (held.record.owner not in (None, self.run_id) and self.owner_alive(held.record.owner)):
                return None
            return self._claim(fingerprint)

    def release(self, fingerprint: str) -> None:
        with self._tx():
            self.db.execute("UPDATE shots SET owner = NULL, lease = NULL WHERE fingerprint = %s AND owner = %s", (fingerprint, self.run_id))
        self._tokens.pop(fingerprint, None)

    def _claim(self, fingerprint: str, sets: str = "", params: tuple[Any, ...] = ()) -> ShotRecord:
        """This run holds the shot, with a new fencing token; returns the row as written. One
        statement inside the caller's transaction, with whatever else the caller ``sets``."""
        row = self.db.execute(
            f"UPDATE shots SET owner = %s, lease = nextval('leases'){', ' + sets if sets else ''}"
            f" WHERE fingerprint = %s RETURNING lease, {_SELECT}",
            (self.run_id, *params, fingerprint),
        ).fetchone()
        self._tokens[fingerprint] = row[0]
        return _record(row[1:])

    def _lock(self, fingerprint: str) -> _Held | None:
        """The shot's row and its lease's token, locked until the transaction ends."""
        row = self.db.execute(f"SELECT lease, {_SELECT} FROM shots WHERE fingerprint = %s FOR UPDATE", (fingerprint,)).fetchone()
        return _Held(_record(row[1:]), row[0]) if row else None

    def _holds(self, held: _Held) -> bool:
        """Whether this run's claim is still the shot's (``held`` read in this transaction)."""
        token = self._tokens.get(held.record.fingerprint)
        return token is not None and held.record.owner == self.run_id and held.lease == token

    # --- the submit protocol -----------------------------------------------------

    def start_submit(self, fingerprint: str, account: str, slots: int, endpoint: str | None = None, key: str | None = None) -> bool:
        """planned → submitting through ``account`` (a shot may move between accounts until
        it is sent) if this run still holds the shot's lease (fenced by its token, in this
        transaction) and the account has a free slot across hosts."""
        now = time.time()
        with self._tx():
            # Slots are counted and taken under one lock per account: two hosts never both take the last.
            self.db.execute("SELECT pg_advisory_xact_lock(hashtext('r2v-account'), hashtext(%s))", (account,))
            held = self._lock(fingerprint)
            if held is None or not self._holds(held):
                raise Lost(f"another r2v run took over {fingerprint[:12]} (this run's lease on it lapsed)")
            if held.record.state is not LedgerState.PLANNED:
                raise Lost(f"{fingerprint[:12]} moved on to {held.record.state} under another run")
            if self.in_progress(account) >= slots:
                return False
            where: dict[str, Any] = {"endpoint": endpoint} if endpoint else {}
            self._set(held, LedgerState.SUBMITTING, now, submit_started=now, code=None, message=None, account=account, **where)
            if key is not None:
                self._event(now, fingerprint, SENT_THROUGH, key)
        return True

    def submitted(self, fingerprint: str, task_id: str, account: str, model: str, adopted: bool = False, key: str | None = None) -> None:
        now = time.time()
        with self._tx():  # the paid task's id first, on its own: kept even if the state move below is refused
            inserted = self.db.execute(  # never dated before its submit began (a clock stepped back): recorded_task finds it by that order
                "INSERT INTO tasks SELECT %s, %s, %s, %s, greatest(%s, coalesce((SELECT submit_started FROM shots WHERE fingerprint = %s), 0))"
                " ON CONFLICT (task_id) DO NOTHING",
                (task_id, fingerprint, account, model, now, fingerprint),
            )
            if not inserted.rowcount:  # known already: whose?
                refuse_if_taken(self.db, "%s", task_id, fingerprint)
            if key is not None:
                self.db.execute("INSERT INTO task_keys VALUES (%s, %s, %s, %s) ON CONFLICT (task_id) DO NOTHING", (task_id, account, key, now))
        with self._tx():
            held = self._lock(fingerprint)
            record = held.record if held else None
            if record is not None and record.task_id not in (None, task_id) and record.state in FOLLOWING:
                # Another task came first (a fenced run's late answer, or the answer of the run
                # that took over after it): the row keeps the task it follows, and this one,
                # paid too, gets a row of its own that runs fetch aside.
                row = second_task_row(record, task_id, account, model, None if adopted else self.run_id, now)
                check_transition(row["fingerprint"], None, LedgerState.SUBMITTED)
                self.db.execute(
                    f"INSERT INTO shots ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))}) ON CONFLICT (fingerprint) DO NOTHING",
                    tuple(row.values()),
                )
                self._event(now, fingerprint, "second task", f"task {task_id} from run {self.run_id}: kept as {row['fingerprint'][:12]}")
                self._event(now, row["fingerprint"], LedgerState.SUBMITTED.value, row["message"])
                return
            self._set(
                held or fingerprint, LedgerState.SUBMITTED, now, counted=True, task_id=task_id, account=account, submitted_at=now, result_url=None, usage=None,
                submitted_by=None if adopted else self.run_id, message="adopted from the provider's task list" if adopted else None,
            )  # fmt: skip

    def not_submitted(self, fingerprint: str, code: str | None = None, message: str | None = None) -> None:
        """submitting → planned: the request provably made no task. Only while this run
        holds the shot (else Lost) and no task was recorded for it since the submit began
        (a late answer of another host's submit): then the row is left as it is."""
        with self._tx():
            held = self._lock(fingerprint)
            if held is None or held.record.state is not LedgerState.SUBMITTING:
                return
            record = held.record
            if not self._holds(held):  # its walk ends; the run holding the shot settles the submit
                raise Lost(f"another r2v run took over {fingerprint[:12]} (this run's lease on it lapsed)")
            recorded = self.db.execute(
                "SELECT 1 FROM tasks WHERE fingerprint = %s AND created_at >= %s", (fingerprint, record.submit_started or 0.0)
            ).fetchone()
            if recorded:
                return
            self._set(held, LedgerState.PLANNED, time.time(), submit_started=None, code=code, message=message)

    def succeeded(
        self, fingerprint: str, result_url: str, usage: dict[str, Any] | None, started_at: float | None = None,
        timing: tuple[str, str, str, int, float] | None = None, billed: float | None = None, cost: float | None = None,
    ) -> None:  # fmt: skip
        now = time.time()
        with self._tx():
            self._set(
                self._lock(fingerprint) or fingerprint, LedgerState.SUCCEEDED, now, result_url=result_url, usage=json.dumps(usage) if usage else None,
                finished_at=now, started_at=started_at, billed_seconds=billed,
            )  # fmt: skip
            if timing is not None:
                self.db.execute("INSERT INTO timings VALUES (%s, %s, %s, %s, %s, %s)", (*timing, now))
                self._timings.clear()
            # The charge, once per task whichever host sees it end first (the same commit).
            self.db.execute(
                "INSERT INTO charges SELECT task_id, %s, fingerprint, key, provider, model, account, planned_seconds, %s, %s, %s"
                " FROM shots WHERE fingerprint = %s AND task_id IS NOT NULL ON CONFLICT (task_id) DO NOTHING",
                (self.run_id, billed, cost, now, fingerprint),
            )

    def charges(self) -> list[Charge]:
        rows = self._rows("SELECT run_id, task_id, key, provider, model, account, planned_seconds, billed_seconds, cost, at FROM charges ORDER BY at")
        return [Charge(*row) for row in rows]

    def runs(self) -> list[RunRecord]:
        rows = self._rows("SELECT run_id, host, started_at, finished_at, exit_code, episodes FROM run_history ORDER BY started_at")
        return [RunRecord(run_id, host, started, finished, code, tuple(json.loads(episodes))) for run_id, host, started, finished, code, episodes in rows]

    def ended(self, started: float, finished: float, exit_code: int, episodes: list[str]) -> None:
        with self._tx():
            self.db.execute(
                "INSERT INTO run_history VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_id) DO UPDATE SET"
                " finished_at = EXCLUDED.finished_at, exit_code = EXCLUDED.exit_code, episodes = EXCLUDED.episodes",
                (self.run_id, self.host, started, finished, exit_code, json.dumps(sorted(episodes))),
            )

    def downloaded(self, fingerprint: str, output: str, sha256: str, size: int) -> None:
        now = time.time()
        with self._tx():
            self._set(self._lock(fingerprint) or fingerprint, LedgerState.DOWNLOADED, now, output=output, sha256=sha256, bytes=size, downloaded_at=now, code=None, message=None)

    def failed(self, fingerprint: str, code: str, message: str, retry: bool = False) -> None:
        """A final failure, or (``retry``) back to planned — only by the run holding the
        shot, as planned is where a submit starts."""
        now = time.time()
        with self._tx():
            held = self._lock(fingerprint)
            if retry and not (held and self._holds(held)):
                raise Lost(f"another r2v run took over {fingerprint[:12]}")
            self._set(held or fingerprint, LedgerState.PLANNED if retry else LedgerState.FAILED, now, code=code, message=message, finished_at=now, submit_started=None)

    def ambiguous(self, fingerprint: str, message: str) -> None:
        with self._tx():
            self._set(self._lock(fingerprint) or fingerprint, LedgerState.AMBIGUOUS, time.time(), code="Ambiguous", message=message)

    def expired(self, fingerprint: str, message: str) -> None:
        with self._tx():
            self._set(self._lock(fingerprint) or fingerprint, LedgerState.EXPIRED, time.time(), code="Expired", message=message)

    def reset(self, fingerprint: str, message: str) -> None:
        with self._tx():
            held = self._lock(fingerprint)
            if not (held and self._holds(held)):
                raise Lost(f"another r2v run took over {fingerprint[:12]}")
            self._set(held, LedgerState.PLANNED, time.time(), code=None, message=message, task_id=None, result_url=None, submit_started=None)

    # --- history -----------------------------------------------------------------

    def rebuild(self, videos: list[tuple[str, dict[str, Any], str]]) -> int:
        added = 0
        now = time.time()
        with self._tx():
            for fingerprint, meta, path in videos:
                video = meta.get("video") or {}
                values = (
                    fingerprint, str(meta.get("key") or "?"), str(meta.get("provider") or "?"), str(meta.get("model") or "?"),
                    "?", None, LedgerState.DOWNLOADED.value, meta.get("task_id"), path, json.dumps(meta.get("usage")) if meta.get("usage") else None,
                    video.get("sha256"), video.get("bytes"), (meta.get("timestamps") or {}).get("downloaded"), meta.get("paid_by_run"), now,
                )  # fmt: skip
                inserted = self.db.execute(
                    "INSERT INTO shots (fingerprint, key, provider, model, account, endpoint, state, task_id, output, usage,"
                    " sha256, bytes, downloaded_at, submitted_by, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (fingerprint) DO NOTHING",
                    values,
                ).rowcount
                if inserted and meta.get("task_id"):
                    self.db.execute(
                        "INSERT INTO tasks VALUES (%s, %s, %s, %s, %s) ON CONFLICT (task_id) DO NOTHING",
                        (meta["task_id"], fingerprint, "?", str(meta.get("model")), now),
                    )
                added += inserted
        return added

    def refingerprint(self, earlier: str, current: str, why: str) -> bool:
        with self._tx():
            if self._lock(current) is not None or self._lock(earlier) is None:
                return False
            self.db.execute("UPDATE shots SET fingerprint = %s WHERE fingerprint = %s", (current, earlier))
            self.db.execute("UPDATE tasks SET fingerprint = %s WHERE fingerprint = %s", (current, earlier))
            self._event(time.time(), current, "format changed", f"was {earlier}: {why}")
        if earlier in self._tokens:
            self._tokens[current] = self._tokens.pop(earlier)
        return True

    def note(self, fingerprint: str, event: str, detail: str | None = None) -> None:
        with self._tx():
            self._event(time.time(), fingerprint, event, detail)

    def _event(self, now: float, fingerprint: str, event: str, detail: str | None) -> None:
        self.db.execute("INSERT INTO events (at, fingerprint, event, detail) VALUES (%s, %s, %s, %s)", (now, fingerprint, event, detail))

    def _set(self, held: _Held | str, state: LedgerState, now: float, counted: bool = False, **values: Any) -> None:
        """Write a state along states.TRANSITIONS, inside the caller's transaction, from the row
        ``held`` as locked in it (a bare fingerprint: no such row). The state's event is written
        by the same statement; ``counted``: one more submit attempt."""
        fingerprint = held if isinstance(held, str) else held.record.fingerprint
        check_transition(fingerprint, None if isinstance(held, str) else held.record.state, state)
        values["state"] = state.value
        values["updated_at"] = now
        assignments = ", ".join([f"{name} = %s" for name in values] + (["attempts = attempts + 1"] if counted else []))
        self.db.execute(
            "WITH event AS (INSERT INTO events (at, fingerprint, event, detail) VALUES (%s, %s, %s, %s))"
            f" UPDATE shots SET {assignments} WHERE fingerprint = %s",
            (now, fingerprint, state.value, values.get("message"), *values.values(), fingerprint),
        )

    # --- what the runner learns and caches -----------------------------------------

    def timings(self, provider: str, model: str, limit: int = 200) -> list[tuple[str, int, float]]:
        """Recent generation times, read again once they are TIMINGS_FRESH old: they only pace
        polls, and other hosts' new ones can wait that long."""
        asked = (provider, model, limit)
        known = self._timings.get(asked)
        if known is None or time.monotonic() - known[0] > TIMINGS_FRESH:
            rows = self._rows(
                "SELECT resolution, duration, seconds FROM timings WHERE provider = %s AND model = %s ORDER BY at DESC LIMIT %s", asked
            )
            known = self._timings[asked] = (time.monotonic(), [(r[0], r[1], r[2]) for r in rows])
        return list(known[1])

    def upload(self, sha256: str, account: str, model: str, alive_until: float) -> str | None:
        rows = self._rows(
            "SELECT url FROM uploads WHERE sha256 = %s AND account = %s AND model = %s AND expires_at > %s", (sha256, account, model, alive_until)
        )
        return rows[0][0] if rows else None

    def remember_upload(self, sha256: str, account: str, model: str, url: str, expires_at: float) -> None:
        with self._tx():
            self.db.execute(
                "INSERT INTO uploads VALUES (%s, %s, %s, %s, %s) ON CONFLICT (sha256, account, model)"
                " DO UPDATE SET url = excluded.url, expires_at = excluded.expires_at",
                (sha256, account, model, url, expires_at),
            )


@dataclass(frozen=True)
class _Held:
    """A shot's row as read under its lock, with the fencing token of whoever holds it."""

    record: ShotRecord
    lease: int | None


def _record(row: tuple[Any, ...]) -> ShotRecord:
    values = list(row)
    values[_STATE] = LedgerState(values[_STATE])
    return ShotRecord(*values)


@contextmanager
def _guard(where: str, secret: str | None) -> Iterator[None]:
    """A server that cannot be reached (or went away), or refuses what r2v asks, becomes
    LedgerUnreachable, its message scrubbed of the password."""
    import psycopg

    try:
        yield
    except psycopg.Error as error:
        # Any of the driver's errors: its message may echo the URL or its password.
        detail = scrub(" ".join(str(error).split()).rstrip("."), secret) or type(error).__name__
        gone = isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError))
        raise LedgerUnreachable(f"the ledger database {where} cannot be {'reached' if gone else 'used'}: {detail}") from None


def _connect(url: str, where: str, secret: str | None, schema: str) -> Any:
    import psycopg  # only a run on a PostgreSQL ledger needs it

    with _guard(where, secret):
        db = psycopg.connect(
            url, autocommit=True, connect_timeout=CONNECT_TIMEOUT, application_name="r2v",
            # A server that stops answering (a dead network) is noticed in about a
            # minute rather than after the kernel's two hours.
            keepalives=1, keepalives_idle=15, keepalives_interval=5, keepalives_count=4, tcp_user_timeout=60000,
            options=f"-c search_path={schema} -c statement_timeout=120000",
        )  # fmt: skip
    return db
