"""A run's report: per shot what became of it and why, what it billed, where it is; totals.

The report is plain data (its schema is schemas/report.schema.json); the
writers beside this module turn it into files. Paths in it are relative to the
report's own folder, so the folder can be moved or published whole.
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping, Sequence

from .. import __version__
from ..catalog.billing import as_number, bill_differs
from ..plan.planner import PlannedShot
from ..plan.pricing import cost, money
from ..run.history import Spend
from ..run.ledger_store import Records, ShotRecord
from ..run.states import LedgerState, ShotStatus
from ..run.work import Work

# Every status a report may show, with what it means (PENDING only on a stopped run's shots).
STATUSES = {s.value: s.meaning for s in ShotStatus if s is not ShotStatus.PENDING}


def build_report(
    work: Sequence[Work],
    records: Records,
    report_dir: Path,
    *,
    started: float,
    finished: float,
    exit_code: int,
    interrupted: bool = False,
    simulated: bool = False,
    currency: str | None = None,
    recovered: Sequence[dict[str, Any]] = (),
    unreachable: Sequence[str] = (),
    run_id: str | None = None,
    to_date: Mapping[str, Spend] | None = None,
    accounts: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    _real.cache_clear()  # folders resolved afresh for each report
    labels = {a["ledger_id"]: a["account"] for a in accounts}
    shots = [_shot(w, records.get(w.shot.fingerprint), report_dir, started, labels) for w in work]
    by_status = Counter(s["status"] for s in shots)
    billed_now = [s for s in shots if s["billed_in_this_run"]]
    costs = [Decimal(str(s["cost"])) for s in billed_now if s["cost"] is not None]
    report: dict[str, Any] = {
        "version": 1,
        "run": {
            **({"id": run_id} if run_id else {}),
            "r2v_version": __version__,
            "started": _iso(started),
            "finished": _iso(finished),
            "seconds": round(finished - started, 3),
            "simulated": simulated,
            "interrupted": interrupted,
            "unreachable": list(unreachable),  # endpoints the run gave up on
            "exit_code": exit_code,
            "manifests": sorted({_manifest(w.shot.manifest) for w in work}),
        },
        "totals": {
            "shots": len(shots),
            "by_status": dict(sorted(by_status.items())),
            "done": sum(n for s, n in by_status.items() if ShotStatus(s).done),
            "billed_seconds_this_run": as_number(sum((Decimal(str(s["billed_seconds"])) for s in billed_now), Decimal(0))),
            "cost_this_run": as_number(sum(costs, Decimal(0))) if len(costs) == len(billed_now) else None,
            "currency": currency,
            "held_back_seconds": as_number(sum((w.shot.billed.total for w in work if w.held), Decimal(0))),
            "billing_differences": sum(1 for s in shots if s["billing"]["differs"]),
        },
        "statuses": STATUSES,
        "shots": shots,
        "cuts": cuts_of([w.shot for w in work], report_dir),
        # Paid tasks of earlier versions of shots, fetched into superseded/.
        "recovered": [
            {**r, "output": _relative(r["output"], report_dir) if r["output"] else None} for r in recovered
        ],
        "accounts": _accounts(accounts, shots),
    }
    if to_date is not None:
        # Every run's charges the ledger knows for the run's episodes: what each has cost so far.
        report["episodes_to_date"] = {name: spend.as_json() for name, spend in to_date.items()}
    return report


def _accounts(accounts: Sequence[dict[str, Any]], shots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each account the run could send through: its slots, its shots, what it billed this run
    (a budget holds across accounts; this says where the money went), and, for one taken
    out of the pool, why."""
    out = []
    for a in accounts:
        mine = [s for s in shots if s["account"] == a["account"]]
        billed = [s for s in mine if s["billed_in_this_run"]]
        costs = [Decimal(str(s["cost"])) for s in billed if s["cost"] is not None]
        out.append(
            {
                "account": a["account"],
                "slots": a["slots"],
                "lost": a["lost"],
                "shots": len(mine),
                "billed_seconds_this_run": as_number(sum((Decimal(str(s["billed_seconds"])) for s in billed), Decimal(0))),
                "cost_this_run": as_number(sum(costs, Decimal(0))) if len(costs) == len(billed) else None,
            }
        )
    return out


