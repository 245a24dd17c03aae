"""What a run does with each planned shot, given what the ledger remembers of it."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Mapping, Sequence

from ..plan.planner import PlannedShot
from .download import recorded_fingerprint
from .ledger import Ledger, ShotRecord

RESULT_LIFE = 24 * 3600.0  # a result URL serves the video this long [doc]

# action -> what it means; "submit", "resume" and "download" spend or save money,
# the others leave the shot as it is.
ACTIONS = {
    "submit": "a new request",
    "reconcile": "an earlier submit may have gone through: find its task first",
    "resume": "poll the task an earlier run submitted",
    "download": "fetch the finished video",
    "skip": "already downloaded",
    "copy": "the same request as another shot: its video is copied, not made again",
    "failed": "failed before",
    "ambiguous": "an earlier submit could not be matched to a task",
    "expired": "the provider's copy expired before it was downloaded",
    "elsewhere": "another r2v run holds it",
    "unselected": "not selected",
}


@dataclass(frozen=True)
class Selection:
    only: Sequence[str] = ()  # glob patterns over shot keys or ids; empty: all
    force: Sequence[str] = ()  # make these again even if done
    retry_failed: bool = False

    def selected(self, shot: PlannedShot) -> bool:
        return not self.only or _matches(shot, self.only)

    def forced(self, shot: PlannedShot) -> bool:
        return _matches(shot, self.force)


def _matches(shot: PlannedShot, patterns: Sequence[str]) -> bool:
    names = (shot.key, shot.key.split("#")[0], shot.shot, f"{shot.episode}/{shot.shot}")
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns for name in names)


def decide_all(
    shots: Sequence[PlannedShot], records: Mapping[str, ShotRecord], ledger: Ledger | None, selection: Selection, now: float
) -> list[tuple[str, str, PlannedShot | None]]:
    """(action, reason, source) per shot. Shots asking exactly the same request share
    one video: the first makes it, the others copy it (``source``)."""
    out: list[tuple[str, str, PlannedShot | None]] = []
    first: dict[str, PlannedShot] = {}
    for shot in shots:
        action, reason = decide(shot, records.get(shot.fingerprint), ledger, selection, now)
        source = first.get(shot.fingerprint)
        if source is not None and action in ("submit", "reconcile", "resume", "download", "copy"):
            action, reason = "copy", f"the same request as {source.key}: its video is copied, not made again"
        elif action in ("submit", "reconcile", "resume", "download", "skip"):
            first.setdefault(shot.fingerprint, shot)
        out.append((action, reason, source))
    return out


def has_video(shot: PlannedShot) -> bool:
    """The shot's own video is on disk, of this very request (its sidecar says so)."""
    return shot.output.is_file() and recorded_fingerprint(shot.output) == shot.fingerprint


def decide(shot: PlannedShot, record: ShotRecord | None, ledger: Ledger | None, selection: Selection, now: float) -> tuple[str, str]:
    """(action, reason) for one shot."""
    if not selection.selected(shot):
        return "unselected", ACTIONS["unselected"]
    if record is not None and ledger is not None and record.owner not in (None, ledger.run_id) and ledger.owner_alive(record.owner):
        return "elsewhere", ACTIONS["elsewhere"]
    state = record.state if record is not None else "planned"
    if selection.forced(shot) and (state in ("downloaded", "failed", "ambiguous", "expired") or has_video(shot)):
        return "submit", f"forced (was {state})"
    if has_video(shot):
        when = datetime.fromtimestamp(record.downloaded_at or 0) if record and record.downloaded_at else None
        return "skip", "already downloaded" + (f" ({when:%Y-%m-%d %H:%M})" if when else "")
    if record is None or state == "planned":
        return "submit", ACTIONS["submit"]
    if state in ("submitting", "submitted", "succeeded") and record.endpoint and record.endpoint != shot.target.base_url:
        return "elsewhere", f"its task went to {record.endpoint}: run with that provider setting (--region, --base-url) to fetch it"
    if state == "downloaded":
        if record.output and Path(record.output).is_file():  # another shot with the same request made it
            return "copy", f"the same request as {record.key}: its video is copied, not made again"
        if record.result_url and now - (record.finished_at or 0) < RESULT_LIFE:
            return "download", "the video file is missing: fetch it again"
        return "failed", "the video file is missing and the provider's copy has expired; --force makes it again"
    if state == "submitting":
        return "reconcile", ACTIONS["reconcile"]
    if state == "submitted":
        return "resume", f"poll task {record.task_id}"
    if state == "succeeded":
        return "download", ACTIONS["download"]
    if state == "failed":
        if selection.retry_failed:
            return "submit", f"retry after {record.code}"
        return "failed", f"failed before: {record.code}: {record.message} (--retry-failed to try again)"
    if state == "ambiguous":
        return "ambiguous", f"{record.message} (--force to submit again)"
    if state == "expired":
        return "expired", f"{record.message} (--force to make it again)"
    return "submit", ACTIONS["submit"]
