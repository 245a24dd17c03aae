"""What the run, ``r2v status`` and the report ask of a ledger: operations, not storage.

SQLite (ledger.py) is one ledger; another store (a database server shared by
hosts) fits in by offering the same operations with the same promises: every
state change is one committed transaction, a shot is claimed by one live run
at a time, and a state is only written along ``states.TRANSITIONS``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol

from .states import LedgerState


@dataclass(frozen=True)
class ShotRecord:
    """One shot's row in the ledger: its request, state, task, video and payment."""

    fingerprint: str
    key: str
    provider: str
    model: str
    account: str
    endpoint: str | None  # the planned API base a task went through
    state: LedgerState
    task_id: str | None = None
    attempts: int = 0
    owner: str | None = None
    output: str | None = None
    submit_started: float | None = None
    submitted_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    downloaded_at: float | None = None
    result_url: str | None = None
    usage: str | None = None  # JSON text as the provider gave it
    sha256: str | None = None
    bytes: int | None = None
    code: str | None = None
    message: str | None = None
    updated_at: float = 0.0
    submitted_by: str | None = None  # the run that recorded the submit: the one that paid
    request: str | None = None  # JSON: provider, model, body and local files' hashes, to say what an edit changed
    planned_seconds: float | None = None  # what the plan said the request bills
    billed_seconds: float | None = None  # what the provider said it billed (usage), where it says

    @property
    def request_data(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.request) if self.request else None
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    @property
    def usage_data(self) -> dict[str, Any] | None:
        return json.loads(self.usage) if self.usage else None


# A shot's row in these states follows a paid task: a second task recorded for the
# shot never replaces it, it gets a row of its own (see second_task).
FOLLOWING = frozenset({LedgerState.SUBMITTED, LedgerState.SUCCEEDED, LedgerState.DOWNLOADED})


def second_task(fingerprint: str, task_id: str) -> str:
    """The row name of a second paid task of one shot (a fenced run's late answer racing
    the run that took over): unplanned, so runs fetch it into superseded/ as they do an
    earlier version's task. Its own 12-character prefix: superseded/ names files by it."""
    return hashlib.sha256(f"{fingerprint}\n{task_id}".encode()).hexdigest()


def second_task_row(record: ShotRecord, task_id: str, account: str, model: str, paid_by: str | None, now: float) -> dict[str, Any]:
    """The row of a second paid task of ``record``'s shot: submitted, held by no run, so
    the next run that plans the shot recovers it (work.orphan_rows)."""
    return {
        "fingerprint": second_task(record.fingerprint, task_id), "key": record.key, "provider": record.provider, "model": model,
        "account": account, "endpoint": record.endpoint, "state": LedgerState.SUBMITTED.value, "task_id": task_id, "attempts": 1,
        "output": record.output, "submitted_at": now, "submitted_by": paid_by, "request": record.request,
        "planned_seconds": record.planned_seconds, "message": f"a second task of {record.fingerprint[:12]}, fetched aside", "updated_at": now,
    }  # fmt: skip


@dataclass(frozen=True)
class Charge:
    """A task a run saw succeed: billed once, whichever runs fetch it later."""

    run_id: str
    task_id: str
    key: str  # series/episode/shot[#takeN]
    provider: str
    model: str
    account: str
    planned_seconds: float | None
    billed_seconds: float | None  # the provider's figure; None where it gives none (the plan's stands)
    cost: float | None  # at the plan's rate, of the seconds that stand; None without a price
    at: float  # when the run recorded it (epoch seconds)

    @property
    def seconds(self) -> float | None:
        return self.billed_seconds if self.billed_seconds is not None else self.planned_seconds

    @property
    def source(self) -> str:
        """Where the seconds come from: the provider's usage, or the plan's figure."""
        return "provider" if self.billed_seconds is not None else "plan"


@dataclass(frozen=True)
class RunRecord:
    """A run that ended: when, on which host, how, over which episodes (series/episode)."""

    run_id: str
    host: str
    started_at: float
    finished_at: float
    exit_code: int
    episodes: tuple[str, ...]


