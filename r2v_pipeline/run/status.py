"""``r2v status``: each planned shot as the ledger knows it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping

from ..manifest.load import display_name
from ..catalog import registry
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
                "account": _account_label(shot, record.account) if record else None,
            }
        )
    return {"shots": shots, "accounts": _slots(plan, records)}


def _account_label(shot: PlannedShot, ledger_account: str) -> str:
    """An account as the manifest names it ("dashscope:main:<key hash>", or the older
    "dashscope:main" → main); the provider's one account by its provider."""
    provider, colon, name = ledger_account.partition(":")
    return name.partition(":")[0] if colon and provider == shot.spec.provider else shot.spec.provider


def _slots(plan: Plan, records: Mapping[str, ShotRecord]) -> list[dict[str, Any]]:
    """Each account's slots in use (tasks submitted or being submitted) by the shots shown, beside its quota."""
    used: dict[str, int] = {}
    capacity: dict[str, int] = {}
    for shot in plan.shots:
        for name in shot.accounts:
            target = shot.target.account(name)
            quota = {**registry.table(shot.spec.provider).quota, **target.quota}
            capacity.setdefault(name or shot.spec.provider, int(quota["in_progress"]))
        record = records.get(shot.fingerprint)
        if record is not None and record.state.in_progress:
            label = _account_label(shot, record.account)
            used[label] = used.get(label, 0) + 1
    return [{"account": name, "in_progress": used.get(name, 0), "slots": slots} for name, slots in capacity.items()]


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
    table = "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows).rstrip()
    slots = status_json(plan, records)["accounts"]
    if len(slots) > 1:
        table += "\n\nslots in use: " + ", ".join(f"{a['account']} {a['in_progress']}/{a['slots']}" for a in slots)
    return table


def _differs(shot: PlannedShot, record: ShotRecord | None) -> bool:
    if record is None or record.billed_seconds is None:
        return False
    return bill_differs(shot.billed, bool(shot.unchecked), Decimal(str(record.billed_seconds)))


def _time(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")
