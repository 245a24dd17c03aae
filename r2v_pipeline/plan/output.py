"""A plan as people read it (a table) and as programs read it (JSON)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from ..catalog import registry
from ..catalog.billing import as_number
from ..manifest.load import display_name
from .budget import over_budget
from .action import Action
from .planner import Plan, PlannedShot


class Decided(Protocol):
    """What a run would do with a shot, and why (run/actions.Decision): read, never
    written into the plan."""

    @property
    def action(self) -> Action: ...

    @property
    def reason(self) -> str: ...

    @property
    def changes(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class _NotMade:
    """The decision for a shot no ledger knows: it has not been made."""

    action: Action = Action.SUBMIT
    reason: str = "not made yet"
    changes: tuple[str, ...] = ()


Decisions = Mapping[str, Decided]  # by shot key
NOT_MADE = _NotMade()  # a shot no decision names: nothing remembered of it


def to_submit(plan: Plan, decisions: Decisions) -> list[PlannedShot]:
    return [s for s in plan.shots if decisions.get(s.key, NOT_MADE).action.spends]


def plan_json(plan: Plan, decisions: Decisions) -> dict[str, Any]:
    return {
        "version": 1,
        "shots": [shot_json(s, decisions.get(s.key, NOT_MADE)) for s in plan.shots],
        "totals": _totals(plan, decisions),
        "budget_problems": over_budget(plan.budgets, to_submit(plan, decisions), plan.currency),
    }


def shot_json(s: PlannedShot, decided: Decided = NOT_MADE) -> dict[str, Any]:
    return {
        "key": s.key,
        "series": s.series,
        "episode": s.episode,
        "shot": s.shot,
        "take": s.take,
        "manifest": s.manifest,
        "provider": s.spec.provider,
        "model": s.spec.model,
        "table": s.spec.table,  # a snapshot's model, whose limits and billing apply
        "endpoint": s.target.base_url + registry.table(s.spec.provider).submit_path,
        "action": decided.action,
        "reason": decided.reason,
        "changes": list(decided.changes),
        "review": review_json(s),
        "references": [
            {"name": r.name, "role": r.role, "label": r.label, "source": r.source, "url": r.url, "description": r.description}
            for r in s.references
        ],
        "billed_seconds": {
            "output": as_number(s.billed.output),
            "input": as_number(s.billed.input),
            "total": as_number(s.billed.total),
            "exact": s.billed.exact,
        },
        "billed_at_least": bool(s.unchecked),  # fields the catalog does not know may bill more
        "unchecked": list(s.unchecked),
        "rate": as_number(s.rate),
        "cost": as_number(s.cost),
        "fingerprint": s.fingerprint,
        "output": display_name(s.output),
        "files": [
            {
                "url": url,
                "path": f.shown,
                "sha256": f.info.sha256,
                "bytes": f.info.bytes,
                "transport": s.transports.get(url),
            }
            for url, f in s.files.items()
        ],
        "body": s.body,
    }



def _totals(plan: Plan, decisions: Decisions) -> dict[str, Any]:
    submit = to_submit(plan, decisions)
    costs = [s.cost for s in submit]
    return {
        "requests": len(plan.shots),
        "actions": dict(Counter(decisions.get(s.key, NOT_MADE).action for s in plan.shots)),
        "billed_seconds": as_number(sum((s.billed.total for s in submit), Decimal(0))),
        "billed_seconds_exact": all(s.billed.exact for s in submit),
        "cost": as_number(sum((c for c in costs if c is not None), Decimal(0))) if costs and None not in costs else None,
        "currency": plan.currency,
    }


def plan_table(plan: Plan, decisions: Decisions) -> str:
    lines: list[str] = []
    submit = to_submit(plan, decisions)
    by_episode: dict[tuple[str, str], list[PlannedShot]] = {}
    for s in plan.shots:
        by_episode.setdefault((s.series, s.episode), []).append(s)
    for (series, episode), shots in by_episode.items():
        t = shots[0].target
        where = f"{t.provider}" + (f" {t.region}" if t.region else "") + f", {t.base_url}"
        lines.append(f"{series}/{episode}  ({shots[0].manifest}; {where})")
        rows = [["shot", "model", "references", "out s", "billed s", "cost", "action", "fingerprint"]]
        for s in shots:
            refs = ", ".join(f"{r.name}={r.label}" if r.label else f"{r.role}" for r in s.references if r.role != "voice")
            voices = sum(1 for r in s.references if r.role == "voice")
            refs += f" +{voices} voice" + ("s" if voices > 1 else "") if voices else ""
            billed = f"{s.billed.total:.2f}" + (" min" if s.unchecked else "" if s.billed.exact else " max")
            rows.append(
                [
                    s.shot + (f" #{s.take}" if s.take is not None else "") + _review_mark(s),
                    s.spec.model + (f" (as {s.spec.family})" if s.spec.family else ""),
                    refs,
                    str(as_number(s.billed.output)),
                    billed,
                    f"{s.cost:.4f}" if s.cost is not None else "-",
                    decisions.get(s.key, NOT_MADE).action,
                    s.fingerprint[:12],
                ]
            )
        lines.extend("  " + line for line in _columns(rows))
        lines.append("")
    lines += _explanations(plan, decisions)
    totals = _totals(plan, decisions)
    money = f", {totals['cost']} {plan.currency or ''}".rstrip() if totals["cost"] is not None else ""
    bound = " at least" if any(s.unchecked for s in submit) else "" if totals["billed_seconds_exact"] else " at most"
    actions = ", ".join(f"{n} {a}" for a, n in sorted(totals["actions"].items())) or "nothing"
    lines.append(
        f"{len(plan.episodes)} episode(s), {totals['requests']} request(s): {actions}; "
        f"to submit:{bound} {totals['billed_seconds']} billed s{money}"
    )
    uploads = {f.shown for s in submit for url, f in s.files.items() if s.transports.get(url) == "upload"}
    inline = {f.shown for s in submit for url, f in s.files.items() if s.transports.get(url) == "inline"}
    if uploads:
        lines.append(f"{len(uploads)} local file(s) go through the provider's temporary upload: {', '.join(sorted(uploads))}")
    if inline:
        lines.append(f"{len(inline)} local image(s) go inline as data URIs")
    if not all(s.billed.exact for s in submit):
        lines.append("'max': a remote reference video's length is unknown; its full share of the 5 s input cap is counted")
    unchecked = sorted({field for s in submit for field in s.unchecked})
    if unchecked:
        lines.append(f"'min': sent unchecked, as the manifest gives them: {', '.join(unchecked)}; they may bill more than planned")
    return "\n".join(lines)


def review_json(s: PlannedShot) -> dict[str, Any]:
    """What review (the episode's selects) says of the take."""
    r = s.review
    return {"picked": r.picked, "verdict": r.verdict.value if r.verdict else None, "pick_from": r.source.value, "note": r.note or None}


def _review_mark(s: PlannedShot) -> str:
    marks = (["picked"] if s.take is not None and s.review.picked else []) + ([s.review.verdict.value] if s.review.verdict else [])
    return f" ({', '.join(marks)})" if marks else ""


def _explanations(plan: Plan, decisions: Decisions) -> list[str]:
    """Why shots made before are made again (what changed), which paid videos are reused,
    and which shots review left with no usable take."""
    lines = []
    rejected = {(s.series, s.episode, s.shot) for s in plan.shots if s.review.every_take_rejected}
    for series, episode, shot in sorted(rejected):
        lines.append(f"{shot}: every take was rejected in review ({series}/{episode}); the cut waits for a pick or a new take")
    for s in plan.shots:
        name = s.key.split("/", 2)[-1]
        decided = decisions.get(s.key, NOT_MADE)
        if decided.changes:
            lines.append(f"{name}: {decided.reason}")
            lines.extend(f"    {change}" for change in decided.changes)
        elif decided.action is Action.REUSE:
            lines.append(f"{name}: {decided.reason}")
    return lines + [""] if lines else []


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {3, 4, 5}
    return [
        "  ".join(cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
        for row in rows
    ]