# A task a killed run left in progress still takes a slot at the provider: its row keeps
# the dead run as owner (a run that ends lets its rows go) and is counted for this long
# after it last changed (generations take 1-5 minutes, queues more), so the runs that
# outlive a killed one stay inside the account's limit until one of them takes the shot
# over. A row let go (no owner) is not counted: nobody follows it, and a task that ended
# long ago must not hold a slot for ever.
DEAD_RUN_IN_FLIGHT = 900.0


SENT_THROUGH = "sent through"  # the event naming the key (its hash) a submit went out with


def sent_through(events: list[tuple[float, str, str | None]]) -> str | None:
    """The key (its hash) the shot's last submit went out with, from its events; None for
    a submit an earlier r2v began, which did not say."""
    return next((detail for _, event, detail in reversed(events) if event == SENT_THROUGH), None)


class TaskTaken(Exception):
    """The task is already recorded for another shot: a task found in a list (adopted or
    matched) that another run, or another take, took first. Nothing was written."""


def refuse_if_taken(db: Any, mark: str, task_id: str, fingerprint: str) -> None:
    """Inside the transaction whose insert found ``task_id`` already recorded: TaskTaken
    unless it is ``fingerprint``'s (``mark``: the store's parameter mark)."""
    (owner,) = db.execute(f"SELECT fingerprint FROM tasks WHERE task_id = {mark}", (task_id,)).fetchone()
    if owner != fingerprint:
        raise TaskTaken(f"task {task_id} is already {owner[:12]}'s")


class Lost(Exception):
    """Another run took over a shot this run held (it judged this run gone)."""


class LedgerUnreachable(Exception):
    """The ledger's database server cannot be reached (at the start or mid-run): nothing
    more can be recorded, so nothing more is sent. Its message names the server, never
    its password."""


class LedgerView(Protocol):
    """Reading what a ledger remembers (``r2v plan`` and ``status`` read without claiming)."""

    @property
    def run_id(self) -> str: ...

    def get(self, fingerprint: str) -> ShotRecord | None: ...

    def records(self, fingerprints: list[str] | None = None) -> dict[str, ShotRecord]:
        """The rows of these shots (all when None), by fingerprint."""
        ...

    def versions(self, keys: list[str]) -> dict[str, list[ShotRecord]]:
        """Every request recorded for each shot key, newest first."""
        ...

    def events(self, fingerprint: str) -> list[tuple[float, str, str | None]]:
        """What happened to one request, oldest first: (time, event, detail)."""
        ...

    def owner_alive(self, owner: str | None) -> bool:
        """Whether the run that holds a shot still lives."""
        ...

    def charges(self) -> list[Charge]:
        """Every billed task, oldest first (``r2v history``, the report's episode to date)."""
        ...

    def runs(self) -> list[RunRecord]:
        """The runs that ended, oldest first."""
        ...

    @property
    def shared(self) -> bool:
        """Runs of several hosts work on this ledger at once: a shot another live run
        holds is waited for (and taken over if that run dies), not left to a later run."""
        ...

    def holders(self) -> dict[str, str]:
        """The live runs by id, each with where it runs ("host pid N"): who holds a shot."""
        ...

    def close(self) -> None: ...