def _shot(w: Work, record: ShotRecord | None, report_dir: Path, run_started: float, labels: dict[str, str] | None = None) -> dict[str, Any]:
    shot = w.shot
    usage = record.usage_data if record else None
    actual = _provider_billed(record, usage)
    billed = _billed(w.status, actual, shot.billed.total)
    differs = actual is not None and w.status.done and not w.adopted and bill_differs(shot.billed, bool(shot.unchecked), actual)
    finished = record.finished_at if record else None
    # Billed when its task succeeded (the provider's usage, else the plan's figure: Freepik reports none).
    billed_now = (
        record is not None and record.state in (LedgerState.SUCCEEDED, LedgerState.DOWNLOADED) and finished is not None and finished >= run_started
        and not w.adopted  # an earlier run paid for an adopted task
    )  # fmt: skip
    status = w.status
    reason = w.reason
    if record is not None and status in (ShotStatus.FAILED, ShotStatus.EXPIRED, ShotStatus.AMBIGUOUS) and record.message:
        reason = _scrub(f"{record.code}: {record.message}" if record.code else record.message, report_dir)
    elif status is ShotStatus.DOWNLOADED:
        reason = f"adopted task {w.adopted}, which an earlier run paid for" if w.adopted else "made and downloaded"
    elif status is ShotStatus.UNFINISHED and record is not None:
        reason = f"left {record.state}" + (f" (task {record.task_id})" if record.task_id else "") + "; the next run resumes it"
    if shot.review.every_take_rejected:
        reason = f"{reason}; every take was rejected in review: make another take, or pick one"
    output = str(shot.output) if status.done and shot.output.is_file() else None
    return {
        "key": shot.key,
        "series": shot.series,
        "episode": shot.episode,
        "shot": shot.shot,
        "take": shot.take,
        "manifest": _manifest(shot.manifest),
        "provider": shot.spec.provider,
        "model": shot.spec.model,
        "status": status.value,
        "reason": reason,
        "code": record.code if record else None,
        "task_id": record.task_id if record else None,
        # The account its task went through (as the manifest names it), once it was sent.
        "account": (labels or {}).get(record.account, _name(record.account)) if record and record.task_id else None,
        "fingerprint": shot.fingerprint,
        "billed_seconds": as_number(billed),
        "billed_exact": actual is not None or shot.billed.exact or billed == 0,
        "planned_seconds": as_number(shot.billed.total),
        "billed_in_this_run": billed_now,
        # The plan against the provider's bill: a difference means a table (or a guess) is wrong.
        "billing": {
            "planned": as_number(shot.billed.total),
            "billed": as_number(actual),
            "source": "provider" if actual is not None else "plan",
            "differs": differs,
        },
        "attention": differs or status.needs_attention or shot.review.every_take_rejected,
        "review": {
            "picked": shot.review.picked,
            "verdict": shot.review.verdict.value if shot.review.verdict else None,
            "pick_from": shot.review.source.value,
            "note": shot.review.note or None,
        },
        "changes": list(w.changes),  # for a shot made again: what changed since its last version
        "cost": as_number(cost(billed, shot.rate)),
        "output": _relative(output, report_dir) if output else None,
        "prompt": shot.prompt,
        "references": [
            {"name": r.name, "role": r.role, "label": r.label, "source": _source(r.source), "description": r.description}
            for r in shot.references
        ],
        "timings": _timings(record),
    }


# What editing software reads, beside each episode's cut (assemble.py writes them).
TIMELINE_FILES = (("OpenTimelineIO", ".otio"), ("FCP 7 XML", ".xml"), ("CMX 3600 EDL", ".edl"))


