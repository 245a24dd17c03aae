"""Quotas as the runner keeps them: sliding-window rates, slots, backoff, poll times."""

from __future__ import annotations

import random

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from r2v_pipeline.run.pacing import SAFETY, Backoff, RateLimit, SlotHold, Slots
from r2v_pipeline.run.polling import PollPolicy, relevant


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.anyio
async def test_rate_limit_never_lets_more_than_count_in_a_window() -> None:
    limit = RateLimit(5, 1.0)
    stamps = []
    with anyio.fail_after(5):
        for _ in range(12):
            await limit.acquire()
            stamps.append(anyio.current_time())
    for i in range(len(stamps) - 5):
        assert stamps[i + 5] - stamps[i] >= 1.0 - 1e-6  # the sixth is a full window after the first


def test_rate_limit_per_second_reads_fractions_and_keeps_a_margin() -> None:
    assert (RateLimit.per_second(20).count, RateLimit.per_second(20).period) == (20, pytest.approx(1.0 * (1 + SAFETY)))
    assert (RateLimit.per_second(0.5).count, RateLimit.per_second(0.5).period) == (1, pytest.approx(2.0 * (1 + SAFETY)))


@pytest.mark.anyio
async def test_slots_are_first_come_first_served_and_taken_slots_count() -> None:
    slots = Slots(2)
    order: list[int] = []

    async def worker(n: int) -> None:
        await slots.acquire()
        order.append(n)
        await anyio.sleep(0.01)
        slots.release()

    slots.take()  # a task an earlier run left in progress
    async with anyio.create_task_group() as group:
        for n in range(5):
            group.start_soon(worker, n)
            await anyio.sleep(0)  # start in order
        await anyio.sleep(0.005)
        assert slots.used == 2  # the taken slot and one worker
        slots.release()
    assert order == [0, 1, 2, 3, 4]
    assert slots.used == 0


@pytest.mark.anyio
async def test_a_slot_hold_releases_once() -> None:
    slots = Slots(1)
    hold = SlotHold(slots)
    await hold.acquire()
    await hold.acquire()
    hold.take()
    assert slots.used == 1
    hold.release()
    hold.release()
    assert slots.used == 0


@given(st.integers(0, 30), st.none() | st.floats(0, 100))
def test_backoff_grows_to_its_cap_and_honours_retry_after(attempt: int, after: float | None) -> None:
    backoff = Backoff(base=1.0, factor=2.0, cap=60.0)
    delay = backoff.delay(attempt, after, random.Random(attempt))
    ceiling = min(60.0, 2.0**attempt)
    assert delay >= (after or 0.0)
    assert delay <= max(ceiling, after or 0.0)
    assert delay >= ceiling / 2


def first(times, n: int) -> list[float]:
    out = []
    for t in times:
        out.append(t)
        if len(out) == n:
            return out
    return out


def test_without_history_polls_at_the_recommended_interval() -> None:
    assert first(PollPolicy().times([]), 4) == [30.0, 45.0, 60.0, 75.0]


def test_a_steady_model_is_asked_once_just_after_its_usual_time() -> None:
    times = first(PollPolicy().times([120.0] * 10), 3)
    assert 120.0 < times[0] < 123.0
    assert times[1] > times[0]


@given(st.lists(st.floats(10, 600), min_size=3, max_size=50))
def test_poll_times_rise_and_reach_past_the_slowest_task(samples: list[float]) -> None:
    policy = PollPolicy()
    times = first(policy.times(samples), 30)
    assert all(b - a >= policy.min_gap - 1e-9 for a, b in zip(times, times[1:]))
    assert any(t > max(samples) for t in times)
    # no more than seven questions before the slowest task seen is done
    assert sum(1 for t in times if t <= max(samples)) <= 7


def test_history_of_alike_tasks_wins_when_there_is_enough() -> None:
    history = [("720P", 5, 60.0), ("720P", 5, 62.0), ("720P", 5, 61.0), ("1080P", 10, 300.0)]
    assert relevant(history, "720P", 5) == [60.0, 62.0, 61.0]
    assert relevant(history, "1080P", 10) == [60.0, 62.0, 61.0, 300.0]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
