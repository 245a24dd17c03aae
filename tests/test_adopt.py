"""Matching the tasks a lost ledger forgot to planned shots, by what the provider shows."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from r2v_pipeline.diagnostics import Diagnostics
from r2v_pipeline.plan.planner import PlannedShot, PlanOptions, make_plan
from r2v_pipeline.providers.base import TaskStatus
from r2v_pipeline.run.adopt import Strangers, describes, signature

Write = Callable[[str, str], Path]
Media = Callable[[str, str], Path]


def shots(write: Write, media: Media) -> list[PlannedShot]:
    media("a.png", "png")
    ep = write(
        "ep.yaml",
        "cast: {a: {image: a.png}}\nshots:\n"
        "  - {id: one, duration: 2, resolution: 720P, prompt: '{{ a }} waves'}\n"
        "  - {id: two, duration: 2, resolution: 720P, prompt: '{{ a }} waves', takes: 3}\n",
    )
    diagnostics = Diagnostics()
    plan = make_plan([ep], PlanOptions(), diagnostics)
    assert not diagnostics.errors
    return plan.shots


def done(prompt: str = "reference image waves", seconds: int = 2, tier: int = 720, submitted: float = 0.0) -> TaskStatus:
    usage = {"output_video_duration": seconds, "SR": tier, "duration": seconds}
    return TaskStatus("succeeded", video_url="https://x/v.mp4", usage=usage, prompt=prompt, submitted=submitted)


def test_a_task_describes_a_shot_by_prompt_seconds_and_tier(write: Write, media: Media) -> None:
    one = shots(write, media)[0]
    assert describes(done(), one)
    assert not describes(done(prompt="reference image runs"), one)
    assert not describes(done(seconds=5), one)
    assert not describes(done(tier=1080), one)
    assert not describes(TaskStatus("failed", prompt="reference image waves"), one)


def test_takes_pair_with_strangers_in_creation_order_and_each_is_adopted_once(write: Write, media: Media) -> None:
    planned = shots(write, media)
    twins = [s for s in planned if signature(s) == signature(planned[1])]
    assert twins == planned  # the same prompt, seconds and tier: the provider cannot tell them apart
    strangers = Strangers(
        open={s.fingerprint for s in planned},
        succeeded={"late": done(submitted=30.0), "early": done(submitted=10.0), "middle": done(submitted=20.0)},
    )
    assert [strangers.match(s, twins) for s in planned] == ["early", "middle", "late", None]  # one, take 1, 2, 3
    assert strangers.match(planned[0], twins) is None  # adopted once only


def test_twins_that_already_have_their_task_are_left_out_of_the_pairing(write: Write, media: Media) -> None:
    planned = shots(write, media)
    # "one" and take 1 were known when the list was read: the strangers are takes 2 and 3's
    strangers = Strangers(open={s.fingerprint for s in planned[2:]}, succeeded={"b": done(submitted=20.0), "a": done(submitted=10.0)})
    twins = [s for s in planned if s.fingerprint in strangers.open]
    assert strangers.match(planned[3], twins) == "b" and strangers.match(planned[2], twins) == "a"
    assert strangers.match(planned[1], twins) is None  # not open: it has its task
