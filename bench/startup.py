"""How fast r2v starts: ``r2v --help`` and ``r2v validate`` of a one-shot episode.

    python bench/startup.py [--repeat R] [--against REV]

Each command runs in a fresh interpreter, R times, interleaved with
``python -c pass`` on the same clock, so that machine load falls on all three.
Prints min and median wall time, the time over that of ``python -c pass``, and
the goals (issue 12): --help <= 0.1 s, validate <= 0.2 s.

The package's modules are byte-compiled first (into their __pycache__), as an
installed package's are: an interpreter told not to write bytecode
(PYTHONDONTWRITEBYTECODE) would otherwise compile every module from source on
every start, which no installed r2v does. Media probe verdicts go to a cache
of the bench's own, filled by one untimed run (as by a pre-commit hook's earlier
runs); "files new" validates with that cache off. ``--against REV``
also times the package as committed at REV (unpacked beside, compiled alike),
interleaved with this checkout's.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from plan_scale import export, write_manifests

GOALS = {"r2v --help": 0.1, "r2v validate (1 shot)": 0.2}


def wall(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--against", metavar="REV", help="also time the package as committed at REV")
    args = parser.parse_args()
    python = sys.executable
    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "episode"
        folder.mkdir()
        episode = write_manifests(folder, 1)
        roots = {"": repo}
        if args.against:
            roots[f" (at {args.against})"] = export(args.against, Path(tmp) / "against")
        envs = {}
        cache = str(Path(tmp) / "cache")  # probe verdicts: the bench's own, filled by an untimed run
        for side, root in roots.items():
            compileall.compile_dir(root / "r2v_pipeline", quiet=1)
            envs[side] = {**os.environ, "PYTHONPATH": str(root), "R2V_CACHE_DIR": cache}
        commands = {"python -c pass": ([python, "-c", "pass"], envs[""])}
        for side, env in envs.items():
            validate = [python, "-m", "r2v_pipeline", "validate", episode.name]
            wall(validate, folder, env)
            commands[f"r2v --help{side}"] = ([python, "-m", "r2v_pipeline", "--help"], env)
            commands[f"r2v validate (1 shot){side}"] = (validate, env)
            if not side:  # the first validate of these files: every one probed
                commands["r2v validate (1 shot, files new)"] = (validate, {**env, "R2V_CACHE_DIR": "off"})
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeat):
            for name, (command, env) in commands.items():
                times[name].append(wall(command, folder, env))
    base = times["python -c pass"]
    print(f"min / median of {args.repeat} runs, interleaved; modules byte-compiled beforehand")
    for name, t in times.items():
        line = f"{name:>34}: min {min(t):.3f} s, median {statistics.median(t):.3f} s"
        goal = next((g for goal_name, g in GOALS.items() if name.startswith(goal_name.split(" (")[0])), None)
        if goal is not None:
            ratio = f"{min(t) / min(base):.1f}x / {statistics.median(t) / statistics.median(base):.1f}x python -c pass"
            line += f" ({ratio}; goal <= {goal} s: {'met' if min(t) <= goal else 'not met'})"
        print(line)


if __name__ == "__main__":
    main()
