"""One task-list query per cycle watches an account's tasks; per-task queries fill in
where the list fails or does not show a task."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from r2v_pipeline.providers.dashscope import DashScope
from tests.test_run import fast_sim, run

SHOTS = 12


def _episode(write: Callable[[str, str], Path], media: Callable[[str, str], Path]) -> Path:
    media("m/a.png", "png")
    shots = "".join(f"  - {{id: s{i}, duration: 2, prompt: 'scene {i} with {{{{ a }}}}'}}\n" for i in range(SHOTS))
    return write("ep.yaml", "cast: {a: {image: m/a.png}}\nshots:\n" + shots)


def test_one_list_query_per_cycle_watches_every_task(tmp_path: Path, start_sim, write, media) -> None:
    sim = fast_sim(start_sim, generation_seconds=(60.0, 300.0))
    code, report, log = run([_episode(write, media)], tmp_path, sim)
    assert code == 0, log
    tasks = len(sim.ledger.tasks())
    assert tasks == SHOTS
    lists, queries = sim.ledger.requests("list"), sim.ledger.requests("query")
    assert len(lists) >= 3  # the list watched them ...
    # ... and each task was asked about once, when it had ended (a few twice, where a loaded
    # host made a cycle late); per-task polling asks 3-4 times as often (the next test)
    assert len(queries) <= tasks + tasks // 2
    # inside the query quota; submits' pacing is test_run's (a submit 429 there is its failure)
    assert not [r for r in lists + queries if r.status == 429]


def test_a_failing_list_falls_back_to_asking_each_task(tmp_path: Path, start_sim, write, media) -> None:
    # Most lists fail (the start-up look for tasks already paid for retries until one answers).
    sim = fast_sim(start_sim, generation_seconds=(60.0, 300.0), faults="error500=0.7@dashscope.list")
    code, report, log = run([_episode(write, media)], tmp_path, sim)
    assert code == 0, log
    assert report["totals"]["by_status"] == {"downloaded": SHOTS}
    assert [r for r in sim.ledger.requests("list") if r.status == 500]
    assert len(sim.ledger.requests("query")) > SHOTS + 3  # polled on their own schedules meanwhile
    assert len(sim.ledger.tasks()) == SHOTS  # and nothing paid twice


def test_a_task_missing_from_the_list_is_asked_on_its_own(tmp_path: Path, start_sim, write, media, monkeypatch: pytest.MonkeyPatch) -> None:
    hidden: set[str] = set()
    listed = DashScope.list_states

    async def without_one(self: DashScope, since: float, until: float):  # type: ignore[no-untyped-def]
        states = await listed(self, since, until)
        assert states is not None
        if not hidden and states:
            hidden.add(min(states))  # one task the list never shows (another page, say)
        return {t: s for t, s in states.items() if t not in hidden}

    monkeypatch.setattr(DashScope, "list_states", without_one)
    sim = fast_sim(start_sim, generation_seconds=(60.0, 300.0))
    code, report, log = run([_episode(write, media)], tmp_path, sim)
    assert code == 0, log
    assert report["totals"]["by_status"] == {"downloaded": SHOTS}
    (task,) = hidden
    asked = [r for r in sim.ledger.requests("query") if r.task_id == task]
    others = [r for r in sim.ledger.requests("query") if r.task_id != task]
    assert len(asked) >= 2  # its own schedule found it ended
    assert len(others) <= (SHOTS - 1) + SHOTS // 2  # the rest as in the first test


def test_a_list_that_keeps_failing_is_said_once(tmp_path: Path, start_sim, write, media, monkeypatch: pytest.MonkeyPatch) -> None:
    async def unreadable(self: DashScope, since: float, until: float):  # type: ignore[no-untyped-def]
        raise ValueError("a list this client cannot read")

    monkeypatch.setattr(DashScope, "list_states", unreadable)
    sim = fast_sim(start_sim, generation_seconds=(60.0, 300.0))
    code, report, log = run([_episode(write, media)], tmp_path, sim)
    assert code == 0, log
    assert report["totals"]["by_status"] == {"downloaded": SHOTS}
    assert log.count("each task is asked about on its own") == 1, log  # why queries went up, said once
    assert "answers again" not in log
