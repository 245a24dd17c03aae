"""The live board on a terminal: one row per shot (state, take, account, elapsed,
ETA, billed seconds, cost) and the totals, spend so far against the budget.

The board only keeps what the run's events tell it (progress.py feeds it) and
draws it with ``rich``, imported when the first board is drawn: ``r2v --help``
and ``validate`` never load it. The live area is transient: when the run ends
(or a signal or an exception ends it) the area is wiped and the cursor shown
again, so the event lines above it and the run's summary are all that stays.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, TextIO

# Events that change which column of the board a shot is in.
COLUMN = {
    "submitted": "running",
    "reconciled": "running",
    "recovering": "running",
    "adopted": "running",
    "succeeded": "fetching",
    "downloaded": "done",
    "copied": "done",
    "reused": "done",
    "placed": "done",
    "failed": "failed",
    "refused": "failed",
    "expired": "failed",
    "ambiguous": "failed",
    "not sent": "failed",
    "stalled": "stalled",
    "download stalled": "stalled",
}
ORDER = ("queued", "running", "fetching", "done", "failed", "stalled")
_STYLE = {"running": "cyan", "fetching": "blue", "done": "green", "failed": "red", "stalled": "yellow", "queued": "dim"}


@dataclass(frozen=True)
class BoardShot:
    """What the board knows of a shot before it starts: from the plan and what the ledger learned."""

    key: str
    take: int | None = None
    account: str | None = None
    expected: float | None = None  # wall seconds a task like it took, learned from past tasks; None: not yet known
    planned_seconds: float | None = None


@dataclass
class Row:
    """One shot's row on the live board."""

    shot: BoardShot
    state: str = "queued"
    event: str = ""
    since: float | None = None  # wall (monotonic) time it was submitted
    ended: float | None = None
    billed: float | None = None
    cost: float | None = None


@dataclass
class Board:
    """The run as a table; ``render`` makes the rich renderable."""

    rows: dict[str, Row] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    budget: float | None = None  # money the manifests allow, where they say
    currency: str | None = None
    total: int = 0

    def expect(self, total: int, shots: list[BoardShot] | tuple[BoardShot, ...] = ()) -> None:
        self.total = total
        for shot in shots:
            self.rows.setdefault(shot.key, Row(shot))

    def event(self, key: str, what: str, fields: dict[str, Any]) -> None:
        row = self.rows.setdefault(key, Row(BoardShot(key)))
        row.event = what
        column = COLUMN.get(what)
        if column is None:
            return
        now = time.monotonic()
        if column == "running" and row.since is None:
            row.since = now
        if column in ("done", "failed") and row.ended is None:
            row.ended = now
        if what == "submitted" and isinstance(fields.get("account"), str):
            row.shot = replace(row.shot, account=fields["account"])  # the pool chose it only now
        if what == "succeeded":
            row.billed = _number(fields.get("billed_seconds"))
            row.cost = _number(fields.get("cost"))
        row.state = column

    def counts(self) -> dict[str, int]:
        counts = {c: 0 for c in ORDER}
        for row in self.rows.values():
            counts[row.state] += 1
        counts["queued"] += max(0, self.total - len(self.rows))
        return counts

    def spent(self) -> tuple[float, float | None]:
        """Billed seconds and cost so far this run (cost None when a billed shot has no price)."""
        billed = [r for r in self.rows.values() if r.billed is not None]
        seconds = float(sum(Decimal(str(r.billed)) for r in billed))
        costs = [r.cost for r in billed]
        money = None if any(c is None for c in costs) else float(sum(Decimal(str(c)) for c in costs))
        return seconds, money

    def eta(self, row: Row, now: float) -> str:
        if row.state in ("done", "failed", "stalled"):
            return ""
        if row.state == "fetching":
            return "now"
        if row.shot.expected is None:
            return "?"
        if row.since is None:
            return f"~{_clock(row.shot.expected)}"
        left = row.shot.expected - (now - row.since)
        return _clock(left) if left >= 0.5 else "due"  # past the usual time: the next poll tells

    def render(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        now = time.monotonic()
        table = Table(box=None, pad_edge=False, expand=False, header_style="bold")
        for name, justify in (("shot", "left"), ("state", "left"), ("take", "right"), ("account", "left"),
                              ("elapsed", "right"), ("ETA", "right"), ("billed s", "right"), ("cost", "right")):  # fmt: skip
            table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        for row in self.rows.values():
            elapsed = _clock((row.ended or now) - row.since) if row.since is not None else ""
            table.add_row(
                row.shot.key, Text(row.state, style=_STYLE.get(row.state, "")), "" if row.shot.take is None else str(row.shot.take),
                (row.shot.account or "")[:14], elapsed, self.eta(row, now),
                _figure(row.billed), _money(row.cost),
            )  # fmt: skip
        counts = self.counts()
        seconds, money = self.spent()
        states = " · ".join(f"{n} {c}" for c, n in counts.items() if n) or "starting"
        spend = f"{_money(money) or '-'} {self.currency or ''}".rstrip()
        budget = f" of {_money(self.budget)} {self.currency or ''} budget".rstrip() if self.budget is not None else ""
        planned = sum(r.shot.planned_seconds or 0.0 for r in self.rows.values())
        run = int(now - self.started)
        totals = Text(f"▶ {states} · {run // 60:02d}:{run % 60:02d} · billed {_figure(seconds) or '0'} of {_figure(planned) or '0'} s planned · spent {spend}{budget}")
        return Group(table, totals)


class LiveBoard:
    """The board drawn in place on a terminal, under the lines the run prints."""

    def __init__(self, stream: TextIO, board: Board):
        self.board = board
        self._stream = stream
        self._live: Any = None

    def _start(self) -> Any:
        if self._live is None:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self._stream, force_terminal=True, highlight=False, soft_wrap=False)
            self._live = Live(console=console, auto_refresh=False, transient=True, redirect_stdout=False, redirect_stderr=False)
            self._live.start()
        return self._live

    def line(self, text: str) -> None:
        """A log line, printed above the board."""
        live = self._start()
        live.console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)
        live.update(self.board.render(), refresh=True)

    def draw(self) -> None:
        self._start().update(self.board.render(), refresh=True)

    def stop(self) -> None:
        """Wipe the board and show the cursor again; safe to call more than once."""
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _figure(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def _money(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60:d}:{seconds % 60:02d}"
