"""What a run is asked to do and what became of each shot: the data its parts share."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..plan.budget import fit
from ..plan.planner import Plan, PlannedShot
from .actions import Decision, Selection, Stores, decide_all, endpoints
from .ledger_store import LedgerStore, ShotRecord
from .backoff import Backoff
from .polling import PollPolicy
from .progress import Log
from .reach_policy import ReachPolicy
from .states import Action, LedgerState, ShotStatus
from .store import VideoStore



@dataclass(frozen=True)
class RunOptions:
    """How a run behaves: selection, retries and their backoffs, polling, outage patience, timing windows."""

    selection: Selection = Selection()
    max_resubmits: int = 2  # new submissions after transient task failures
    submit_backoff: Backoff = Backoff(base=1.0, cap=60.0, attempts=8)
    query_backoff: Backoff = Backoff(base=1.0, cap=30.0, attempts=20)
    download_backoff: Backoff = Backoff(base=2.0, cap=120.0, attempts=12)
    poll: PollPolicy = PollPolicy()
    reach: ReachPolicy = ReachPolicy()  # how long an unreachable provider is waited for
    # Wall seconds after an unanswered submit before an empty task list is believed:
    # a server may still be working on a request whose client is gone.
    settle: float = 120.0
    # Provider seconds a run keeps watching one task (DashScope gives up on a task
    # after 3 hours); then it lets go, and a later run picks the task up.
    patience: float = 4 * 3600.0
    seed: int | None = None  # for the jitter, so tests can repeat a run exactly


@dataclass(frozen=True)
class RunContext:
    """What every part of one run shares: the ledger, the log, the options and the jitter."""

    ledger: LedgerStore
    log: Log
    options: RunOptions
    rng: random.Random


@dataclass
class Work:
    """One planned shot, what this run was decided to do with it, and what became of it."""

    shot: PlannedShot
    action: Action
    reason: str
    source: PlannedShot | None = None  # for "copy": the shot whose video this one shares
    changes: tuple[str, ...] = ()  # for a shot made again: what changed since its last version
    status: ShotStatus = ShotStatus.PENDING  # what became of it: set once, when its walk ends
    held: bool = False
    adopted: str | None = None  # a task an earlier run paid for, found at the provider instead of paying again

    @property
    def carried(self) -> bool:
        return self.action.carried

    @property
    def offline(self) -> bool:
        return self.action.offline


@dataclass(frozen=True)
class RunResult:
    """What a run did: each shot's end, the paid tasks of earlier versions it fetched,
    the endpoints it gave up on and what this machine could not do."""

    work: list[Work]
    recovered: list[dict[str, Any]]
    unreachable: list[str]
    environment: list[str]
    accounts: list[dict[str, Any]] = field(default_factory=list)  # each account the run could use; "lost": why it left the pool


@dataclass(frozen=True)
class Job:
    """What following a task and fetching its video need: from a planned shot, or
    from a ledger row of an earlier version of a planned shot (an orphan: paid,
    not yet fetched; its video goes to the store and a superseded/ link)."""

    fingerprint: str
    key: str
    provider: str
    model: str
    resolution: str  # with duration, which past tasks the poll schedule learns from
    duration: int
    output: Path  # the shot's output path
    store: VideoStore
    shot: PlannedShot | None = None  # None for an orphan: nothing to submit, only to finish

    @classmethod
    def of(cls, shot: PlannedShot, store: VideoStore) -> Job:
        return cls(shot.fingerprint, shot.key, shot.spec.provider, shot.spec.model, shot.resolution, int(shot.billed.output), shot.output, store, shot)

    @classmethod
    def orphan(cls, record: ShotRecord, shot: PlannedShot, store: VideoStore) -> Job:
        return cls(record.fingerprint, record.key, record.provider, record.model, "", 0, shot.output, store)


class Stalled(Exception):
    """This run cannot carry a shot further; its ledger row stays as it is for a later run."""


class NotSent(Exception):
    """A shot's request provably created no task and this run stops trying (the provider
    is unreachable or stays busy): it stays planned, and the next run sends it."""


def decide_work(plan: Plan, ledger: LedgerStore, stores: Stores, selection: Selection, log: Log, now: float) -> list[Work]:
    """What this run does with each planned shot. A request an earlier r2v version wrote
    differently takes its row and stored video over (once, here); the budget holds
    back, in plan order, what would be billed anew past it."""
    decided = decide_all(plan.shots, ledger, stores, selection, now)
    for shot in plan.shots:
        earlier = decided[shot.key].earlier
        if earlier is not None:  # its task and video are this shot's
            ledger.refingerprint(earlier, shot.fingerprint, decided[shot.key].reason)
            stores.of(shot).alias(earlier, shot.fingerprint, decided[shot.key].reason)
            log.event(shot.key, "format changed", message=decided[shot.key].reason)
    _, held = fit(plan.budgets, [s for s in plan.shots if decided[s.key].spends])
    held_keys = {s.fingerprint for s in held}
    return [_work(shot, decided[shot.key], shot.fingerprint in held_keys) for shot in plan.shots]


def _work(shot: PlannedShot, d: Decision, over_budget: bool) -> Work:
    if over_budget and d.action in (Action.SUBMIT, Action.COPY):
        return Work(shot, Action.HELD, Action.HELD.meaning, d.source, d.changes, held=True)
    return Work(shot, d.action, d.reason, d.source, d.changes)


def orphan_rows(plan: Plan, ledger: LedgerStore) -> list[tuple[PlannedShot, ShotRecord]]:
    """Tasks earlier runs left in progress or unfetched for an earlier version of a
    shot this run plans: paid for, so fetched into superseded/. Rows of shots this
    run does not plan (another episode's, say) are left to the runs that do."""
    by_key = {s.key: s for s in plan.shots}
    planned = {s.fingerprint for s in plan.shots}
    return [
        (by_key[r.key], r)
        for r in ledger.unfinished_elsewhere()
        if r.key in by_key and r.fingerprint not in planned and r.state in (LedgerState.SUBMITTED, LedgerState.SUCCEEDED)
        and (r.endpoint is None or r.endpoint in endpoints(by_key[r.key]))
    ]


def shots_needing_providers(work: list[Work], orphans: list[tuple[PlannedShot, ShotRecord]]) -> list[PlannedShot]:
    return [w.shot for w in work if w.carried and not w.offline] + [shot for shot, _ in orphans]
