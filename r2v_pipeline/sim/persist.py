"""The simulator's state on disk (``SimConfig.state_dir``), so a restarted simulator is the same provider.

One SQLite database (WAL) and a folder of uploaded files::

    <state_dir>/sim.sqlite      tasks, task-id counters, upload policies and objects, the clock, meta
    <state_dir>/objects/<sha256> the bytes of each uploaded file, named by content
    <state_dir>/lock            held while a simulator uses the folder
    <state_dir>/videos/         encoded result videos, unless SimConfig.cache_dir says otherwise

Written through, one committed transaction per change (a task's status, an
upload, a policy, a counter), on the event loop thread, before the request
that caused it is answered: a simulator killed at any moment, even with
``kill -9``, loses nothing it has answered, and a transaction cut short by the
kill is rolled back by SQLite. Every write also stamps the clock (provider now
and the wall time it was read at), so a restart can resume provider time as
paused or as having run on. The ledger's task entries are rebuilt from the
tasks; the request log and webhook deliveries are not kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from ..catalog.billing import Billed
from .ledger import Ledger, task_entry
from .tasks import Failure, Output, Task
from .uploads import Policy, StoredObject

try:
    import fcntl
except ImportError:  # [guess] no folder lock where flock does not exist
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("r2v_pipeline.sim")

DB_FILE = "sim.sqlite"
OBJECTS_DIR = "objects"
LOCK_FILE = "lock"
SCHEMA_VERSION = 1  # PRAGMA user_version

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (          -- secret (hex): signs result URLs and policies; port: last one served
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS clock (         -- one row, rewritten with every write and at shutdown
    id INTEGER PRIMARY KEY CHECK (id = 1),
    provider_now REAL NOT NULL,            -- provider time, epoch seconds
    wall_at REAL NOT NULL                  -- the wall time it was read at
);
CREATE TABLE IF NOT EXISTS tasks (         -- every field of sim.tasks.Task; times are provider time
    seq INTEGER PRIMARY KEY,               -- submit order
    task_id TEXT NOT NULL UNIQUE,
    provider TEXT NOT NULL,
    account TEXT NOT NULL,
    model TEXT NOT NULL,
    request_id TEXT NOT NULL,
    prompt TEXT NOT NULL,
    output TEXT NOT NULL,                  -- JSON: width, height, seconds, audio, resolution, ratio
    billed_output TEXT NOT NULL,           -- Decimal as text, exact
    billed_input TEXT NOT NULL,
    billed_exact INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    submitted REAL NOT NULL,
    generation_seconds REAL NOT NULL,
    start_failure_code TEXT,               -- fail_at_start
    start_failure_message TEXT,
    end_failure_code TEXT,                 -- fail_at_end
    end_failure_message TEXT,
    webhook_url TEXT,
    fault TEXT,
    adjusted TEXT NOT NULL,                -- JSON list of strings
    status TEXT NOT NULL,
    started REAL,
    ended REAL,
    failure_code TEXT,                     -- failure, once the task failed
    failure_message TEXT
);
CREATE INDEX IF NOT EXISTS tasks_by_fingerprint ON tasks (account, fingerprint);
CREATE TABLE IF NOT EXISTS submit_counts ( -- task ids derive from these: they must never repeat
    account TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (account, body_sha256)
);
CREATE TABLE IF NOT EXISTS policies (
    text TEXT PRIMARY KEY,                 -- the base64 policy document
    signature TEXT NOT NULL,
    access_key_id TEXT NOT NULL,
    account TEXT NOT NULL,
    model TEXT NOT NULL,
    upload_dir TEXT NOT NULL,
    expires REAL NOT NULL,
    max_bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS objects (       -- the bytes are in objects/<sha256>
    key TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    model TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    stored REAL NOT NULL
);
"""

_TASK_COLUMNS = (
    "task_id", "provider", "account", "model", "request_id", "prompt", "output", "billed_output", "billed_input",
    "billed_exact", "fingerprint", "submitted", "generation_seconds", "start_failure_code", "start_failure_message",
    "end_failure_code", "end_failure_message", "webhook_url", "fault", "adjusted", "status", "started", "ended",
    "failure_code", "failure_message",
)  # fmt: skip
_MUTABLE = ("status", "started", "ended", "failure_code", "failure_message")  # all a task changes after its submit
_SAVE_TASK = (
    f"INSERT INTO tasks ({', '.join(_TASK_COLUMNS)}) VALUES ({', '.join('?' * len(_TASK_COLUMNS))}) "
    f"ON CONFLICT (task_id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _MUTABLE)}"
)


