"""What a run does with each planned shot, given what the ledger and the video store remember."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Sequence

from ..plan.changes import describe_changes
from ..plan.planner import PlannedShot
from .ledger_store import LedgerView, ShotRecord
from .selection import Selection
from .states import Action, LedgerState
from .store import Stores as Stores, VideoStore, sidecars_kept  # Stores: where its callers have found it

RESULT_LIFE = 24 * 3600.0  # a result URL serves the video this long [doc]



@dataclass(frozen=True)
class Decision:
    """What to do with one planned shot, and why."""

    action: Action
    reason: str
    source: PlannedShot | None = None  # for "copy": the shot whose video this one shares
    changes: tuple[str, ...] = ()  # for a shot made again: what changed since its last version
    earlier: str | None = None  # the fingerprint an earlier version gave this request, whose task or video it takes

    @property
    def spends(self) -> bool:
        return self.action.spends


def decide_all(shots: Sequence[PlannedShot], ledger: LedgerView | None, stores: Stores, selection: Selection, now: float) -> dict[str, Decision]:
    """A decision per shot, by shot key: derived from the plan, the ledger and the store,
    never written into the plan. Shots asking exactly the same request share one video:
    the first makes (or reuses) it, the others are placed from the store after it."""
    with sidecars_kept():  # its report reads the same sidecars again
        return _decide_all(shots, ledger, stores, selection, now)


def _decide_all(shots: Sequence[PlannedShot], ledger: LedgerView | None, stores: Stores, selection: Selection, now: float) -> dict[str, Decision]:
    fingerprints = [s.fingerprint for s in shots] + [e.fingerprint for s in shots for e in s.earlier]
    records = ledger.records(fingerprints) if ledger else {}
    versions: dict[str, list[ShotRecord]] | None = None  # read once a shot is made anew: a rerun with nothing to do never needs them
    out: dict[str, Decision] = {}
    first: dict[str, PlannedShot] = {}
    for shot in shots:
        decision = decide(shot, records.get(shot.fingerprint), ledger, stores.of(shot), selection, now)
        if decision.action is Action.SUBMIT and decision.reason == Action.SUBMIT.meaning and not selection.remake_reformatted:
            decision = _made_before(shot, records, stores.of(shot), now) or decision
        source = first.get(shot.fingerprint)
        if source is not None and decision.action.carried:
            decision = Decision(Action.COPY, f"the same request as {source.key}: its video is shared, not made again", source)
        elif decision.action in (Action.SUBMIT, Action.RECONCILE, Action.RESUME, Action.DOWNLOAD, Action.SKIP, Action.REUSE):
            first.setdefault(shot.fingerprint, shot)
        if decision.action is Action.SUBMIT and decision.reason == Action.SUBMIT.meaning:
            if versions is None:
                versions = ledger.versions([s.key for s in shots]) if ledger else {}
            decision = _explained(decision, shot, versions.get(shot.key, []))
        out[shot.key] = decision
    return out


def decide(shot: PlannedShot, record: ShotRecord | None, ledger: LedgerView | None, store: VideoStore, selection: Selection, now: float) -> Decision:
    if not selection.selected(shot):
        return Decision(Action.UNSELECTED, Action.UNSELECTED.meaning)
    if record is not None and ledger is not None and not ledger.shared and record.owner not in (None, ledger.run_id) and ledger.owner_alive(record.owner):
        return Decision(Action.ELSEWHERE, Action.ELSEWHERE.meaning)  # (a shared ledger's run waits for the shot instead)
    state = record.state if record is not None else LedgerState.PLANNED
    in_place = store.is_materialised(shot.fingerprint, shot.output)
    if selection.forced(shot) and (state in (LedgerState.DOWNLOADED, LedgerState.FAILED, LedgerState.AMBIGUOUS, LedgerState.EXPIRED) or in_place or store.find(shot.fingerprint)):
        return Decision(Action.SUBMIT, f"forced (was {state})")
    if in_place:
        when = datetime.fromtimestamp(record.downloaded_at) if record and record.downloaded_at else None
        return Decision(Action.SKIP, "already downloaded" + (f" ({when:%Y-%m-%d %H:%M})" if when else ""))
    stored = store.find(shot.fingerprint)  # (looked up only here: a shot in place needs no store lookup)
    if stored is not None:
        return Decision(Action.REUSE, _paid_by(stored.meta))
    if record is None or state == LedgerState.PLANNED:
        return Decision(Action.SUBMIT, Action.SUBMIT.meaning)
    if state in (LedgerState.SUBMITTING, LedgerState.SUBMITTED, LedgerState.SUCCEEDED) and record.endpoint and record.endpoint not in endpoints(shot):
        return Decision(Action.ELSEWHERE, f"its task went to {record.endpoint}: run with that provider setting (--region, --base-url) to fetch it")
    if state == LedgerState.DOWNLOADED:
        if record.result_url and now - (record.finished_at or 0) < RESULT_LIFE:
            return Decision(Action.DOWNLOAD, "the video file is missing: fetch it again")
        return Decision(Action.FAILED, "the video file is missing and the provider's copy has expired; --force makes it again")
    if state == LedgerState.SUBMITTING:
        return Decision(Action.RECONCILE, Action.RECONCILE.meaning)
    if state == LedgerState.SUBMITTED:
        return Decision(Action.RESUME, f"poll task {record.task_id}")
    if state == LedgerState.SUCCEEDED:
        return Decision(Action.DOWNLOAD, Action.DOWNLOAD.meaning)
    if state == LedgerState.FAILED:
        if selection.retry_failed:
            return Decision(Action.SUBMIT, f"retry after {record.code}")
        return Decision(Action.FAILED, f"failed before: {record.code}: {record.message} (--retry-failed to try again)")
    if state == LedgerState.AMBIGUOUS:
        return Decision(Action.AMBIGUOUS, f"{record.message} (--force to submit again)")
    if state == LedgerState.EXPIRED:
        return Decision(Action.EXPIRED, f"{record.message} (--force to make it again)")
    # A state nobody taught this function: never pay on a guess.
    raise AssertionError(f"internal error: no decision for a shot in state {state}")


def endpoints(shot: PlannedShot) -> set[str]:
    """Where the shot's task may have gone: the endpoint of each account it may use (an
    account may have a region of its own), and the provider's."""
    return {shot.target.base_url, *(shot.target.account(name).base_url for name in shot.accounts)}