class LedgerStore(LedgerView, Protocol):
    """The ledger a run writes: claims, the submit protocol, task outcomes, what it learns."""

    @property
    def fresh(self) -> bool:
        """Begun without the history of the tasks already made: adopt before paying."""
        ...

    @property
    def moved_aside(self) -> Path | None:
        """Where an unreadable ledger was kept when this one was begun."""
        ...

    # --- the run and its claims
    def heartbeat(self) -> None: ...

    def ended(self, started: float, finished: float, exit_code: int, episodes: list[str]) -> None:
        """Keep this run in the history (one row; a killed run leaves none)."""
        ...

    def enter(
        self, fingerprint: str, key: str, provider: str, model: str, account: str, endpoint: str, output: str,
        request: str | None = None, planned_seconds: float | None = None,
    ) -> ShotRecord | None:
        """Record a planned shot (if new) and claim it; None when another live run holds it."""
        ...

    def adopt(self, fingerprint: str) -> ShotRecord | None:
        """Claim an unfinished shot whose run is gone; None if its owner lives."""
        ...

    def release(self, fingerprint: str) -> None: ...

    def unfinished_elsewhere(self) -> list[ShotRecord]:
        """Unfinished shots whose run is gone: paid or maybe paid work to resume."""
        ...

    def known_tasks(self, account: str, from_store: bool = True) -> set[str]:
        """Task ids the ledger knows for the account; ``from_store``: also those learnt
        from the video store after a ledger was lost (their account unknown)."""

    def looked_over(self) -> None:
        """A run on a fresh ledger found what the provider had made: no longer fresh."""
        ...

    def recorded_task(self, fingerprint: str) -> tuple[str, str, str] | None:
        """(task id, account, model) of a task recorded for a shot in ``submitting`` since
        its submit began: the answer was written (its own transaction, first) and the run
        ended before the row moved on. The submit made that task; it is not to be sent again."""
        ...

    def answered_through(self, account: str, key: str, since: float) -> tuple[str, float] | None:
        """(task id, recorded at) of the account's newest task recorded since ``since`` as
        the answer to a submit sent with ``key`` (its hash; ``submitted(key=...)``). Read
        through another key, it tells whether that key sees the first one's tasks."""
        ...

    # --- the submit protocol and the task's outcome (each one transaction)
    def start_submit(self, fingerprint: str, account: str, slots: int, endpoint: str | None = None, key: str | None = None) -> bool:
        """planned → submitting if the account has a free slot across runs, recording the
        account (and endpoint) it goes through and, as a SENT_THROUGH event, which key
        (the provider's hash of it: ``sent_through``); raises Lost if another run took the shot."""
        ...

    def submitted(self, fingerprint: str, task_id: str, account: str, model: str, adopted: bool = False, key: str | None = None) -> None:
        """The shot's task is known. ``key``: the hash of the key the submit went out with,
        given only for the submit's own answer (so the task is known to be that key's).
        Raises TaskTaken, writing nothing, if the task is recorded for another shot: one
        task is never two shots' video."""
        ...

    def not_submitted(self, fingerprint: str, code: str | None = None, message: str | None = None) -> None: ...

    def succeeded(
        self, fingerprint: str, result_url: str, usage: dict[str, Any] | None, started_at: float | None = None,
        timing: tuple[str, str, str, int, float] | None = None, billed: float | None = None, cost: float | None = None,
    ) -> None:
        """Also records the charge (once per task id) under this run's id."""
        ...

    def downloaded(self, fingerprint: str, output: str, sha256: str, size: int) -> None: ...

    def failed(self, fingerprint: str, code: str, message: str, retry: bool = False) -> None: ...

    def ambiguous(self, fingerprint: str, message: str) -> None: ...

    def expired(self, fingerprint: str, message: str) -> None: ...

    def reset(self, fingerprint: str, message: str) -> None:
        """Back to planned on the user's word (--force, --retry-failed)."""
        ...

    # --- history kept across versions and lost ledgers
    def rebuild(self, videos: list[tuple[str, dict[str, Any], str]]) -> int:
        """Rows for paid videos found in the video store: (fingerprint, provenance, path)."""
        ...

    def refingerprint(self, earlier: str, current: str, why: str) -> bool: ...

    def note(self, fingerprint: str, event: str, detail: str | None = None) -> None: ...

    # --- what the run learns and caches
    def timings(self, provider: str, model: str, limit: int = 200) -> list[tuple[str, int, float]]: ...

    def upload(self, sha256: str, account: str, model: str, alive_until: float) -> str | None: ...

    def remember_upload(self, sha256: str, account: str, model: str, url: str, expires_at: float) -> None: ...


Records = Mapping[str, ShotRecord]  # a ledger's rows by fingerprint, read once: what a report is built from