@dataclass
class Saved:
    """Everything a stopped simulator left in its folder."""

    tasks: list[Task]  # in submit order
    submit_counts: Counter[tuple[str, str]]
    policies: list[Policy]
    objects: list[StoredObject]
    clock: tuple[float, float] | None  # (provider now, wall time) at the last write; None: a new folder
    latest: float  # the latest provider time any stored record names
    secret: bytes | None


class SimStore:
    """The open state folder of one running simulator; use on the event loop thread only."""

    def __init__(self, folder: Path, db: sqlite3.Connection, lock: IO[bytes]):
        self.folder = folder
        self._db = db
        self._lock = lock
        self._now: Callable[[], float] | None = None  # the simulator's clock, once it has one
        self.port = _int(self._meta("port"))

    @classmethod
    def open(cls, folder: Path) -> SimStore:
        """Open (or make) the state folder; ValueError naming the path when it cannot be used."""
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"simulator state folder {folder} is not a folder")
        try:
            (folder / OBJECTS_DIR).mkdir(parents=True, exist_ok=True)
            probe = folder / f".probe-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
            for partial in (folder / OBJECTS_DIR).glob(".*.part"):  # left by a kill mid-upload
                partial.unlink()
            lock = open(folder / LOCK_FILE, "a+b")
        except OSError as err:
            raise ValueError(f"simulator state folder {folder} cannot be used: {err.strerror or err}") from None
        if fcntl is not None:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock.close()
                raise ValueError(f"simulator state folder {folder} is in use by another running simulator") from None
        try:
            db = _connect(folder / DB_FILE)
        except (sqlite3.Error, ValueError) as err:
            lock.close()
            raise ValueError(f"simulator state folder {folder}: {folder / DB_FILE} cannot be used: {err}") from None
        return cls(folder, db, lock)

    def __enter__(self) -> SimStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def attach(self, now: Callable[[], float]) -> None:
        """The clock every write stamps."""
        self._now = now

    def close(self) -> None:
        """Stamp the clock one last time and let the folder go."""
        try:
            self.stamp()
        finally:
            self._db.close()
            self._lock.close()

    # --- reading (at start) ------------------------------------------------------

    def load(self) -> Saved:
        return _load(self._db, self.folder)

    # --- writing: one transaction per change ------------------------------------------------

    def stamp(self) -> None:
        """Record provider now and the wall time (a clock advance, shutdown)."""
        with self._write():
            pass

    def save_meta(self, secret: bytes, port: int) -> None:
        with self._write() as db:
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [("secret", secret.hex()), ("port", str(port))])

    def save_task(self, task: Task) -> None:
        with self._write() as db:
            db.execute(_SAVE_TASK, _task_row(task))

    def save_count(self, key: tuple[str, str], count: int) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO submit_counts VALUES (?, ?, ?)", (*key, count))

    def save_policy(self, policy: Policy) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO policies VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (policy.text, policy.signature, policy.access_key_id, policy.account, policy.model, policy.upload_dir, policy.expires, policy.max_bytes),
            )

    def save_object(self, stored: StoredObject) -> None:
        """The file first (atomically, named by content), then its row: a kill between
        the two leaves an unused file, never a row without its bytes."""
        sha = _write_object(self.folder / OBJECTS_DIR, stored.data)
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?, ?, ?)",
                (stored.key, stored.account, stored.model, sha, len(stored.data), stored.content_type, stored.stored),
            )

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            if self._now is not None:
                db.execute("INSERT OR REPLACE INTO clock VALUES (1, ?, ?)", (self._now(), time.time()))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None


def resumed_now(saved: Saved, mode: str, scale: float, wall_now: float) -> float | None:
    """Provider time for a simulator started on ``saved``; None for a new folder (start at the wall time).

    "paused": where it stood at the last write. "wall": plus the wall time since, at the
    time scale (this start's, should it differ [guess]). Never before any stored time,
    so nothing stored lies in the future.
    """
    if saved.clock is None:
        return None
    provider_now, wall_at = saved.clock
    if mode == "wall":
        provider_now += max(0.0, wall_now - wall_at) / scale  # a wall clock set back counts as no time
    return max(provider_now, saved.latest)


def read_ledger(folder: Path) -> Ledger:
    """A read-only view of the tasks a simulator kept in ``folder``, as its ledger lists them
    (``tasks()``, ``billed_seconds()``, ``duplicate_submissions()``): each task as last written.
    Safe while a simulator runs on the folder. ValueError when the folder holds no state."""
    path = Path(folder) / DB_FILE
    if not path.is_file():
        raise ValueError(f"no simulator state in {folder} (no {DB_FILE})")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
    try:
        rows = db.execute(f"SELECT {', '.join(_TASK_COLUMNS)} FROM tasks ORDER BY seq").fetchall()
    finally:
        db.close()
    ledger = Ledger()
    for row in rows:
        ledger.record_task(task_entry(_task(row)))
    return ledger


