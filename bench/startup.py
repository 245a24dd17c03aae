"""How fast r2v starts: ``r2v --help`` and ``r2v validate`` of a one-shot episode.

    python bench/startup.py [--repeat R]

Each command runs in a fresh interpreter, R times, interleaved with
``python -c pass`` on the same clock, so that machine load falls on all three.
Prints min and median wall time, the time over that of ``python -c pass``, and
the goals (issue 12): --help <= 0.1 s, validate <= 0.2 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from plan_scale import write_manifests

GOALS = {"r2v --help": 0.1, "r2v validate (1 shot)": 0.2}


def wall(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        episode = write_manifests(folder, 1)
        commands = {
            "python -c pass": [python, "-c", "pass"],
            "r2v --help": [python, "-m", "r2v_pipeline", "--help"],
            "r2v validate (1 shot)": [python, "-m", "r2v_pipeline", "validate", episode.name],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeat):
            for name, command in commands.items():
                times[name].append(wall(command, folder))
    base = times["python -c pass"]
    print(f"min / median of {args.repeat} runs, interleaved")
    for name, t in times.items():
        line = f"{name:>22}: min {min(t):.3f} s, median {statistics.median(t):.3f} s"
        if name in GOALS:
            ratio = f"{min(t) / min(base):.1f}x / {statistics.median(t) / statistics.median(base):.1f}x python -c pass"
            line += f" ({ratio}; goal <= {GOALS[name]} s: {'met' if min(t) <= GOALS[name] else 'not met'})"
        print(line)


if __name__ == "__main__":
    main()
