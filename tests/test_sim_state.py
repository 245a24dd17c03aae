"""The simulator's state on disk: a simulator stopped (or killed) and started again on
its folder is the same provider — tasks, results, uploads, ids, billing, clock, expiry."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from r2v_pipeline.media.probe import probe_file
from r2v_pipeline.sim import Rate, SimConfig, Simulator, read_ledger, start_simulator
from r2v_pipeline.sim.command import config_from_args
from r2v_pipeline.sim.command import main as sim_main
from tests.conftest import REMOTE_MEDIA
from tests.test_sim_cli import LISTENING, parse
from tests.test_sim_dashscope import DAY, LONGEST_GENERATION, dashscope_client, query, submit, upload, video, wan26, wan27

Client = Callable[..., httpx.Client]
StartSim = Callable[..., Simulator]
REPO = Path(__file__).resolve().parent.parent
RESOLVE = {"X-DashScope-OssResourceResolve": "enable"}
GENERATION = 100.0


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "sim-state"


def config(folder: Path, videos: Path, **fields: Any) -> SimConfig:
    """The ``start_sim`` defaults, keeping state in ``folder``."""
    chosen = {"seed": 1, "time_scale": 1000.0, "rate_clock": "provider", "cache_dir": videos, "state_dir": folder, "remote_media": REMOTE_MEDIA, **fields}
    return SimConfig(**chosen)


def statuses(api: httpx.Client, ids: list[str]) -> list[str]:
    return [query(api, task_id)["output"]["task_status"] for task_id in ids]


# --- restart on the same folder ------------------------------------------------------------


def test_a_restarted_simulator_answers_as_the_same_provider(
    folder: Path, sim_video_dir: Path, start_sim: StartSim, http_client: Client, media_bytes: dict[str, bytes]
) -> None:
    # No queue wait: the figures below count whole generations from each submit.
    fields = {"submit_rate": (Rate(100, 1.0),), "generation_seconds": (GENERATION, GENERATION), "pending_seconds": 0.0}
    with start_simulator(config(folder, sim_video_dir, **fields)) as first:
        api = dashscope_client(first, http_client)
        key = upload(api, http_client, media_bytes["video_3s"], "kai.mp4")
        done = submit(api, wan27(prompt="Image 1 before the stop."))
        first.advance(GENERATION)
        failed = submit(api, wan26(size="1000*1000"))  # a size wan2.6 refuses once it looks: FAILED at start
        busy = [submit(api, wan27(video(key), prompt="Video 1 runs."), **RESOLVE)]
        busy += [submit(api, wan27(prompt=f"Image 1 number {n}.")) for n in range(6)]
        old = [done, failed, *busy]
        before = {task_id: query(api, task_id)["output"] for task_id in old}
        url = before[done]["video_url"]
        video_bytes = http_client().get(url).content
        billed, stopped_at, port = first.ledger.billed_seconds(), first.now(), first.port
    assert [before[t]["task_status"] for t in old] == ["SUCCEEDED", "FAILED"] + ["RUNNING"] * 5 + ["PENDING"] * 2

    second = start_sim(state_dir=folder, **fields)
    api = dashscope_client(second, http_client)
    assert second.port == port and second.now() >= stopped_at
    assert {task_id: query(api, task_id)["output"] for task_id in old} == before  # same status, times, URL
    assert http_client().get(url).content == video_bytes  # the old result URL still downloads
    assert api.get("/tasks", params={"page_size": 20}).json()["total"] == len(old)
    assert second.ledger.billed_seconds() == billed and {t.task_id for t in second.ledger.tasks()} == set(old)

    again = submit(api, wan27(prompt="Image 1 before the stop."))  # the same body: the next id, never the old one
    reuse = submit(api, wan27(video(key), prompt="Video 1 after the stop."), **RESOLVE)
    assert again not in old and reuse not in old
    second.advance(GENERATION)
    after = {task_id: query(api, task_id)["output"] for task_id in [*busy, reuse]}
    assert [after[t]["task_status"] for t in busy] == ["SUCCEEDED"] * 5 + ["RUNNING"] * 2  # they go on
    assert after[busy[5]]["scheduled_time"] == after[busy[0]]["end_time"]  # the queue kept its order
    assert after[reuse]["task_status"] == "RUNNING"  # the oss:// key still resolves: the task did not fail
    second.advance(GENERATION)
    assert query(api, reuse)["usage"]["input_video_duration"] == 3
    ledger, entry = second.ledger, second.ledger.task(done)
    assert entry is not None and ledger.duplicate_submissions()[(entry.account, entry.fingerprint)] == [done, again]
    assert ledger.billed_seconds() > billed and read_ledger(folder).billed_seconds() == ledger.billed_seconds()


@pytest.mark.parametrize("mode", ["paused", "wall"])
def test_provider_time_across_a_stop(mode: str, folder: Path, sim_video_dir: Path, http_client: Client) -> None:
    scale, stop = 0.0002, 2.0  # 5,000 provider seconds a wall second: the stop is 10,000 provider seconds
    gap = stop / scale
    fields = {"time_scale": scale, "clock_while_stopped": mode, "generation_seconds": (0.6 * gap, 0.6 * gap)}
    with start_simulator(config(folder, sim_video_dir, **fields)) as first:
        api = dashscope_client(first, http_client)
        task_id = submit(api, wan27())
        submitted = query(api, task_id)["output"]["submit_time"]
        stopped_at = first.now()
    time.sleep(stop)
    with start_simulator(config(folder, sim_video_dir, **fields)) as second:
        resumed_at = second.now()
        output = dashscope_client(second, http_client).get(f"/tasks/{task_id}").json()["output"]
    assert resumed_at >= stopped_at and output["submit_time"] == submitted  # time never runs back
    if mode == "paused":  # resumes where it stood: only the moments it ran count
        assert resumed_at - stopped_at < gap / 2
        assert output["task_status"] == "RUNNING"
    else:  # the stop counted at the time scale: the generation went on meanwhile
        assert resumed_at - stopped_at >= gap
        assert output["task_status"] == "SUCCEEDED"


def test_expiry_still_applies_after_a_restart(
    folder: Path, sim_video_dir: Path, start_sim: StartSim, http_client: Client, media_bytes: dict[str, bytes]
) -> None:
    with start_simulator(config(folder, sim_video_dir, pending_seconds=0.0)) as first:
        api = dashscope_client(first, http_client)
        key = upload(api, http_client, media_bytes["video_3s"], "kai.mp4")
        task_id = submit(api, wan27())
        first.advance(LONGEST_GENERATION)
        url = query(api, task_id)["output"]["video_url"]
    second = start_sim(state_dir=folder, pending_seconds=0.0)
    api = dashscope_client(second, http_client)
    assert http_client().get(url).status_code == 200
    second.advance(DAY + 1)
    assert query(api, task_id)["output"]["task_status"] == "UNKNOWN"
    expired = http_client().get(url)
    assert expired.status_code == 403 and "<Message>Request has expired.</Message>" in expired.text
    assert query(api, submit(api, wan27(video(key)), **RESOLVE))["output"]["task_status"] == "RUNNING"  # 48 h for uploads
    second.advance(DAY)
    output = query(api, submit(api, wan27(video(key), prompt="Video 1 too late."), **RESOLVE))["output"]
    assert (output["task_status"], output["code"]) == ("FAILED", "InvalidParameter.DataInspection")


def test_a_task_waiting_in_the_queue_across_a_restart_starts_once_its_wait_is_over(
    folder: Path, sim_video_dir: Path, start_sim: StartSim, http_client: Client
) -> None:
    with start_simulator(config(folder, sim_video_dir, pending_seconds=10.0)) as first:
        task_id = submit(dashscope_client(first, http_client), wan27())
    second = start_sim(state_dir=folder, pending_seconds=10.0)
    api = dashscope_client(second, http_client)
    assert query(api, task_id)["output"]["task_status"] == "PENDING"
    second.advance(10.0)
    assert query(api, task_id)["output"]["task_status"] == "RUNNING"


def test_a_state_folder_that_cannot_be_used_is_named(tmp_path: Path, sim_video_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    with pytest.raises(ValueError, match=re.escape(str(not_a_folder))):
        with start_simulator(config(not_a_folder, sim_video_dir)):
            pass
    with start_simulator(config(tmp_path / "busy", sim_video_dir)):
        with pytest.raises(ValueError, match="in use"):
            with start_simulator(config(tmp_path / "busy", sim_video_dir)):
                pass
    assert sim_main(["--port", "0", "--state", str(not_a_folder)]) == 2
    assert str(not_a_folder) in capsys.readouterr().err


def test_sim_command_takes_a_state_folder_and_a_clock_mode() -> None:
    assert (config_of().state_dir, config_of().clock_while_stopped) == (None, "wall")
    chosen = config_of("--state", "somewhere", "--clock-while-stopped", "paused")
    assert (chosen.state_dir, chosen.clock_while_stopped) == (Path("somewhere"), "paused")


def config_of(*argv: str) -> SimConfig:
    return config_from_args(parse(*argv), environ={})


# --- real processes --------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    """No proxy (loopback only) and no provider key (a simulated run needs none)."""
    drop = ("DASHSCOPE_API_KEY", "FREEPIK_API_KEY")
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and k not in drop}


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; any still running when it ends is killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def start_sim_process(processes: list[subprocess.Popen[str]], state: Path) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "r2v_pipeline", "sim", "--port", "0", "--time-scale", "0.01", "--state", str(state)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
    processes.append(process)
    assert process.stdout is not None
    line = process.stdout.readline()  # the process prints it once it listens
    found = LISTENING.search(line)
    assert found, line + (process.stderr.read() if process.stderr and process.poll() is not None else "")
    return process, found.group(1)


def test_r2v_sim_with_state_knows_its_tasks_after_sigterm_and_kill(tmp_path: Path, processes: list[subprocess.Popen[str]]) -> None:
    state = tmp_path / "state"
    headers = {"Authorization": "Bearer sk-sim", "X-DashScope-Async": "enable"}

    def client(base: str) -> httpx.Client:
        return httpx.Client(base_url=base + "/api/v1", headers=headers, trust_env=False, timeout=10)

    process, base = start_sim_process(processes, state)
    with client(base) as api:
        first = submit(api, wan27())
        submitted = query(api, first)["output"]["submit_time"]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0

    process, base = start_sim_process(processes, state)
    with client(base) as api:
        output = query(api, first)["output"]
        assert output["task_status"] != "UNKNOWN" and output["submit_time"] == submitted
        second = submit(api, wan27(prompt="Image 1 before a kill."))
    process.kill()  # SIGKILL: no shutdown at all; every answered change is already on disk
    process.wait(timeout=20)

    process, base = start_sim_process(processes, state)
    with client(base) as api:
        assert "UNKNOWN" not in [query(api, task_id)["output"]["task_status"] for task_id in (first, second)]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0


def submitted_shots(ledger: Path) -> int:
    """Shots with a task id in a run's ledger, read without disturbing the run."""
    if not ledger.is_file():
        return 0
    try:
        db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=1.0)
        try:
            return db.execute("SELECT count(*) FROM shots WHERE state = 'submitted'").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:  # being created
        return 0


