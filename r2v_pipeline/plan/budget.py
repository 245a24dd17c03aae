"""Budgets: caps on billed seconds and money, per episode (from its manifest) or per invocation."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, Sequence, TypeVar

from .pricing import money


class Billable(Protocol):
    # Read-only, so that frozen dataclasses (the planned shot) satisfy it.
    @property
    def series(self) -> str: ...

    @property
    def episode(self) -> str: ...

    @property
    def seconds(self) -> Decimal: ...

    @property
    def cost(self) -> Decimal | None: ...


@dataclass(frozen=True)
class Budget:
    """A spending limit in seconds and/or money, over one episode or everything planned."""

    scope: str  # how messages name it
    seconds: Decimal | None = None
    money: Decimal | None = None
    episode: tuple[str, str] | None = None  # (series, episode) it covers; None: everything

    def covers(self, shot: Billable) -> bool:
        return self.episode is None or self.episode == (shot.series, shot.episode)

    def problem(self, shots: Sequence[Billable], currency: str | None) -> str | None:
        """Why ``shots`` (those it covers) cross this budget, or None if they fit."""
        mine = [s for s in shots if self.covers(s)]
        billed = sum((s.seconds for s in mine), Decimal(0))
        if self.seconds is not None and billed > self.seconds:
            return f"{self.scope}: {billed.normalize():f} billed seconds cross the budget of {self.seconds} s"
        if self.money is not None:
            unpriced = [s for s in mine if s.cost is None]
            if unpriced:
                return f"{self.scope}: a money budget needs a price for every shot; {len(unpriced)} have none"
            spent = sum((s.cost for s in mine if s.cost is not None), Decimal(0))
            if spent > self.money:
                amount = f"{money(spent)} {currency}" if currency else money(spent)
                return f"{self.scope}: {amount} crosses the budget of {self.money}"
        return None


def over_budget(budgets: Sequence[Budget], shots: Sequence[Billable], currency: str | None) -> list[str]:
    return [p for b in budgets if (p := b.problem(shots, currency)) is not None]


B = TypeVar("B", bound=Billable)


def fit(budgets: Sequence[Budget], shots: Sequence[B]) -> tuple[list[B], list[B]]:
    """Shots kept in order while every budget still holds, and those held back."""
    kept: list[B] = []
    held: list[B] = []
    for shot in shots:
        if all(b.problem([*kept, shot], None) is None for b in budgets if b.covers(shot)):
            kept.append(shot)
        else:
            held.append(shot)
    return kept, held
