"""A lost ledger never means paying twice: the provider's task list is read before
paying, and the tasks an earlier run paid for are adopted — done or still in flight.
A ledger that cannot be read is moved aside, never deleted."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from r2v_pipeline import exits
from r2v_pipeline.media.probe import probe_file
from r2v_pipeline.run.ledger import Ledger

from r2v_pipeline.run.work import RunOptions

from .test_run import FAST, StartSim, billed_tasks_per_content, fast_sim, plan_of, run

REPO = Path(__file__).resolve().parent.parent


def copy_series(tmp: Path) -> list[Path]:
    folder = tmp / "lighthouse"
    shutil.copytree(REPO / "manifests" / "lighthouse", folder)
    return sorted(folder.glob("ep*.yaml"))


def test_a_run_after_the_state_and_outputs_are_gone_adopts_every_paid_task(tmp_path: Path, start_sim: StartSim) -> None:
    series = copy_series(tmp_path)[:1]  # ep01: DashScope only (Freepik's list cannot name a request)
    sim = fast_sim(start_sim)
    code, _, log = run(series, tmp_path, sim)
    assert code == 0, log
    paid = len(sim.ledger.tasks())
    shutil.rmtree(tmp_path / "state")  # a rebuilt cron host: no ledger,
    shutil.rmtree(tmp_path / "out")  # no videos, no store
    code, report, log = run(series, tmp_path, sim, RunOptions(poll=FAST.poll, settle=3.0))
    assert code == 0, log
    assert len(sim.ledger.tasks()) == paid  # nothing submitted again
    assert max(billed_tasks_per_content(sim).values()) == 1
    assert {s["status"] for s in report["shots"]} == {"downloaded"}
    assert all(s["reason"].startswith("adopted task ") and not s["billed_in_this_run"] for s in report["shots"])
    assert report["totals"]["billed_seconds_this_run"] == 0
    for shot in plan_of(series, tmp_path).shots:
        assert probe_file(shot.output).has_video


def test_a_ledger_lost_while_tasks_are_in_flight_bills_nothing_twice(tmp_path: Path, sim_video_dir: Path) -> None:
    from .test_outage import free_port, start_r2v_sim, stop

    series = copy_series(tmp_path)[:1]
    state, port = tmp_path / "sim-state", free_port()
    sim = start_r2v_sim(state, port, sim_video_dir)
    command = [sys.executable, "-m", "r2v_pipeline", "run", *map(str, series), "--simulator", f"http://127.0.0.1:{port}",
               "--out", str(tmp_path / "out"), "--state", str(tmp_path / "state"), "--log-format", "plain", "--settle", "3"]  # fmt: skip
    try:
        first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while _submitted(tmp_path / "state" / "simulated") < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        first.send_signal(signal.SIGKILL)  # killed with tasks in flight
        first.wait(timeout=30)
        shutil.rmtree(tmp_path / "state")  # and its ledger lost
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "adopted" in done.stderr
    finally:
        stop(sim)
    from r2v_pipeline.sim import read_ledger

    ledger = read_ledger(state)
    assert ledger.duplicate_submissions() == {}  # every request paid once
    assert len([t for t in ledger.tasks() if t.status == "SUCCEEDED"]) == 6
    for shot in plan_of(series, tmp_path, namespace="simulated").shots:
        assert probe_file(shot.output).has_video


def _submitted(state: Path) -> int:
    ledger = Ledger.peek(state)
    if ledger is None:
        return 0
    try:
        return sum(1 for r in ledger.records().values() if r.state == "submitted")
    except Exception:  # being written: look again
        return 0
    finally:
        ledger.close()


def test_a_corrupt_ledger_is_moved_aside_and_the_run_goes_on_from_the_store(tmp_path: Path, start_sim: StartSim) -> None:
    series = copy_series(tmp_path)[:1]
    sim = fast_sim(start_sim)
    assert run(series, tmp_path, sim)[0] == 0
    ledger_file = tmp_path / "state" / "ledger.sqlite"
    data = ledger_file.read_bytes()
    ledger_file.write_bytes(data[: len(data) // 2])  # cut in half
    for extra in ("ledger.sqlite-wal", "ledger.sqlite-shm"):
        (tmp_path / "state" / extra).unlink(missing_ok=True)
    code, report, log = run(series, tmp_path, sim)
    assert code == 0, log
    assert "moved aside to" in log and "never deleted" in log
    (aside,) = (tmp_path / "state").glob("ledger.sqlite.corrupt-*")
    assert aside.read_bytes() == data[: len(data) // 2]  # kept as it was
    assert {s["status"] for s in report["shots"]} == {"skipped"}
    assert max(billed_tasks_per_content(sim).values()) == 1
    ledger = Ledger.peek(tmp_path / "state")
    assert ledger is not None and {r.state for r in ledger.records().values()} == {"downloaded"}  # rebuilt from the store
    ledger.close()


def test_garbage_in_place_of_the_ledger_is_no_internal_error(tmp_path: Path, start_sim: StartSim) -> None:
    series = copy_series(tmp_path)[:1]
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "ledger.sqlite").write_bytes(b"not a database at all\\n" * 100)
    done = subprocess.run(
        [sys.executable, "-m", "r2v_pipeline", "status", *map(str, series), "--out", str(tmp_path / "out"), "--state", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and "internal error" not in done.stderr and "Traceback" not in done.stderr
    sim = fast_sim(start_sim)
    code, _, log = run(series, tmp_path, sim)
    assert code == 0, log
    assert list((tmp_path / "state").glob("ledger.sqlite.corrupt-*"))


def test_an_unusable_state_or_output_folder_is_exit_6_with_nothing_sent(tmp_path: Path, start_sim: StartSim) -> None:
    series = copy_series(tmp_path)[:1]
    sim = fast_sim(start_sim)
    (tmp_path / "a-file").write_text("not a folder")
    for flag, where in (("--state", tmp_path / "a-file"), ("--out", tmp_path / "a-file" / "out"), ("--out", Path("/dev/null/out"))):
        other = "--out" if flag == "--state" else "--state"
        done = subprocess.run(
            [sys.executable, "-m", "r2v_pipeline", "run", *map(str, series), "--simulator", sim.base_url, flag, str(where),
             other, str(tmp_path / other.strip("-")), "--log-format", "plain"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == exits.ENVIRONMENT, (flag, where, done.stderr)
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr
        assert str(where.name) in done.stderr or "Not a directory" in done.stderr, done.stderr
    assert sim.ledger.tasks() == [] and sim.ledger.requests(kind="submit") == []  # nothing was sent
