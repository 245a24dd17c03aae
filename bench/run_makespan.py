"""How long r2v run takes to make N shots through a 5-slot account, next to the ideal.

    python bench/run_makespan.py [--shots 50] [--time-scale 0.02] [--generation 120:120]

The simulator runs as a separate process (``python -m r2v_pipeline.sim``) so
the CPU time measured here is the runner's alone. Figures, in provider time
(the time scale shrinks the wall clock, not the shape):

* makespan: first submission to the last task's end, from the provider's own
  timestamps; ideal: the same shots run back to back on 5 slots with no delay
  between one task's end and the next one's start (waves of 5 × generation
  time when generation time is fixed). Target ≤ 1.05 × ideal.
* queries per task: task queries the simulator served over tasks made.
  Target ≤ 8. The poll schedule is in provider seconds, so this count is the
  same at any time scale.
* CPU per task: this process's CPU time over tasks made.

Then the official dashscope SDK's ``VideoSynthesis.call`` runs the same shots in
5 threads on the same simulator, for comparison. Its poll gaps (1, 1, 2, 2, 2,
4, … s) are wall seconds, so at a time scale below 1 its tasks look longer to
it than they are: its query count below is for tasks of generation × scale
wall seconds.
"""

from __future__ import annotations

import argparse
import heapq
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from r2v_pipeline.diagnostics import Diagnostics
from r2v_pipeline.media import synth
from r2v_pipeline.plan.planner import PlanOptions, make_plan
from r2v_pipeline.run.work import RunOptions
from r2v_pipeline.pipeline import RunRequest, execute


