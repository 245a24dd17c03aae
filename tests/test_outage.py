"""An unreachable provider is an outage, not a failure: the run says so at once and on
every retry, ends within its patience with its own exit code, bills nothing for shots
it never sent, and the next plain run sends them."""

from __future__ import annotations

import io
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from r2v_pipeline import exits
from r2v_pipeline.run.ledger import Ledger
from r2v_pipeline.run.reach import ReachPolicy
from r2v_pipeline.run.work import RunOptions
from r2v_pipeline.pipeline import RunRequest, execute
from r2v_pipeline.sim import read_ledger

from .test_run import FAST, StartSim, billed_tasks_per_content, fast_sim, plan_of, run

Write = Callable[[str, str], Path]
Media = Callable[[str, str], Path]

EPISODE = "cast: {a: {image: m/a.png}}\nshots:\n" + "".join(f"  - {{id: s{i}, duration: 2, prompt: '{{{{ a }}}} scene {i}'}}\n" for i in range(4))


def closed_port() -> int:
    """A loopback port nothing listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_wrong_base_url_is_reported_at_once_and_ends_with_its_own_exit_code(tmp_path: Path, write: Write, media: Media) -> None:
    media("m/a.png", "png")
    ep = write("ep.yaml", EPISODE)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "r2v_pipeline", "run", str(ep), "--base-url", f"http://127.0.0.1:{closed_port()}/api/v1",
         "--out", str(tmp_path / "out"), "--state", str(tmp_path / "state"), "--log-format", "json", "--give-up-after", "4"],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "DASHSCOPE_API_KEY": "sk-not-a-real-key"},
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert done.returncode == exits.UNREACHABLE, done.stderr
    assert elapsed < 60  # bounded: the patience, not the retries of every shot one after another
    events = [json.loads(line) for line in done.stderr.splitlines()]
    unreachable = [e for e in events if e["event"] == "unreachable"]
    assert unreachable[0]["message"].startswith("provider unreachable: dashscope http://127.0.0.1:")
    assert "ConnectError" in unreachable[0]["message"] and unreachable[0]["attempt"] == 1 and "wait" in unreachable[0]
    assert [e["attempt"] for e in unreachable if "wait" in e] == list(range(1, len(unreachable)))  # every retry said
    assert "giving up" in unreachable[-1]["message"]
    assert "sk-not-a-real-key" not in done.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert {s["status"] for s in report["shots"]} == {"unsent"}
    assert report["totals"]["billed_seconds_this_run"] == 0 and all(s["billed_seconds"] == 0 for s in report["shots"])
    assert report["run"]["unreachable"] and report["run"]["exit_code"] == exits.UNREACHABLE
    assert "provider unreachable" in report["shots"][0]["reason"]
    ledger = Ledger.peek(tmp_path / "state")
    assert ledger is not None
    assert {r.state for r in ledger.records().values()} == {"planned"}  # not failed: the next run sends them
    ledger.close()


def test_the_next_plain_run_sends_what_an_outage_left_unsent(
    tmp_path: Path, start_sim: StartSim, write: Write, media: Media, monkeypatch: pytest.MonkeyPatch
) -> None:
    media("m/a.png", "png")
    ep = write("ep.yaml", EPISODE)
    plan = plan_of([ep], tmp_path, base_url=f"http://127.0.0.1:{closed_port()}/api/v1")
    options = RunOptions(poll=FAST.poll, seed=7, reach=ReachPolicy(patience=1.0))
    log = io.StringIO()
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-test")
    assert execute(plan, RunRequest(options=options, log_format="plain", report_dir=tmp_path / "out"), stream=log) == exits.UNREACHABLE
    assert "provider unreachable" in log.getvalue()
    sim = fast_sim(start_sim)
    code, report, text = run([ep], tmp_path, sim)  # no --retry-failed
    assert code == 0, text
    assert {s["status"] for s in report["shots"]} == {"downloaded"}
    assert max(billed_tasks_per_content(sim).values()) == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_r2v_sim(state: Path, port: int, videos: Path) -> subprocess.Popen[str]:
    """``r2v sim --state`` in its own process; returns once it listens."""
    sim = subprocess.Popen(
        [sys.executable, "-m", "r2v_pipeline", "sim", "--port", str(port), "--state", str(state), "--time-scale", "0.01",
         "--rate-clock", "wall", "--cache-dir", str(videos)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert sim.stdout is not None
    line = sim.stdout.readline()  # "r2v sim: listening on …" once it accepts connections
    assert "listening on" in line, sim.stderr.read() if sim.stderr else line
    return sim


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def test_a_20_second_provider_outage_mid_run_fails_nothing_and_pays_nothing_twice(tmp_path: Path, sim_video_dir: Path) -> None:
    series = tmp_path / "lighthouse"
    shutil.copytree(Path(__file__).resolve().parent.parent / "manifests" / "lighthouse", series)
    state, port = tmp_path / "sim-state", free_port()
    sim = start_r2v_sim(state, port, sim_video_dir)
    command = [sys.executable, "-m", "r2v_pipeline", "run", *map(str, sorted(series.glob("ep*.yaml"))), "--simulator", f"http://127.0.0.1:{port}",
               "--out", str(tmp_path / "out"), "--state", str(tmp_path / "state"), "--log-format", "json",
               "--settle", "5"]  # a submit cut by the outage is looked for 5 s, not 120: the simulator answers at once  # fmt: skip
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _submitted(tmp_path / "state" / "simulated") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _submitted(tmp_path / "state" / "simulated"), "the run submitted something before the outage"
        stop(sim)  # the provider goes away for 20 s, mid-run
        time.sleep(20)
        sim = start_r2v_sim(state, port, sim_video_dir)
        _, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    events = [json.loads(line) for line in err.splitlines()]
    assert any(e["event"] == "unreachable" for e in events), err
    assert not [e for e in events if e["event"] in ("failed", "refused")], err
    if run.returncode != 0:  # the run may end before the outage does: one more plain run finishes it
        assert run.returncode in (exits.UNREACHABLE, exits.FAILED), err
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out" / "simulated" / "report.json").read_text())
    assert report["totals"]["done"] == 8 and not [s for s in report["shots"] if s["status"] == "failed"]
    stop(sim)
    ledger = read_ledger(state)
    assert ledger.duplicate_submissions() == {}  # nothing billed twice
    assert len([t for t in ledger.tasks() if t.status == "SUCCEEDED"]) == 8


def _submitted(state: Path) -> bool:
    ledger = Ledger.peek(state)
    if ledger is None:
        return False
    try:
        return any(r.state == "submitted" for r in ledger.records().values())
    finally:
        ledger.close()
