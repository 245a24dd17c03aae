"""Kill trial: r2v run killed with SIGKILL at random moments, round after round, against
the simulator on loopback; sometimes the ledger is lost between kills too. Prints how
many rounds and kills, and what matters: videos billed twice, paid videos lost.

    python bench/kill_trial.py [--rounds N] [--seed S]

Goal: 0 billed twice, 0 lost. Submits answer slowly and some answers are dropped, so
kills land while a submit is in flight and the next run must reconcile; every third
round deletes the state folder (a rebuilt host) after a kill, so the next run must
adopt what the provider already made.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from r2v_pipeline.diagnostics import Diagnostics
from r2v_pipeline.media.probe import probe_file
from r2v_pipeline.plan.planner import PlanOptions, make_plan
from r2v_pipeline.sim import SimConfig, start_simulator

REPO = Path(__file__).resolve().parent.parent
KILLING = 12  # attempts a round may kill; then runs are left to finish


def one_round(n: int, seed: int, folder: Path, videos: Path) -> dict[str, int]:
    rng = random.Random(seed * 1000 + n)
    series = folder / "lighthouse"
    shutil.copytree(REPO / "manifests" / "lighthouse", series)
    episode = [series / "ep01-the-storm.yaml"]  # DashScope only: Freepik's list cannot name a request
    config = SimConfig(time_scale=0.01, rate_clock="wall", seed=n, cache_dir=videos, faults="slow=0.6:0.8@submit,drop_after_body=0.1@submit")
    lose_ledger = n % 3 == 2
    kills = losses = 0
    with start_simulator(config) as sim:
        command = [sys.executable, "-m", "r2v_pipeline", "run", *map(str, episode), "--simulator", sim.base_url,
                   "--out", str(folder / "out"), "--state", str(folder / "state"), "--log-format", "plain", "--settle", "5"]  # fmt: skip
        for attempt in range(KILLING + 5):
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:  # after KILLING attempts a run is left to finish
                code = process.wait(timeout=rng.uniform(0.4, 3.0) if attempt < KILLING else 600)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                if lose_ledger and kills % 2 == 0 and losses < 3:
                    shutil.rmtree(folder / "state", ignore_errors=True)
                    losses += 1
                continue
            if code == 0:
                break
        else:
            raise SystemExit(f"round {n}: the run never finished")
        succeeded = Counter(t.fingerprint for t in sim.ledger.tasks() if t.status == "SUCCEEDED")
        plan = make_plan(episode, PlanOptions(output_dir=folder / "out", state_dir=folder / "state", namespace="simulated"), Diagnostics())
        missing = sum(1 for s in plan.shots if not (s.output.is_file() and probe_file(s.output).has_video))
    return {
        "kills": kills,
        "ledger losses": losses,
        "billed twice": sum(1 for count in succeeded.values() if count > 1),
        "lost": missing,
        "tasks": sum(succeeded.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    totals: Counter[str] = Counter()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as videos:
        for n in range(args.rounds):
            with tempfile.TemporaryDirectory() as folder:
                figures = one_round(n, args.seed, Path(folder), Path(videos))
            totals.update(figures)
            print(f"round {n + 1:2d}: " + ", ".join(f"{k} {v}" for k, v in figures.items()), flush=True)
    print(
        f"{args.rounds} rounds, {totals['kills']} kills, {totals['ledger losses']} ledgers lost: "
        f"billed twice {totals['billed twice']} (goal 0), lost {totals['lost']} (goal 0); "
        f"{time.monotonic() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