def start_simulator(time_scale: float, generation: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "r2v_pipeline.sim", "--port", "0", "--time-scale", str(time_scale), "--generation-seconds", generation, "--seed", "7"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    url = line.split("listening on ", 1)[1].split()[0]
    return process, url


def write_manifest(folder: Path, shots: int) -> Path:
    (folder / "a.png").write_bytes(synth.image_bytes(256, 256))
    lines = ["series: bench", "cast: {a: {image: a.png}}", "defaults: {model: wan2.7-r2v, resolution: 720P, duration: 5}", "shots:"]
    lines += [f"  - {{id: s{i:03d}, prompt: 'take {i}: {{{{ a }}}} walks'}}" for i in range(shots)]
    path = folder / "episode.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def sim_ledger(url: str) -> dict:
    return httpx.get(url + "/_sim/ledger", timeout=60, trust_env=False).json()


def task_times(url: str, account_key: str, task_ids: list[str]) -> list[tuple[float, float, float]]:
    """(submitted, started, ended) in provider seconds, asked after the run (not counted)."""
    from r2v_pipeline.providers.dashscope import _time

    out = []
    with httpx.Client(base_url=url + "/api/v1", headers={"Authorization": f"Bearer {account_key}"}, trust_env=False) as client:
        for task_id in task_ids:
            while True:
                response = client.get(f"/tasks/{task_id}")
                if response.status_code == 429:
                    time.sleep(0.1)
                    continue
                o = response.json()["output"]
                out.append((_time(o["submit_time"]), _time(o["scheduled_time"]), _time(o["end_time"])))
                break
    return out


def ideal_makespan(durations: list[float], slots: int = 5) -> float:
    """Back to back on ``slots`` slots, in submission order, nothing lost between tasks."""
    free = [0.0] * slots
    end = 0.0
    for d in durations:
        start = heapq.heappop(free)
        heapq.heappush(free, start + d)
        end = max(end, start + d)
    return end


def figures(url: str, key: str, kinds: dict[str, int], times: list[tuple[float, float, float]], cpu: float) -> dict[str, float]:
    tasks = len(times)
    makespan = max(e for _, _, e in times) - min(s for s, _, _ in times)
    ideal = ideal_makespan([e - st for _, st, e in sorted(times)])
    return {
        "tasks": tasks,
        "makespan_s": makespan,
        "ideal_s": ideal,
        "ratio": makespan / ideal,
        "queries_per_task": kinds.get("query", 0) / tasks,
        "requests_per_task": sum(kinds.values()) / tasks,
        "cpu_ms_per_task": 1000 * cpu / tasks,
    }


def run_r2v(url: str, manifest: Path, folder: Path) -> dict[str, float]:
    diagnostics = Diagnostics()
    plan = make_plan([manifest], PlanOptions(output_dir=folder / "out", state_dir=folder / "state"), diagnostics)
    assert not diagnostics.errors
    cpu = time.process_time()
    code = execute(plan, RunRequest(options=RunOptions(seed=1), attach=url, log_format="plain"), stream=io.StringIO())
    cpu = time.process_time() - cpu
    assert code == 0, code
    report = json.loads((folder / "out" / "report.json").read_text())
    task_ids = [s["task_id"] for s in report["shots"]]
    ledger = sim_ledger(url)
    account = ledger["tasks"][0]["account"] if ledger["tasks"] else ""
    kinds = _kinds(ledger, account)
    return figures(url, "sim-key", kinds, task_times(url, "sim-key", task_ids), cpu)


def run_sdk(url: str, shots: int, key: str) -> dict[str, float]:
    """The official SDK's blocking call, 5 threads, the same shots."""
    import dashscope
    from dashscope import VideoSynthesis

    dashscope.base_http_api_url = url + "/api/v1"
    image = "data:image/png;base64," + __import__("base64").b64encode(synth.image_bytes(256, 256)).decode()
    task_ids: list[str] = []
    lock = threading.Lock()
    cpu = time.process_time()

    def worker(indices: range) -> None:
        for i in indices:
            rsp = VideoSynthesis.call(
                api_key=key,
                model="wan2.7-r2v",
                media=[{"type": "reference_image", "url": image}],
                prompt=f"take {i}: reference image walks",
                resolution="720P",
                duration=5,
            )
            assert rsp.status_code == 200, rsp
            with lock:
                task_ids.append(rsp.output.task_id)

    threads = [threading.Thread(target=worker, args=(range(t, shots, 5),)) for t in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cpu = time.process_time() - cpu
    ledger = sim_ledger(url)
    accounts = {t["account"] for t in ledger["tasks"] if t["task_id"] in set(task_ids)}
    kinds = _kinds(ledger, accounts.pop())
    return figures(url, key, kinds, task_times(url, key, task_ids), cpu)


# The SDK's wait between queries, in wall seconds: 1, 1, 2, 2, 2, 4, 4, 4, then 5 on.
SDK_GAPS = (1, 1, 2, 2, 2, 4, 4, 4)


def sdk_queries_unscaled(generation: str) -> float:
    """Queries the SDK's schedule makes for tasks of these generation times at time
    scale 1 (averaged over a uniform spread), computed from its gaps, not measured."""
    lo, hi = (float(x) for x in generation.split(":"))
    lengths = [lo + (hi - lo) * i / 100 for i in range(101)] if hi > lo else [lo]

    def queries(seconds: float) -> int:
        t, n = 0.0, 0
        while True:
            t += SDK_GAPS[n] if n < len(SDK_GAPS) else 5
            n += 1
            if t >= seconds:
                return n

    return sum(map(queries, lengths)) / len(lengths)


def _kinds(ledger: dict, account: str) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for request in ledger["requests"]:
        if request["account"] == account:
            kinds[request["kind"]] = kinds.get(request["kind"], 0) + 1
    return kinds


def show(name: str, f: dict[str, float]) -> None:
    print(
        f"{name:<22} {f['tasks']:>5.0f} tasks  makespan {f['makespan_s']:8.1f} s  ideal {f['ideal_s']:8.1f} s  "
        f"ratio {f['ratio']:.3f}  queries/task {f['queries_per_task']:5.2f}  requests/task {f['requests_per_task']:5.2f}  "
        f"CPU {f['cpu_ms_per_task']:6.1f} ms/task"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shots", type=int, default=50)
    parser.add_argument("--time-scale", type=float, default=0.02)
    parser.add_argument("--generation", default="120:120", help="provider seconds LO:HI (default fixed: %(default)s)")
    parser.add_argument("--no-sdk", action="store_true")
    args = parser.parse_args()
    process, url = start_simulator(args.time_scale, args.generation)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            manifest = write_manifest(folder, args.shots)
            print(f"{args.shots} shots, 5 slots, generation {args.generation} provider s, time scale {args.time_scale}; provider seconds below")
            started = time.monotonic()
            show("r2v run", run_r2v(url, manifest, folder))
            print(f"{'':<22} wall {time.monotonic() - started:.1f} s")
            if not args.no_sdk:
                started = time.monotonic()
                show("SDK call, 5 threads", run_sdk(url, args.shots, "sdk-bench-key"))
                print(f"{'':<22} wall {time.monotonic() - started:.1f} s")
                print(
                    f"{'':<22} at time scale 1 its schedule would make {sdk_queries_unscaled(args.generation):.1f} queries/task "
                    "(computed from its poll gaps; r2v's schedule is in provider seconds, so its count above holds unscaled)"
                )
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    os.environ.pop("DASHSCOPE_API_KEY", None)
    main()
