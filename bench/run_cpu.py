"""CPU per shot of a whole ``r2v run`` process against the simulator.

    python bench/run_cpu.py [--shots 50,200] [--runs 3] [--time-scale 0.0005] [--generation 60:300]

The simulator runs as its own process (``python -m r2v_pipeline.sim``) so its CPU
is not counted. Each run is one ``r2v run --simulator URL`` subprocess of N one-take
shots on a fresh output and state folder; the figure is that process's user+sys CPU
(os.wait4). Printed: total CPU, CPU per shot, and the slope between the smallest and
largest shot counts (the marginal cost of one more shot, start-up removed), min/median
of the runs. The simulator's videos are about 160 kB, so hashing them is noise:
what is measured is the run's own work per shot (ledger, polling, probing, logs, report).

Also printed, to show how much of that is the HTTP client the project is built on
(httpx over anyio): the requests a shot took (every request the simulator recorded:
submit, task and list queries, the download), and the CPU one request costs a bare
``httpx.AsyncClient`` on loopback against the same simulator, measured in this
process. Their product is a floor no change inside r2v can go below.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from run_makespan import sim_ledger, start_simulator, write_manifest  # the same simulator and manifest (5 slots, quota in provider time)

GOAL_MS = 3.0


def run_cpu(url: str, shots: int, time_scale: float, run: int) -> tuple[float, float]:
    """(user+sys CPU seconds, wall seconds) of one ``r2v run`` process."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        manifest = write_manifest(folder, shots, time_scale, run)
        env = {k: v for k, v in os.environ.items() if k not in ("DASHSCOPE_API_KEY", "R2V_SIMULATOR", "R2V_LEDGER_URL")}
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "r2v_pipeline", "run", str(manifest), "--simulator", url, "--log-format", "json",
             "--out", str(folder / "out"), "--state", str(folder / "state")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
        assert process.stderr is not None
        errors = process.stderr.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        if process.returncode != 0:
            sys.exit(f"r2v run exited {process.returncode}: {errors.decode(errors='replace')[-2000:]}")
        return usage.ru_utime + usage.ru_stime, wall


def client_cpu_per_request(url: str, requests: int = 400) -> float:
    """CPU seconds one small GET costs a bare httpx.AsyncClient (one kept connection, this
    process), against the simulator's health route: the client's own floor per request."""

    async def measure() -> float:
        async with httpx.AsyncClient(base_url=url, trust_env=False) as client:
            for _ in range(50):  # warm: connection made, code paths loaded
                (await client.get("/_sim/health")).raise_for_status()
            before = resource.getrusage(resource.RUSAGE_SELF)
            for _ in range(requests):
                (await client.get("/_sim/health")).raise_for_status()
            after = resource.getrusage(resource.RUSAGE_SELF)
        return (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / requests

    return asyncio.run(measure())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shots", default="50,200", help="comma-separated shot counts; the slope is between the first and last (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--time-scale", type=float, default=0.0005, help="simulator wall seconds per provider second (default: %(default)s)")
    parser.add_argument("--generation", default="60:300", help="provider seconds LO:HI (default: %(default)s)")
    args = parser.parse_args()
    counts = [int(n) for n in args.shots.split(",")]
    print(f"r2v run CPU (user+sys of the process), 5 slots, generation {args.generation} provider s, time scale {args.time_scale}")
    print(f"goal: CPU per shot <= {GOAL_MS:.0f} ms at 200 shots")
    cpu: dict[int, list[float]] = {n: [] for n in counts}
    per_shot_requests: list[float] = []
    floors: list[float] = []
    for run in range(args.runs):
        for n in counts:
            # A simulator of its own per run: a fresh ledger looks over the account's
            # earlier tasks before paying, which another run's tasks would make slower.
            process, url = start_simulator(args.time_scale, args.generation, seed=7 + run)
            try:
                seconds, wall = run_cpu(url, n, args.time_scale, run)
                requests = [r for r in sim_ledger(url)["requests"] if r["family"] != "sim"]
                per_shot_requests.append(len(requests) / n)
                floors.append(client_cpu_per_request(url))
            finally:
                process.terminate()
                process.wait(timeout=10)
            cpu[n].append(seconds)
            print(f"  run {run + 1}, {n} shots: CPU {seconds:.2f} s ({1000 * seconds / n:.1f} ms/shot), wall {wall:.1f} s")
    for n in counts:
        lo, mid = min(cpu[n]), statistics.median(cpu[n])
        print(f"{n} shots: CPU min/median {lo:.2f}/{mid:.2f} s; per shot {1000 * lo / n:.2f}/{1000 * mid / n:.2f} ms")
    if len(counts) > 1:
        a, b = counts[0], counts[-1]
        slopes = sorted(1000 * (y - x) / (b - a) for x, y in zip(cpu[a], cpu[b]))
        print(f"slope {a}->{b} shots (marginal CPU per shot, paired runs) min/median {slopes[0]:.2f}/{statistics.median(slopes):.2f} ms")
    requests_lo, floor_lo = min(per_shot_requests), min(floors)
    print(f"requests per shot (submit, queries, lists, download) min/median {requests_lo:.2f}/{statistics.median(per_shot_requests):.2f}; "
          f"a bare httpx.AsyncClient GET on loopback: {1000 * floor_lo:.2f}/{1000 * statistics.median(floors):.2f} ms CPU")
    print(f"the HTTP client's floor per shot (requests x CPU per request, at min): {1000 * requests_lo * floor_lo:.2f} ms")
    if 200 in cpu:
        per = 1000 * min(cpu[200]) / 200
        print(f"goal CPU per shot <= {GOAL_MS:.0f} ms at 200 shots: {per:.2f} ms ({'met' if per <= GOAL_MS else 'NOT met'})")


if __name__ == "__main__":
    main()
