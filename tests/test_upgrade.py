"""An upgrade never rebills: a ledger and outputs made when r2v wrote requests the
earlier way (wan2.6's watermark left out) are still this version's shots."""

from __future__ import annotations

import io
import json
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from r2v_pipeline.cli import main
from r2v_pipeline.plan.body_format import FORMAT
from r2v_pipeline.sim import Simulator

from .test_run import StartSim, billed_tasks_per_content, fast_sim, plan_of, run

REPO = Path(__file__).resolve().parent.parent


def plan_text(series: list[Path], tmp: Path, *extra: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        assert main(["plan", *map(str, series), "--out", str(tmp / "out"), "--state", str(tmp / "state"), *extra]) == 0
    return out.getvalue()


def billed(sim: Simulator) -> int:
    return sum(billed_tasks_per_content(sim).values())


def test_an_upgrade_from_the_previous_body_format_bills_nothing(tmp_path: Path, start_sim: StartSim) -> None:
    shutil.copytree(REPO / "manifests" / "lighthouse", tmp_path / "lighthouse")
    series = [tmp_path / "lighthouse" / "ep01-the-storm.yaml"]
    (tmp_path / "lighthouse" / "series.yaml").write_text(
        (tmp_path / "lighthouse" / "series.yaml").read_text().replace("  watermark: false\n", "")  # the manifest says nothing
    )
    old = plan_of(series, tmp_path, body_format=FORMAT - 1)
    new = plan_of(series, tmp_path)
    changed = [n for o, n in zip(old.shots, new.shots) if o.fingerprint != n.fingerprint]
    assert {s.spec.model for s in changed} == {"wan2.6-r2v", "wan2.6-r2v-flash"}  # watermark now said for wan2.6
    assert all("watermark" not in o.body["parameters"] for o, n in zip(old.shots, new.shots) if n in changed)

    sim = fast_sim(start_sim)
    code, _, log = run(series, tmp_path, sim, body_format=FORMAT - 1)  # the previous version's run
    assert code == 0, log
    paid = billed(sim)

    text = plan_text(series, tmp_path)
    assert text.count("request format changed by r2v 0.2.0: watermark is now sent explicitly") == len(changed)
    assert " submit " not in text
    code, report, log = run(series, tmp_path, sim)  # this version
    assert code == 0, log
    assert billed(sim) == paid  # nothing paid again
    assert {s["status"] for s in report["shots"]} <= {"skipped", "reused"}
    for shot in plan_of(series, tmp_path).shots:
        assert json.loads(shot.output.with_suffix(".json").read_text())["fingerprint"] == shot.fingerprint
    code, report, _ = run(series, tmp_path, sim)
    assert {s["status"] for s in report["shots"]} == {"skipped"}

    text = plan_text(series, tmp_path, "--remake-reformatted")  # opting in
    assert " submit " not in text  # they are this version's now: nothing reformatted is left


def test_an_upgrade_while_a_task_of_the_previous_format_is_in_flight_follows_it(tmp_path: Path, start_sim: StartSim, write, media) -> None:  # type: ignore[no-untyped-def]
    from .test_run import submit_outside_a_run

    media("m/a.png", "png")
    ep = write("ep.yaml", "cast: {a: {image: m/a.png}}\nshots:\n  - {id: one, model: wan2.6-r2v, duration: 2, prompt: '{{ a }} one'}\n")
    sim = fast_sim(start_sim)
    submit_outside_a_run(sim, tmp_path, [ep], body_format=FORMAT - 1)  # the previous version submitted, then stopped
    code, report, log = run([ep], tmp_path, sim)
    assert code == 0, log
    assert report["shots"][0]["status"] == "downloaded" and "request format changed" in log
    assert len(sim.ledger.tasks()) == 1  # followed, not submitted again
