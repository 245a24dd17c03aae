"""A rerun that finds nothing to do (a cron job's usual case) ends without loading the
runner, the provider clients, HTTP or the event loop, and still writes its reports,
records its history row and exits 0."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from r2v_pipeline.cli import main

REPO = Path(__file__).resolve().parent.parent
# What only sending, asking about or fetching a shot needs.
UNNEEDED = ["httpx", "anyio", "r2v_pipeline.run.runner", "r2v_pipeline.providers.base", "r2v_pipeline.sim", "r2v_pipeline.run.targets"]


def test_a_rerun_with_nothing_to_do_loads_no_runner_and_still_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    shutil.copytree(REPO / "manifests" / "lighthouse", tmp_path / "lighthouse")
    episodes = [str(p) for p in sorted((tmp_path / "lighthouse").glob("ep*.yaml"))]
    argv = ["run", "--simulate", "--time-scale", "0.005", "--log-format", "json", "--out", str(tmp_path / "out"), "--state", str(tmp_path / "state"), *episodes]
    monkeypatch.chdir(tmp_path)  # where the rerun below starts: the same request
    assert main(argv) == 0
    report_file = tmp_path / "out" / "simulated" / "report.json"
    first = json.loads(report_file.read_text())

    program = (
        "import sys\nfrom r2v_pipeline.cli import main\n"
        "from r2v_pipeline.plan import plan_cache\nplanned = []\nplan = plan_cache.make_plan\n"
        "plan_cache.make_plan = lambda *a: planned.append(1) or plan(*a)\n"
        f"code = main({argv!r})\n"
        f"print(json.dumps([code, [m for m in {UNNEEDED!r} if m in sys.modules], len(planned)]))"
    ).replace("import sys", "import json, sys")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    code, loaded, planned = json.loads(done.stdout.strip().splitlines()[-1])
    assert code == 0, done.stderr[-2000:]
    assert loaded == []
    assert planned == 0  # the plan the first run made and kept: nothing it was made from changed
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert not {"submitted", "downloaded"} & {e["event"] for e in events}

    again = json.loads(report_file.read_text())
    assert again["run"]["id"] != first["run"]["id"]  # this run's report, written anew
    assert again["totals"]["done"] == first["totals"]["done"] == 8
    assert (report_file.parent / "runs" / first["run"]["id"] / "report.html").is_file()  # the run that made the videos keeps its page
    assert not (report_file.parent / "runs" / again["run"]["id"]).exists()  # one that found nothing to do keeps none
    capsys.readouterr()
    assert main(["history", "--simulated", "--json", "--out", str(tmp_path / "out"), "--state", str(tmp_path / "state"), *episodes]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [r["run_id"] for r in runs][-2:] == [first["run"]["id"], again["run"]["id"]]  # the rerun's history row
    assert runs[-1]["exit_code"] == 0 and runs[-1]["ended"]
