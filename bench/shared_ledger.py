"""Shared ledger: 1, 2 and 3 ``r2v run`` processes on one PostgreSQL ledger and one
output folder, against one simulator (one account, 5 slots). Prints, for each, the
makespan, videos billed twice, shots not downloaded and the peak of tasks in flight;
with ``--kill``, one of the processes is SIGKILLed mid-run and the others must finish
its shots.

    python bench/shared_ledger.py [--shots N] [--kill] [--time-scale F]

Goal: 0 billed twice, 0 lost, peak in flight never above 5, and no makespan lost to
sharing (the account's 5 slots bound it, whatever the number of hosts). Needs
PostgreSQL's server binaries (a throwaway cluster is started, as the tests do).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from r2v_pipeline.media import synth  # noqa: E402
from r2v_pipeline.sim import SimConfig, start_simulator  # noqa: E402
from tests.pg import find_bindir, start_cluster  # noqa: E402


def episode(folder: Path, shots: int) -> Path:
    (folder / "m").mkdir(parents=True)
    (folder / "m" / "a.png").write_bytes(synth.image_bytes(512, 512))
    lines = "".join(f"  - {{id: s{i:03d}, duration: 2, prompt: 'scene {i} with {{{{ a }}}}'}}\n" for i in range(shots))
    path = folder / "ep.yaml"
    path.write_text("cast: {a: {image: m/a.png}}\nshots:\n" + lines)
    return path


def trial(processes: int, shots: int, kill: bool, url: str, videos: Path, seed: int, scale: float) -> dict[str, float]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp, start_simulator(SimConfig(time_scale=scale, rate_clock="wall", seed=seed, cache_dir=videos)) as sim:
        folder = Path(tmp)
        ep = episode(folder, shots)
        command = [sys.executable, "-m", "r2v_pipeline", "run", str(ep), "--simulator", sim.base_url, "--ledger", url, "--settle", "5",
                   "--log-format", "plain", "--out", str(folder / "out"), "--state", str(folder / "state")]  # fmt: skip
        started = time.monotonic()
        runs = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(processes)]
        killed = 0
        if kill and processes > 1:
            while not sim.ledger.tasks():
                time.sleep(0.05)
            time.sleep(rng.uniform(0.5, 2.0))
            runs[0].send_signal(signal.SIGKILL)
            killed = 1
        codes = [run.wait() for run in runs]
        makespan = time.monotonic() - started
        billed = Counter(t.fingerprint for t in sim.ledger.tasks() if t.status == "SUCCEEDED")
        videos_made = len(list((folder / "out").rglob("s*.mp4")))
        return {
            "processes": processes,
            "killed": killed,
            "exit codes": ",".join(map(str, codes)),
            "makespan s": round(makespan, 1),
            "billed twice": sum(1 for n in billed.values() if n > 1),
            "lost": shots - videos_made,
            "peak in flight": sim.stats()["peak_in_flight"],
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=30)
    parser.add_argument("--kill", action="store_true", help="SIGKILL one process mid-run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--time-scale", type=float, default=0.005, help="simulated wall seconds per provider second (a generation is 60-300 provider s)")
    args = parser.parse_args()
    bindir = find_bindir()
    if bindir is None:
        print("no PostgreSQL binaries (initdb, pg_ctl) found", file=sys.stderr)
        return 2
    cluster = start_cluster(bindir)
    try:
        with tempfile.TemporaryDirectory() as videos:
            for processes in (1, 2, 3):
                url = cluster.new_database()
                row = trial(processes, args.shots, args.kill, url, Path(videos), args.seed, args.time_scale)
                print("  ".join(f"{k}: {v}" for k, v in row.items()), flush=True)
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    os.environ.pop("R2V_LEDGER_URL", None)
    sys.exit(main())
