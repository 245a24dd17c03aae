"""``r2v status``: each planned shot as the ledger knows it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping

from ..manifest.load import display_name
from ..catalog.billing import bill_differs
from ..plan.planner import Plan, PlannedShot
from .ledger_store import ShotRecord
from .states import LedgerState


def status_json(plan: Plan, records: Mapping[str, ShotRecord], holders: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``holders``: the live runs by id and where each runs, as the ledger knows them."""
    shots = []
    for shot in plan.shots:
        record = records.get(shot.fingerprint)
        owner = record.owner if record else None
        shots.append(
            {
                "key": shot.key,
                "fingerprint": shot.fingerprint,
                "state": record.state.value if record else "not run",
                "task_id": record.task_id if record else None,
                "attempts": record.attempts if record else 0,
                "code": record.code if record else None,
                "message": record.message if record else None,
                "output": display_name(Path(record.output)) if record and record.output and record.state is LedgerState.DOWNLOADED else None,
                "updated": _time(record.updated_at) if record else None,
                "planned_seconds": record.planned_seconds if record else None,
                "billed_seconds": record.billed_seconds if record else None,  # as the provider's usage says
                "billing_differs": _differs(shot, record),
                # which run (and host) holds the shot now; None when no live run does
                "held_by": {"run": owner, "where": (holders or {})[owner]} if owner and owner in (holders or {}) else None,
            }
        )
    return {"shots": shots}


def status_table(plan: Plan, records: Mapping[str, ShotRecord], holders: Mapping[str, str] | None = None) -> str:
    rows = [["shot", "state", "task", "updated", "detail"]]
    for s in status_json(plan, records, holders)["shots"]:
        detail = s["output"] or (f"{s['code']}: {s['message']}" if s["code"] else s["message"] or "")
        if s["held_by"]:
            detail = f"held by run {s['held_by']['run']} on {s['held_by']['where']}" + (f" · {detail}" if detail else "")
        if s["billing_differs"]:
            detail = f"billed {s['billed_seconds']:g} s, planned {s['planned_seconds']:g} s · {detail}"
        rows.append([s["key"], s["state"], s["task_id"] or "-", s["updated"] or "-", detail])
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows).rstrip()


def _differs(shot: PlannedShot, record: ShotRecord | None) -> bool:
    if record is None or record.billed_seconds is None:
        return False
    return bill_differs(shot.billed, bool(shot.unchecked), Decimal(str(record.billed_seconds)))


def _time(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")
