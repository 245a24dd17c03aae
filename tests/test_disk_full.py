"""A disk that fills during a run: everything already paid is kept, the run ends with
exit 6 and leaves no temporary files, and once there is space again the next run
finishes the work with nothing billed twice. The output folder is a small tmpfs the
test mounts itself (root only; skipped, saying so, where mounting is not allowed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from r2v_pipeline import exits
from r2v_pipeline.media.probe import probe_file

from r2v_pipeline.diagnostics import Diagnostics
from r2v_pipeline.plan.planner import PlanOptions, make_plan

from .test_run import StartSim, billed_tasks_per_content, fast_sim

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "disk"
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs (CI runs as root)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this machine does not allow mounting a tmpfs: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if p.is_file() and p.suffix in (".part", ".tmp", ".link")]


def test_a_full_disk_keeps_what_was_paid_and_the_next_run_finishes_with_nothing_billed_twice(
    tmp_path: Path, small_disk: Path, start_sim: StartSim
) -> None:
    series = tmp_path / "lighthouse"
    shutil.copytree(REPO / "manifests" / "lighthouse", series)
    episode = [series / "ep01-the-storm.yaml"]
    sim = fast_sim(start_sim)
    command = [sys.executable, "-m", "r2v_pipeline", "run", *map(str, episode), "--simulator", sim.base_url,
               "--out", str(small_disk), "--state", str(tmp_path / "state"), "--log-format", "plain"]  # fmt: skip

    done = subprocess.run(command, capture_output=True, text=True, timeout=300)  # six videos of ~160-260 KB into 400 KB
    assert done.returncode == exits.ENVIRONMENT, done.stderr
    assert "No space left on device" in done.stderr and "Traceback" not in done.stderr
    assert temporaries(small_disk) == []
    paid = len(sim.ledger.tasks())

    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)  # space again
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == exits.OK, done.stderr
    assert len(sim.ledger.tasks()) == paid  # what the first run paid for was fetched, not made again
    assert max(billed_tasks_per_content(sim).values()) == 1
    assert temporaries(small_disk) == []
    for shot in make_plan(episode, PlanOptions(output_dir=small_disk, state_dir=tmp_path / "state", namespace="simulated"), Diagnostics()).shots:
        assert probe_file(shot.output).has_video
    report = json.loads((small_disk / "simulated" / "report.json").read_text())
    assert report["totals"]["done"] == 6
