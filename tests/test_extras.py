"""What the catalog does not know yet: extra body fields, per-reference fields and
headers, sent as given, unchecked, in the fingerprint, never replacing what r2v writes."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Callable

from r2v_pipeline.cli import main

from .test_planner import episode, plan, problems, series  # noqa: F401  (series is a fixture)
from .test_run import StartSim, fast_sim, run

Write = Callable[[str, str], Path]


def test_extra_body_fields_are_merged_unchecked_and_counted_in_the_fingerprint(write: Write, series: Path) -> None:
    plain = plan(episode(write, "  - {id: a, prompt: '{{ mia }}'}\n")).shots[0]
    ep = episode(
        write,
        "  - id: a\n    prompt: '{{ mia }}'\n    extra_body: {parameters: {audio: true}, input: {extend_prompt: false}}\n",
        name="ep2.yaml",
        extra="defaults: {extra_body: {parameters: {new_knob: 3}}}\n",
    )
    (shot,) = plan(ep).shots
    assert shot.body["parameters"]["audio"] is True and shot.body["parameters"]["new_knob"] == 3
    assert shot.body["input"]["extend_prompt"] is False
    assert set(shot.unchecked) == {"parameters.audio", "parameters.new_knob", "input.extend_prompt"}
    assert shot.fingerprint != plain.fingerprint


def test_extras_may_add_but_never_replace_or_smuggle_a_checked_setting(write: Write, series: Path) -> None:
    replace = episode(write, "  - {id: a, prompt: '{{ mia }}', extra_body: {model: wan2.6-r2v}}\n")
    assert any("extra_body.model would replace what r2v writes" in p for p in problems(replace))
    smuggle = episode(write, "  - {id: a, prompt: '{{ mia }}', extra_body: {parameters: {duration: 30}}}\n", name="ep2.yaml")
    assert any("extra_body.parameters.duration is the duration setting r2v checks: set duration instead" in p for p in problems(smuggle))
    key = episode(write, "  - {id: a, prompt: '{{ mia }}', extra_headers: {Authorization: Bearer sk-1}}\n", name="ep3.yaml")
    assert any("extra_headers.Authorization: r2v writes this header itself" in p for p in problems(key))


def test_a_cast_members_extra_goes_into_its_own_media_item(write: Write, series: Path) -> None:
    text = (series.parent / "series.yaml").read_text().replace("mia: {image: m/mia.png, voice: m/mia.wav}", "mia: {image: m/mia.png, voice: m/mia.wav, extra: {reference_description: the baker}}")
    (series.parent / "series.yaml").write_text(text)
    (shot,) = plan(episode(write, "  - {id: a, prompt: '{{ mia }} and {{ cup }}'}\n")).shots
    mia, cup = shot.body["input"]["media"]
    assert mia["reference_description"] == "the baker" and "reference_description" not in cup
    assert shot.unchecked == ("mia.reference_description",)
    wan26 = episode(write, "  - {id: a, model: wan2.6-r2v, prompt: '{{ mia }}'}\n", name="ep2.yaml")
    assert any("cast.mia.extra: wan2.6-r2v names references by plain URLs" in p for p in problems(wan26))


def test_plan_marks_unchecked_shots_as_a_floor(write: Write, series: Path) -> None:
    ep = episode(write, "  - {id: a, prompt: '{{ mia }}', extra_body: {parameters: {audio: true}}}\n")
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        assert main(["plan", str(ep)]) == 0
    text = out.getvalue()
    assert " min " in text and "to submit: at least" in text and "sent unchecked, as the manifest gives them: parameters.audio" in text
    with redirect_stdout(out := io.StringIO()), redirect_stderr(io.StringIO()):
        main(["plan", "--json", str(ep)])
    shot = json.loads(out.getvalue())["shots"][0]
    assert shot["billed_at_least"] is True and shot["unchecked"] == ["parameters.audio"]


def test_extras_reach_the_provider(tmp_path: Path, start_sim: StartSim, write: Write, series: Path) -> None:
    ep = episode(
        write, "  - {id: a, duration: 2, prompt: '{{ mia }}', extra_body: {parameters: {audio: true}}, extra_headers: {X-DashScope-DataInspection: disable}}\n"
    )
    sim = fast_sim(start_sim)
    code, report, log = run([ep], tmp_path, sim)
    assert code == 0, log
    (submit,) = [r for r in sim.ledger.requests(kind="submit") if r.status == 200]
    assert submit.body["parameters"]["audio"] is True
    assert submit.headers.get("x-dashscope-datainspection") == "disable"
