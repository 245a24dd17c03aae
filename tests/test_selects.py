"""An episode's selects file: review's picks beside the episode, checked like a
manifest, read by the plan (and so by run, assemble and the report)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r2v_pipeline.cli import main
from r2v_pipeline.diagnostics import Diagnostics
from r2v_pipeline.manifest.load import load_episodes
from r2v_pipeline.manifest.selects import ShotSelect, load_selects, render_selects, selects_path
from r2v_pipeline.plan.planner import PlanOptions, make_plan

Write = Callable[[str, str | bytes], Path]

EPISODE = """\
series: show
provider: {name: dashscope, region: intl}
defaults: {model: wan2.7-r2v, resolution: 720P, ratio: "16:9"}
cast:
  mia: {image: mia.png}
shots:
  - {id: one, prompt: "{{ mia }} waves"}
  - {id: two, takes: 3, prompt: "{{ mia }} runs"}
  - {id: three, takes: [7, 9], pick: 2, prompt: "{{ mia }} sleeps"}
"""


@pytest.fixture
def episode(write: Write, media: Callable[[str, str], Path]) -> Path:
    media("mia.png", "png")
    return write("ep1.yaml", EPISODE)


def problems(path: Path) -> list[str]:
    diagnostics = Diagnostics()
    make_plan([path], PlanOptions(), diagnostics)
    return [str(d).replace(str(path.parent) + "/", "") for d in diagnostics.sorted()]


def review(path: Path) -> dict[str, list[tuple[int | None, bool, str | None]]]:
    """Per shot: (take, picked, verdict) of each take, as the plan carries them."""
    diagnostics = Diagnostics()
    plan = make_plan([path], PlanOptions(), diagnostics)
    assert not diagnostics.errors, diagnostics.sorted()
    out: dict[str, list[tuple[int | None, bool, str | None]]] = {}
    for s in plan.shots:
        out.setdefault(s.shot, []).append((s.take, s.review.picked, s.review.verdict.value if s.review.verdict else None))
    return out


def test_the_file_sits_beside_the_episode() -> None:
    assert selects_path(Path("a/ep01-the-storm.yaml")) == Path("a/ep01-the-storm.selects.yaml")
    assert selects_path(Path("ep.yml")) == Path("ep.selects.yaml")


def test_without_a_file_the_first_take_is_picked(episode: Path) -> None:
    assert review(episode) == {
        "one": [(None, True, None)],
        "two": [(1, True, None), (2, False, None), (3, False, None)],
        "three": [(1, False, None), (2, True, None)],  # the manifest's pick: 2
    }


def test_the_pick_comes_from_selects_unless_the_manifest_pins_one(episode: Path, write: Write) -> None:
    write("ep1.selects.yaml", """\
        shots:
          two: {pick: 3, approved: [3], rejected: [1]}
          three: {pick: 1}
        """)  # fmt: skip
    assert review(episode)["two"] == [(1, False, "rejected"), (2, False, None), (3, True, "approved")]
    assert review(episode)["three"] == [(1, False, None), (2, True, None)]  # pick: 2 in the manifest wins
    assert problems(episode) == ["ep1.selects.yaml:3:17: warning: shots.three.pick: not used: the manifest pins take 2 (pick: 2)"]


def test_without_a_pick_the_first_approved_then_the_first_not_rejected_take_goes_in(episode: Path, write: Write) -> None:
    selects = write("ep1.selects.yaml", "shots:\n  two: {approved: [2, 3]}\n")
    assert [t[1] for t in review(episode)["two"]] == [False, True, False]
    selects.write_text("shots:\n  two: {rejected: [1]}\n")
    assert [t[1] for t in review(episode)["two"]] == [False, True, False]


def test_a_shot_whose_every_take_is_rejected_needs_attention(episode: Path, write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    write("ep1.selects.yaml", "shots:\n  two: {rejected: [1, 2, 3]}\n")
    assert [t[1] for t in review(episode)["two"]] == [False, False, False]
    assert main(["plan", str(episode)]) == 0
    out = capsys.readouterr().out
    assert "two: every take was rejected in review (show/ep1); the cut waits for a pick or a new take" in out
    assert "two #1 (rejected)" in out
    assert main(["plan", "--json", str(episode)]) == 0
    shots = json.loads(capsys.readouterr().out)["shots"]
    assert {(s["shot"], s["take"]): s["review"]["pick_from"] for s in shots}[("two", 1)] == "none"


def test_an_unknown_shot_or_take_is_refused_at_its_place(episode: Path, write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    write("ep1.selects.yaml", """\
        shots:
          tow:
            pick: 1
          two:
            pick: 4
            approved: [2, 0]
            rejected: [2]
          one:
            pick: 2
            colour: red
          three:
            note: 12
        """)  # fmt: skip
    assert problems(episode) == [
        'ep1.selects.yaml:2:3: shots.tow: no shot "tow" in the episode (did you mean "two"?) (its shots: one, two, three)',
        "ep1.selects.yaml:5:11: shots.two.pick: no take 4: the shot has takes 1–3",
        "ep1.selects.yaml:6:19: shots.two.approved: no take 0: the shot has takes 1–3",
        "ep1.selects.yaml:7:16: shots.two: take 2 is both approved and rejected",
        "ep1.selects.yaml:9:11: shots.one.pick: no take 2: the shot has take 1 only",
        'ep1.selects.yaml:10:5: shots.one: unknown key "colour"',
        "ep1.selects.yaml:12:11: shots.three.note: text (put it in quotes)",
    ]
    # Through the command line: every problem at once, exit 2, nothing planned.
    assert main(["plan", str(episode)]) == 2
    err = capsys.readouterr().err
    assert "ep1.selects.yaml:2:3: shots.tow" in err and "ep1.selects.yaml:5:11: shots.two.pick: no take 4" in err
    assert main(["validate", str(episode)]) == 2


def test_yaml_errors_in_the_file_are_placed_too(episode: Path, write: Write) -> None:
    write("ep1.selects.yaml", "shots:\n  two: {pick: 1\n")
    (problem,) = problems(episode)
    assert problem.startswith("ep1.selects.yaml:3:1: YAML syntax error")
    write("ep1.selects.yaml", "picks: {}\n")
    assert problems(episode) == ['ep1.selects.yaml:1:1: unknown key "picks": a selects file holds shots:']


def test_an_empty_file_selects_nothing(episode: Path, write: Write) -> None:
    write("ep1.selects.yaml", "")
    assert problems(episode) == [] and review(episode)["two"][0] == (1, True, None)


def test_a_fifo_in_its_place_is_refused_not_read(episode: Path) -> None:
    os.mkfifo(episode.with_name("ep1.selects.yaml"))
    assert problems(episode) == ["ep1.selects.yaml:1:1: is not a regular file; a selects file is YAML text"]


def test_a_selects_file_given_as_a_manifest_is_skipped_with_a_word(episode: Path, write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    selects = write("ep1.selects.yaml", "shots:\n  two: {pick: 2}\n")
    assert main(["validate", str(episode), str(selects)]) == 0  # `r2v validate ep*.yaml` meets it
    assert "a selects file, not a manifest" in capsys.readouterr().err


shot_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,12}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(
    picks=st.dictionaries(
        shot_ids,
        st.tuples(st.none() | st.integers(1, 4), st.sets(st.integers(1, 4)), st.sets(st.integers(1, 4)), st.text(max_size=40)),
        max_size=4,
    )
)
def test_what_is_written_reads_back_the_same(tmp_path_factory: pytest.TempPathFactory, picks: dict[str, tuple[int | None, set[int], set[int], str]]) -> None:
    """Any selects review can make survives the file: ids that look like numbers or
    words YAML reads otherwise, notes with quotes, colons, newlines and emoji."""
    folder = tmp_path_factory.mktemp("roundtrip")
    shots_yaml = "".join(f"  - {{id: {json.dumps(i)}, takes: 4, prompt: x}}\n" for i in picks) or "  - {id: only, prompt: x}\n"
    (folder / "ep.yaml").write_text(f"series: s\nprovider: {{name: dashscope}}\nshots:\n{shots_yaml}")
    wanted = {}
    for shot_id, (pick, approved, rejected, note) in picks.items():
        rejected = rejected - approved - {pick}
        wanted[shot_id] = ShotSelect(pick, tuple(sorted(approved)), tuple(sorted(rejected)), note)
    text = render_selects("ep.yaml", list(picks), wanted)
    (folder / "ep.selects.yaml").write_text(text)
    diagnostics = Diagnostics()
    (episode,) = load_episodes([folder / "ep.yaml"], diagnostics)
    assert not diagnostics.errors, (text, diagnostics.sorted())
    assert episode.selects is not None
    assert {k: v for k, v in episode.selects.shots.items() if not v.empty} == {k: v for k, v in wanted.items() if not v.empty}
    again = load_selects(folder / "ep.yaml", "ep.yaml", episode.shots, diagnostics)
    assert render_selects("ep.yaml", list(picks), dict(again.shots)) == text  # stable: rewriting changes nothing


@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(1, 5),
    pin=st.none() | st.integers(1, 5),
    pick=st.none() | st.integers(1, 5),
    approved=st.sets(st.integers(1, 5)),
    rejected=st.sets(st.integers(1, 5)),
)
def test_the_chosen_take_is_never_a_rejected_one_unless_the_manifest_pins_it(
    count: int, pin: int | None, pick: int | None, approved: set[int], rejected: set[int]
) -> None:
    from r2v_pipeline.diagnostics import Position
    from r2v_pipeline.manifest.model import Shot, Value
    from r2v_pipeline.manifest.selects import PickSource, choose

    where = Position("ep.yaml")
    shot = Shot("s", where, Value("x", where), None, {}, takes=Value(count, where), pick=Value(pin, where) if pin else None)
    approved = {t for t in approved if t <= count} - rejected
    rejected = {t for t in rejected if t <= count}
    pick = pick if pick is not None and pick <= count and pick not in rejected else None
    chosen = choose(shot, ShotSelect(pick, tuple(sorted(approved)), tuple(sorted(rejected))))
    if pin is not None:
        assert (chosen.take, chosen.source) == (pin, PickSource.MANIFEST)
    elif pick is not None:
        assert (chosen.take, chosen.source) == (pick, PickSource.SELECTS)
    elif approved:
        assert chosen.take == min(approved)
    elif len(rejected) == count:
        assert (chosen.take, chosen.source) == (None, PickSource.NONE)  # needs attention
    else:
        assert chosen.take == min(set(range(1, count + 1)) - rejected)
    if chosen.source is not PickSource.MANIFEST and chosen.take is not None:
        assert chosen.take not in rejected and 1 <= chosen.take <= count
