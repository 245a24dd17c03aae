"""Runs and spend over time, from the ledger: what each run billed, and sums by
series, episode, account and month (``r2v history``, the report's "episode to date").

Seconds are the provider's where its usage says, else the plan's; every sum says
which it holds ("provider", "plan", or "provider+plan").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterable, Sequence

from ..catalog.billing import as_number
from .ledger_store import Charge, RunRecord


@dataclass(frozen=True)
class Spend:
    """A sum of charges."""

    seconds: Decimal = Decimal(0)
    cost: Decimal | None = Decimal(0)  # None once a charge without a price is in it
    tasks: int = 0
    sources: frozenset[str] = frozenset()

    def add(self, charge: Charge) -> Spend:
        seconds = Decimal(str(charge.seconds)) if charge.seconds is not None else Decimal(0)
        cost = None if self.cost is None or charge.cost is None else self.cost + Decimal(str(charge.cost))
        return Spend(self.seconds + seconds, cost, self.tasks + 1, self.sources | {charge.source})

    @property
    def source(self) -> str:
        """Where the seconds come from: "provider", "plan", "provider+plan", or "none"."""
        return "+".join(sorted(self.sources, reverse=True)) or "none"

    def as_json(self) -> dict[str, Any]:
        return {"billed_seconds": as_number(self.seconds), "cost": as_number(self.cost), "tasks": self.tasks, "source": self.source}


def total(charges: Iterable[Charge]) -> Spend:
    spend = Spend()
    for charge in charges:
        spend = spend.add(charge)
    return spend


def episode_of(key: str) -> str:
    """series/episode of a shot key (series/episode/shot[#takeN])."""
    return "/".join(key.split("/")[:2])


def month_of(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m")


def by(charges: Iterable[Charge], group: Any) -> dict[str, Spend]:
    sums: dict[str, Spend] = {}
    for charge in charges:
        name = group(charge)
        sums[name] = sums.get(name, Spend()).add(charge)
    return dict(sorted(sums.items()))


def to_date(charges: Sequence[Charge], episodes: Iterable[str]) -> dict[str, Spend]:
    """Each episode's spend over every run the ledger knows."""
    sums = by(charges, lambda c: episode_of(c.key))
    return {name: sums.get(name, Spend()) for name in sorted(set(episodes))}


def of_episodes(runs: Sequence[RunRecord], charges: Sequence[Charge], episodes: Iterable[str]) -> tuple[list[RunRecord], list[Charge]]:
    """What concerns these episodes (series/episode): a ledger (a shared one above all)
    also keeps other series' runs and charges, maybe priced in another currency."""
    mine = set(episodes)
    return [r for r in runs if mine & set(r.episodes)], [c for c in charges if episode_of(c.key) in mine]


def history(runs: Sequence[RunRecord], charges: Sequence[Charge], currency: str | None = None) -> dict[str, Any]:
    """The runs, oldest first, each with what it billed; then the sums. A run that was
    killed left no row of its own: it shows by the charges that name it."""
    ended = {r.run_id: r for r in runs}
    per_run = by(charges, lambda c: c.run_id)
    first_charge = {}
    for charge in charges:
        first_charge.setdefault(charge.run_id, charge.at)
    order = sorted(set(ended) | set(per_run), key=lambda run_id: ended[run_id].started_at if run_id in ended else first_charge[run_id])
    rows = []
    for run_id in order:
        record = ended.get(run_id)
        rows.append({
            "run_id": run_id,
            "started": _iso(record.started_at) if record else None,
            "finished": _iso(record.finished_at) if record else None,
            "host": record.host if record else None,
            "exit_code": record.exit_code if record else None,
            "episodes": list(record.episodes) if record else sorted({episode_of(c.key) for c in charges if c.run_id == run_id}),
            "ended": record is not None,  # False: killed, or still running
            **per_run.get(run_id, Spend()).as_json(),
        })  # fmt: skip
    return {
        "currency": currency,
        "runs": rows,
        "by_series": _json(by(charges, lambda c: c.key.split("/")[0])),
        "by_episode": _json(by(charges, lambda c: episode_of(c.key))),
        "by_account": _json(by(charges, lambda c: _account(c.account))),
        "by_month": _json(by(charges, lambda c: month_of(c.at))),
        "total": total(charges).as_json(),
    }


def _account(ledger_id: str) -> str:
    """A named account as "provider:name", whatever key it had (its id also holds the key's hash)."""
    provider, colon, rest = ledger_id.partition(":")
    return f"{provider}:{rest.partition(':')[0]}" if colon else ledger_id


def history_text(data: dict[str, Any]) -> str:
    """``r2v history`` for people: the runs, then the sums."""
    currency = data["currency"]
    lines = [f"{'run':<12}  {'started (UTC)':<20}  {'exit':>4}  {'billed s':>9}  {'cost':>10}  {'from':<13}  episodes"]
    for run in data["runs"]:
        started = (run["started"] or "(no end recorded)").replace("T", " ").replace("+00:00", "")
        code = "" if run["exit_code"] is None else str(run["exit_code"])
        lines.append(
            f"{run['run_id']:<12}  {started:<20}  {code:>4}  {_figure(run['billed_seconds']):>9}  {_money(run['cost'], currency):>10}  "
            f"{run['source']:<13}  {', '.join(run['episodes'])}"
        )
    if not data["runs"]:
        lines.append("(no runs recorded yet)")
    for title, name in (("series", "by_series"), ("episode", "by_episode"), ("account", "by_account"), ("month", "by_month")):
        if not data[name]:
            continue
        lines += ["", f"by {title}:"]
        width = max(len(k) for k in data[name])
        for key, spend in data[name].items():
            lines.append(f"  {key:<{width}}  {_figure(spend['billed_seconds']):>9} s  {_money(spend['cost'], currency):>10}  ({spend['tasks']} task(s), {spend['source']})")
    spend = data["total"]
    lines += ["", f"total: {_figure(spend['billed_seconds'])} s, {_money(spend['cost'], currency)} ({spend['tasks']} task(s), {spend['source']})"]
    return "\n".join(lines)


def _json(sums: dict[str, Spend]) -> dict[str, Any]:
    return {name: spend.as_json() for name, spend in sums.items()}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def _figure(value: float | int | None) -> str:
    return "-" if value is None else f"{value:g}"


def _money(value: float | None, currency: str | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} {currency}" if currency else f"{value:.2f}"