def cuts_of(shots: Sequence[PlannedShot], report_dir: Path) -> list[dict[str, Any]]:
    """Each episode's assembled cut and timelines that are on disk, and whether the cut
    holds the takes picked now (its sidecar's fingerprints against the plan's)."""
    episodes: dict[tuple[str, str], list[PlannedShot]] = {}
    for shot in shots:
        episodes.setdefault((shot.series, shot.episode), []).append(shot)
    cuts = []
    for (series, episode), members in episodes.items():
        video = members[0].output.parent.parent / f"{episode}.mp4"
        if not video.is_file():
            continue
        picked = [s.fingerprint for s in members if s.review.picked]
        try:
            recorded = [part.get("fingerprint") for part in json.loads(video.with_suffix(".json").read_text())["shots"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            recorded = None
        timelines = [
            {"format": name, "path": _relative(str(video.with_suffix(ending)), report_dir)}
            for name, ending in TIMELINE_FILES
            if video.with_suffix(ending).is_file()
        ]
        cuts.append(
            {"episode": f"{series}/{episode}", "video": _relative(str(video), report_dir), "current": recorded == picked, "timelines": timelines}
        )
    return cuts


def rebased(report: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The report as seen from another folder: each path in it (relative to the report's
    folder, see ``_relative``) starts with ``prefix`` ("../../" for runs/<id>/)."""
    on = lambda path: prefix + path if path else path  # noqa: E731
    return {
        **report,
        "shots": [{**s, "output": on(s["output"])} for s in report["shots"]],
        "cuts": [{**c, "video": on(c["video"]), "timelines": [{**t, "path": on(t["path"])} for t in c["timelines"]]} for c in report["cuts"]],
        "recovered": [{**r, "output": on(r["output"])} for r in report["recovered"]],
    }


def _scrub(text: str, report_dir: Path) -> str:
    """A message without the machine's folders in it (an OS error may name a file)."""
    for folder, instead in ((report_dir.resolve(), "."), (Path.cwd(), "."), (Path.home(), "~")):
        text = text.replace(str(folder) + "/", "" if instead == "." else instead + "/").replace(str(folder), instead)
    return text


def _provider_billed(record: ShotRecord | None, usage: dict[str, Any] | None) -> Decimal | None:
    """What the provider says it billed: input + output seconds from its usage (the ledger
    keeps the figure), else a usage that gives only its total; None where it says nothing."""
    if record is not None and record.billed_seconds is not None:
        return Decimal(str(record.billed_seconds))
    if usage and isinstance(usage.get("duration"), (int, float)):
        return Decimal(str(usage["duration"]))
    return None


def _billed(status: ShotStatus, actual: Decimal | None, planned: Decimal) -> Decimal:
    """What a shot cost, by what became of it (ShotStatus.billed), where the provider does not say."""
    if actual is not None:
        return actual
    return planned if status.billed else Decimal(0)


def _source(text: str) -> str:
    """A media source as the manifest wrote it; an absolute local path by its file name alone."""
    return Path(text).name if os.path.isabs(text) else text


def _manifest(name: str) -> str:
    """As the user named it (relative to the working folder); outside it, the file name alone."""
    return Path(name).name if os.path.isabs(name) else name


def _relative(path: str, report_dir: Path) -> str:
    """Paths in a report are relative to it: it may be published, and must not show the machine's folders."""
    folder, name = os.path.split(path)
    real = os.path.join(_real(folder), name)  # an episode's folder resolved once, not once a shot
    if os.path.islink(real):  # the file itself may lead elsewhere
        real = os.path.realpath(real)
    return os.path.relpath(real, _real(report_dir))


@functools.lru_cache(maxsize=1024)
def _real(folder: str | Path) -> str:
    """A folder (the report's, an episode's) resolved once per report rather than once per path in it."""
    return os.path.realpath(folder)


def _timings(record: ShotRecord | None) -> dict[str, Any]:
    marks = {
        "submitted": record.submitted_at if record else None,
        "started": record.started_at if record else None,
        "finished": record.finished_at if record else None,
        "downloaded": record.downloaded_at if record else None,
    }
    if record is None:
        return {**{name: None for name in marks}, "queue_seconds": None, "generation_seconds": None, "download_seconds": None}
    out: dict[str, Any] = {name: _iso(t) if t else None for name, t in marks.items()}
    out["queue_seconds"] = _span(record.submitted_at, record.started_at)
    out["generation_seconds"] = _span(record.started_at or record.submitted_at, record.finished_at)
    out["download_seconds"] = _span(record.finished_at, record.downloaded_at)
    return out


def _span(start: float | None, end: float | None) -> float | None:
    return round(end - start, 3) if start and end and end >= start else None


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")



def money_text(amount: float | None, currency: str | None) -> str:
    if amount is None:
        return "-"
    text = money(Decimal(str(amount)))
    return f"{text} {currency}" if currency else text


def _name(ledger_account: str) -> str:
    """An account no account of this run has the id of (its key or region changed since):
    its name as the manifest gives it ("dashscope:b:<key hash>" → b)."""
    provider, colon, rest = ledger_account.partition(":")
    return rest.partition(":")[0] if colon else ledger_account