def _made_before(shot: PlannedShot, records: dict[str, ShotRecord], store: VideoStore, now: float) -> Decision | None:
    """The shot as an earlier r2v version wrote its request: its video or task is this
    shot's (an upgrade does not make a shot look edited)."""
    for earlier in shot.earlier:
        why = f"request format changed by r2v {earlier.version}: {earlier.what}; what was made before is kept (--remake-reformatted makes it again)"
        if store.find(earlier.fingerprint) is not None:
            return Decision(Action.REUSE, why, earlier=earlier.fingerprint)
        record = records.get(earlier.fingerprint)
        if record is None:
            continue
        if record.state == LedgerState.SUBMITTED:
            return Decision(Action.RESUME, why, earlier=earlier.fingerprint)
        if record.state == LedgerState.SUCCEEDED or (record.state == LedgerState.DOWNLOADED and record.result_url and now - (record.finished_at or 0) < RESULT_LIFE):
            return Decision(Action.DOWNLOAD, why, earlier=earlier.fingerprint)
        if record.state == LedgerState.SUBMITTING:
            return Decision(Action.RECONCILE, why, earlier=earlier.fingerprint)
    return None


def _paid_by(meta: dict) -> str:
    """'reused from the store: paid by run 1a2b3c on 2026-11-30 14:02 (task …)'."""
    run = meta.get("paid_by_run")
    stamps = meta.get("timestamps") or {}
    when = stamps.get("submitted") or stamps.get("finished")
    parts = ["reused from the store: paid"]
    if run:
        parts.append(f"by run {run}")
    if isinstance(when, (int, float)):
        parts.append(f"on {datetime.fromtimestamp(when):%Y-%m-%d %H:%M}")
    if meta.get("task_id"):
        parts.append(f"(task {meta['task_id']})")
    if meta.get("key"):
        parts.append(f"for {meta['key']}")
    return " ".join(parts)


def _explained(decision: Decision, shot: PlannedShot, versions: list[ShotRecord]) -> Decision:
    """A new request for a shot that had another one: say what changed since."""
    previous = next((r for r in versions if r.fingerprint != shot.fingerprint and r.request_data), None)
    if previous is None or previous.request_data is None:
        return decision
    files = {url: f.info.sha256 for url, f in shot.files.items()}
    changes = tuple(describe_changes(previous.request_data, shot.spec, shot.body, files))
    when = datetime.fromtimestamp(previous.updated_at)
    return Decision(Action.SUBMIT, f"edited since its version of {when:%Y-%m-%d %H:%M}", changes=changes)


def decide_from_ledger(
    shots: Sequence[PlannedShot], folder: Path | None, selection: Selection, now: float, url: str | None = None, simulated: bool = False,
) -> dict[str, Decision]:  # fmt: skip
    """What a run would do with each shot (by key), from what the ledger (in ``folder``,
    or the shared one at ``url``) and the video store remember; the ledger is only read."""
    from .open_ledger import peek_store  # sqlite3 or psycopg: only where a ledger is read

    ledger = peek_store(url, folder, simulated)
    try:
        return decide_all(shots, ledger, Stores(), selection, now)
    finally:
        if ledger:
            ledger.close()