def test_an_interrupted_simulated_run_resumes_without_expiring_or_paying_twice(tmp_path: Path, processes: list[subprocess.Popen[str]]) -> None:
    """The user's case: Ctrl-C during ``r2v run --simulate``, then the same command again."""
    series = tmp_path / "lighthouse"
    shutil.copytree(REPO / "manifests" / "lighthouse", series)
    out, state = tmp_path / "out", tmp_path / "state"
    episodes = [str(p) for p in sorted(series.glob("ep*.yaml"))]
    command = [sys.executable, "-m", "r2v_pipeline", "run", "--simulate", "--time-scale", "0.02", "--log-format", "plain"]
    command += ["--out", str(out), "--state", str(state), *episodes]

    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=clean_env())
    processes.append(first)
    ledger = state / "simulated" / "ledger.sqlite"
    deadline = time.monotonic() + 60
    while submitted_shots(ledger) == 0 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert submitted_shots(ledger) > 0, "no task was submitted within a minute"
    first.send_signal(signal.SIGINT)
    _, log = first.communicate(timeout=60)
    assert first.returncode == 130, log

    second = subprocess.run(command, capture_output=True, text=True, env=clean_env(), timeout=240)
    assert second.returncode == 0, second.stderr
    # Its tasks are in the ledger: nothing of a killed run to wait for before paying.
    assert "a killed run may have left" not in second.stderr, second.stderr
    report = json.loads((out / "simulated" / "report.json").read_text())
    assert report["totals"]["done"] == report["totals"]["shots"] == 8
    assert "expired" not in {shot["status"] for shot in report["shots"]}
    db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        assert db.execute("SELECT count(*) FROM shots WHERE state = 'expired'").fetchone()[0] == 0
    finally:
        db.close()
    for shot in report["shots"]:
        assert probe_file(out / "simulated" / shot["output"]).has_video
    paid = Counter((t.account, t.fingerprint) for t in read_ledger(state / "simulated" / "simulator").tasks() if t.status == "SUCCEEDED")
    assert paid and max(paid.values()) == 1  # nothing billed twice
