"""The README's main job from the command line: r2v run --simulate, then status and plan."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from r2v_pipeline.cli import main
from r2v_pipeline.media.probe import probe_file

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def series(tmp_path: Path) -> list[str]:
    shutil.copytree(REPO / "manifests" / "lighthouse", tmp_path / "lighthouse")
    return [str(p) for p in sorted((tmp_path / "lighthouse").glob("ep*.yaml"))]


def test_simulated_run_then_status_and_plan(tmp_path: Path, series: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    monkeypatch.delenv("FREEPIK_API_KEY", raising=False)
    where = ["--out", str(tmp_path / "out"), "--state", str(tmp_path / "state")]
    assert main(["run", "--simulate", "--time-scale", "0.005", "--log-format", "json", *where, *series]) == 0
    _, err = capsys.readouterr()
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert {e["event"] for e in events} >= {"submitted", "succeeded", "downloaded"}
    assert all("time" in e for e in events)

    out = tmp_path / "out" / "simulated"
    report = json.loads((out / "report.json").read_text())
    jsonschema.validate(report, json.loads((REPO / "schemas" / "report.schema.json").read_text()))
    assert report["run"]["simulated"] and report["totals"]["done"] == 8
    for shot in report["shots"]:
        assert probe_file(out / shot["output"]).has_video  # report paths are relative to the report
    markdown = (out / "report.md").read_text()
    assert "| arrival | ✅ downloaded | 11 |" in markdown

    assert main(["status", "--simulated", *where, *series]) == 0
    status, _ = capsys.readouterr()
    assert status.count(" downloaded ") == 8
    assert main(["status", "--json", *where, *series]) == 0  # the real ledger: nothing run yet
    assert {s["state"] for s in json.loads(capsys.readouterr()[0])["shots"]} == {"not run"}

    assert main(["plan", "--simulated", "--json", *where, *series]) == 0
    plan = json.loads(capsys.readouterr()[0])
    assert {s["action"] for s in plan["shots"]} == {"skip"}
    assert main(["plan", "--json", *where, *series]) == 0
    assert {s["action"] for s in json.loads(capsys.readouterr()[0])["shots"]} == {"submit"}


def test_run_without_a_key_says_which_variable(tmp_path: Path, series: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    assert main(["run", "--out", str(tmp_path / "o"), "--state", str(tmp_path / "s"), series[0]]) == 2
    assert "DASHSCOPE_API_KEY" in capsys.readouterr().err
