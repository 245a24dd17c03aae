"""A rerun with nothing changed: what a cron job pays every time it finds no work.

    python bench/rerun.py [--shots N] [--repeat R] [--profile]

Makes an episode of N shots (default 1,000) on the embedded simulator once, then
times ``r2v run --simulate`` on it again, R times, each in a fresh process (the
cron case: start-up, validate, plan, ledger, decide, reports). Prints min and
median wall time against the goal (issue 12): <= 1 s for 1,000 shots. With
``--profile``, one more rerun under cProfile prints where its time goes.

The runs keep their cache folder (R2V_CACHE_DIR: media verdicts, compiled pages,
plans) in the bench's folder, as a cron job's reruns keep theirs: importing
plan_scale turns caches off for this process, which is right for timing planning
and wrong here. ``--cache off`` times reruns without any cache.
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from plan_scale import write_manifests

GOAL = 1.0  # seconds, 1,000 shots


def environment(folder: Path, cache: str | None) -> dict[str, str]:
    return {**os.environ, "R2V_CACHE_DIR": cache or str(folder / "cache")}


def r2v(folder: Path, episode: Path, *extra: str) -> list[str]:
    return [sys.executable, *extra, "-m", "r2v_pipeline", "run", "--simulate", "--time-scale", "0.002",
            "--log-format", "json", "--out", str(folder / "out"), "--state", str(folder / "state"), str(episode)]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shots", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--cache", metavar="DIR|off", help="the runs' cache folder (default: one in the bench's folder)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="make the episode here and keep it (a second call reuses it)")
    args = parser.parse_args()
    # Byte-compiled first, as an installed r2v is: with PYTHONDONTWRITEBYTECODE set every
    # start would compile the package from source (see startup.py).
    compileall.compile_dir(Path(__file__).resolve().parent.parent / "r2v_pipeline", quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        env = environment(folder, args.cache)
        episode = folder / "episode.yaml"
        if not episode.exists():
            folder.mkdir(parents=True, exist_ok=True)
            episode = write_manifests(folder, args.shots)
            started = time.perf_counter()
            first = subprocess.run(r2v(folder, episode), cwd=folder, capture_output=True, text=True, env=env)
            if first.returncode != 0:
                sys.exit(f"the first run failed ({first.returncode}): {first.stderr[-2000:] or first.stdout[-2000:]}")
            print(f"first run: {args.shots} shots made in {time.perf_counter() - started:.1f} s wall")
        # The cron job's previous call, untimed: what it kept (plan, pages) is what the next call finds.
        subprocess.run(r2v(folder, episode), cwd=folder, capture_output=True, text=True, env=env)
        times, cpu = [], []
        for _ in range(args.repeat):
            used = _children_cpu()
            start = time.perf_counter()
            rerun = subprocess.run(r2v(folder, episode), cwd=folder, capture_output=True, text=True, env=env)
            times.append(time.perf_counter() - start)
            cpu.append(_children_cpu() - used)
            if rerun.returncode != 0 or '"submitted"' in rerun.stdout:
                sys.exit(f"the rerun did work or failed ({rerun.returncode}): {rerun.stdout[-2000:]}")
        goal = GOAL * args.shots / 1000
        verdict = "meets" if min(times) <= goal else "misses"
        print(f"rerun, nothing changed, {args.shots} shots: min {min(times):.2f} s, median {statistics.median(times):.2f} s "
              f"of {args.repeat} (goal <= {goal:.2f} s: {verdict}); CPU (user + system) min {min(cpu):.2f} s, "
              f"median {statistics.median(cpu):.2f} s")  # fmt: skip
        if args.profile:
            stats = folder / "rerun.prof"
            subprocess.run(r2v(folder, episode, "-m", "cProfile", "-o", str(stats)), cwd=folder, capture_output=True, check=False, env=env)
            import pstats

            pstats.Stats(str(stats)).sort_stats("cumulative").print_stats(40)


def _children_cpu() -> float:
    """CPU seconds of the finished children: on a shared machine it moves far less than wall time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