# --- rows ----------------------------------------------------------------------------------


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30.0, isolation_level=None)  # same-thread only: writes stay on the loop thread
    db.execute("PRAGMA journal_mode=WAL")
    # A committed transaction survives the process being killed; only a power cut could lose the last ones [guess: enough for a simulator].
    db.execute("PRAGMA synchronous=NORMAL")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        db.close()
        raise ValueError(f"made by a newer version (schema {version}, this one reads {SCHEMA_VERSION})")
    db.executescript(_SCHEMA)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return db


def _load(db: sqlite3.Connection, folder: Path) -> Saved:
    tasks = [_task(row) for row in db.execute(f"SELECT {', '.join(_TASK_COLUMNS)} FROM tasks ORDER BY seq")]
    counts: Counter[tuple[str, str]] = Counter({(a, b): n for a, b, n in db.execute("SELECT account, body_sha256, count FROM submit_counts")})
    policies = [Policy(*row) for row in db.execute("SELECT text, signature, access_key_id, account, model, upload_dir, expires, max_bytes FROM policies")]
    objects: list[StoredObject] = []
    contents: dict[str, bytes] = {}  # one copy of each file's bytes, however many keys name it
    for key, account, model, sha, content_type, stored in db.execute("SELECT key, account, model, sha256, content_type, stored FROM objects"):
        if sha not in contents:
            try:
                contents[sha] = (folder / OBJECTS_DIR / sha).read_bytes()
            except OSError as err:
                log.warning("uploaded file %s is gone from the state folder (%s); its key is forgotten", key, err)
                continue
        objects.append(StoredObject(key, account, model, contents[sha], content_type, stored))
    clock = db.execute("SELECT provider_now, wall_at FROM clock WHERE id = 1").fetchone()
    times = [t for task in tasks for t in (task.submitted, task.started, task.ended) if t is not None]
    times += [o.stored for o in objects]
    secret = db.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()
    return Saved(
        tasks=tasks,
        submit_counts=counts,
        policies=policies,
        objects=objects,
        clock=(clock[0], clock[1]) if clock else None,
        latest=max(times, default=0.0),
        secret=bytes.fromhex(secret[0]) if secret else None,
    )


def _task_row(task: Task) -> tuple[Any, ...]:
    start, end, failure = task.fail_at_start, task.fail_at_end, task.failure
    return (
        task.task_id, task.provider, task.account, task.model, task.request_id, task.prompt,
        json.dumps(asdict(task.output)), str(task.billed.output), str(task.billed.input), int(task.billed.exact),
        task.fingerprint, task.submitted, task.generation_seconds,
        start and start.code, start and start.message, end and end.code, end and end.message,
        task.webhook_url, task.fault, json.dumps(list(task.adjusted)), task.status, task.started, task.ended,
        failure and failure.code, failure and failure.message,
    )  # fmt: skip


def _task(row: tuple[Any, ...]) -> Task:
    f = dict(zip(_TASK_COLUMNS, row))
    return Task(
        task_id=f["task_id"],
        provider=f["provider"],
        account=f["account"],
        model=f["model"],
        request_id=f["request_id"],
        prompt=f["prompt"],
        output=Output(**json.loads(f["output"])),
        billed=Billed(Decimal(f["billed_output"]), Decimal(f["billed_input"]), bool(f["billed_exact"])),
        fingerprint=f["fingerprint"],
        submitted=f["submitted"],
        generation_seconds=f["generation_seconds"],
        fail_at_start=_failure(f["start_failure_code"], f["start_failure_message"]),
        fail_at_end=_failure(f["end_failure_code"], f["end_failure_message"]),
        webhook_url=f["webhook_url"],
        fault=f["fault"],
        adjusted=tuple(json.loads(f["adjusted"])),
        status=f["status"],
        started=f["started"],
        ended=f["ended"],
        failure=_failure(f["failure_code"], f["failure_message"]),
    )


def _failure(code: str | None, message: str | None) -> Failure | None:
    return None if code is None else Failure(code, message or "")


def _write_object(folder: Path, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    path = folder / sha
    if not path.exists():  # named by content: an existing file already holds these bytes
        partial = folder / f".{sha}.{uuid.uuid4().hex}.part"
        partial.write_bytes(data)
        os.replace(partial, path)  # atomic: a kill leaves the whole file or none
    return sha


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None
