"""The plan against the bill: when the provider bills other than planned, the run says
so in report.json, report.html and JUnit, exits 1, and r2v status keeps showing it."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Callable

from r2v_pipeline import exits
from r2v_pipeline.cli import main

from .test_run import StartSim, fast_sim

Write = Callable[[str, str], Path]
Media = Callable[[str, str], Path]


def test_a_bill_other_than_the_plan_needs_attention_everywhere(tmp_path: Path, start_sim: StartSim, write: Write, media: Media) -> None:
    media("m/a.png", "png")
    media("m/v.mp4", "video_3s")
    ep = write("ep.yaml", "cast: {a: {image: m/a.png}, v: {video: m/v.mp4}}\nshots:\n  - {id: one, duration: 2, prompt: '{{ a }} with {{ v }}'}\n")
    sim = fast_sim(start_sim, billing_offset_seconds=1.5)  # the provider bills 1.5 s more than its rules say
    where = ["--out", str(tmp_path / "out"), "--state", str(tmp_path / "state")]
    junit = tmp_path / "junit.xml"
    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["run", str(ep), "--simulator", sim.base_url, "--log-format", "plain", "--junit", str(junit), *where])
    assert code == exits.FAILED, err.getvalue()

    report = json.loads((tmp_path / "out" / "simulated" / "report.json").read_text())
    (shot,) = report["shots"]
    assert shot["status"] == "downloaded" and shot["attention"]
    assert shot["billing"] == {"planned": 5, "billed": 6.5, "source": "provider", "differs": True}  # 2 s out + 3 s video
    assert report["totals"]["billing_differences"] == 1 and report["run"]["exit_code"] == exits.FAILED

    html = (tmp_path / "out" / "simulated" / "report.html").read_text()
    assert "billed 6.5 s where the plan said 5 s" in html and 'class="card problem"' in html

    (case,) = ET.parse(junit).getroot().iter("testcase")
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "BilledDifferently"

    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        assert main(["status", str(ep), "--simulated", *where]) == 0
    assert "billed 6.5 s, planned 5 s" in out.getvalue()
    with redirect_stdout(out := io.StringIO()), redirect_stderr(io.StringIO()):
        main(["status", "--json", str(ep), "--simulated", *where])
    (status,) = json.loads(out.getvalue())["shots"]
    assert (status["planned_seconds"], status["billed_seconds"], status["billing_differs"]) == (5.0, 6.5, True)


def test_a_bill_that_matches_the_plan_is_quiet(tmp_path: Path, start_sim: StartSim, write: Write, media: Media) -> None:
    media("m/a.png", "png")
    ep = write("ep.yaml", "cast: {a: {image: m/a.png}}\nshots:\n  - {id: one, duration: 2, prompt: '{{ a }}'}\n")
    sim = fast_sim(start_sim)
    with redirect_stderr(io.StringIO()):
        assert main(["run", str(ep), "--simulator", sim.base_url, "--out", str(tmp_path / "out"), "--state", str(tmp_path / "state")]) == 0
    report = json.loads((tmp_path / "out" / "simulated" / "report.json").read_text())
    assert report["shots"][0]["billing"] == {"planned": 2, "billed": 2, "source": "provider", "differs": False}
    assert not report["shots"][0]["attention"]
