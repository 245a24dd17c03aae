"""Budgets: what fits, what is held back."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from r2v_pipeline.plan.budget import Budget, fit, over_budget


@dataclass(frozen=True)
class Shot:
    name: str
    seconds: D
    cost: D | None
    series: str = "s"
    episode: str = "e1"


def test_seconds_and_money_caps() -> None:
    shots = [Shot("a", D(10), D("1.00")), Shot("b", D(10), D("1.50"))]
    assert over_budget([Budget("cap", seconds=D(20), money=D("2.50"))], shots, "USD") == []
    assert over_budget([Budget("cap", seconds=D(19))], shots, "USD") == ["cap: 20 billed seconds cross the budget of 19 s"]
    assert over_budget([Budget("cap", money=D("2.49"))], shots, "USD") == ["cap: 2.50 USD crosses the budget of 2.49"]


def test_a_money_cap_without_prices_is_a_problem() -> None:
    (problem,) = over_budget([Budget("cap", money=D(100))], [Shot("a", D(5), None)], None)
    assert "needs a price for every shot" in problem


def test_an_episode_budget_covers_its_episode_only() -> None:
    shots = [Shot("a", D(10), None, episode="e1"), Shot("b", D(10), None, episode="e2")]
    assert over_budget([Budget("e1", seconds=D(10), episode=("s", "e1"))], shots, None) == []


def test_fit_keeps_in_order_and_skips_what_does_not_fit() -> None:
    shots = [Shot("a", D(8), None), Shot("b", D(8), None), Shot("c", D(2), None)]
    kept, held = fit([Budget("cap", seconds=D(10))], shots)
    assert [s.name for s in kept] == ["a", "c"]
    assert [s.name for s in held] == ["b"]


shots = st.lists(
    st.builds(Shot, name=st.text(max_size=3), seconds=st.integers(1, 20).map(D), cost=st.integers(0, 300).map(lambda c: D(c) / 100), episode=st.sampled_from(["e1", "e2"])),
    max_size=12,
)
budgets = st.lists(
    st.builds(Budget, scope=st.just("b"), seconds=st.none() | st.integers(1, 60).map(D), money=st.none() | st.integers(0, 500).map(lambda c: D(c) / 100), episode=st.none() | st.sampled_from([("s", "e1"), ("s", "e2")])),
    max_size=3,
)


@given(shots, budgets)
def test_fit_never_crosses_a_budget_and_holds_back_only_what_must(all_shots: list[Shot], caps: list[Budget]) -> None:
    all_shots = [Shot(str(i), s.seconds, s.cost, s.series, s.episode) for i, s in enumerate(all_shots)]
    kept, held = fit(caps, all_shots)
    assert over_budget(caps, kept, None) == []
    assert sorted(s.name for s in kept + held) == sorted(s.name for s in all_shots)
    for shot in held:  # each held shot would have crossed some budget next to what was kept before it
        before = [s for s in kept if int(s.name) < int(shot.name)]
        assert over_budget([b for b in caps if b.covers(shot)], [*before, shot], None)
