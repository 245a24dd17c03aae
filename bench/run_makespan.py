"""How long r2v run and the official SDK take to make N shots through a 5-slot account.

    python bench/run_makespan.py [--shots 50,200] [--runs 3] [--time-scale 0.02] [--generation 60:300]

The simulator runs as a separate process (``python -m r2v_pipeline.sim``). Both
clients live in provider time: the simulator's quotas count provider seconds
(``--rate-clock provider``), r2v is given the account's quota per provider second,
and the SDK's waits between queries are scaled like the simulator's clock. Both
make the same shots with the same generation times (the simulator fixes a task's
time by its prompt, and the SDK sends r2v's prompts). Figures, provider seconds:

* makespan: first submission to the last task's end (the provider's timestamps).
* ideal: the tasks' actual durations (submission to end: a slot is held from the
  submit) on 5 slots, each started the moment a slot frees (a greedy list schedule
  in submission order); floor: max(Σd / 5, max d), no schedule beats it.
* detection: when the client first asked a task after its end, as % of the task's
  generation time (median / p95 / max).
* task queries per task (GET /tasks/{id}); list queries (each serves every task in
  flight), all queries per task; all queries as % of the account's 20 queries/s over
  the makespan.
"""

from __future__ import annotations

import argparse
import base64
import heapq
import io
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path
from typing import Any

import httpx

from r2v_pipeline.diagnostics import Diagnostics
from r2v_pipeline.media import synth
from r2v_pipeline.pipeline import RunRequest, execute
from r2v_pipeline.plan.planner import PlanOptions, make_plan
from r2v_pipeline.run.work import RunOptions

SLOTS = 5
QUOTA = {"in_progress": SLOTS, "submits_per_second": 5.0, "queries_per_second": 20.0}  # DashScope's [doc]
GOALS = "goals: makespan/ideal <= 1.02 and below the SDK's; detection p95 <= 5 %; task queries/task <= 8; query rate <= 25 % of quota"


def start_simulator(time_scale: float, generation: str, seed: int) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "r2v_pipeline.sim", "--port", "0", "--time-scale", str(time_scale), "--generation-seconds", generation,
         "--generation-by", "prompt", "--rate-clock", "provider", "--seed", str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    return process, line.split("listening on ", 1)[1].split()[0]


def write_manifest(folder: Path, shots: int, time_scale: float, run: int) -> Path:
    (folder / "a.png").write_bytes(synth.image_bytes(256, 256))
    # The account's quota per provider second, as the simulator counts it.
    quota = {k: (v if k == "in_progress" else v / time_scale) for k, v in QUOTA.items()}
    lines = ["series: bench", f"provider: {{quota: {json.dumps(quota)}}}", "cast: {a: {image: a.png}}",
             "defaults: {model: wan2.7-r2v, resolution: 720P, duration: 5}", "shots:"]
    lines += [f"  - {{id: s{i:03d}, prompt: 'run {run} take {i}: {{{{ a }}}} walks'}}" for i in range(shots)]
    path = folder / "episode.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def sim_ledger(url: str) -> dict[str, Any]:
    return httpx.get(url + "/_sim/ledger", timeout=60, trust_env=False).json()


def task_facts(url: str, key: str, task_ids: list[str]) -> list[dict[str, Any]]:
    """Each task's times (provider seconds) and prompt, asked after the run (not counted)."""
    from r2v_pipeline.providers.dashscope import _time

    out = []
    with httpx.Client(base_url=url + "/api/v1", headers={"Authorization": f"Bearer {key}"}, trust_env=False) as client:
        for task_id in task_ids:
            while (response := client.get(f"/tasks/{task_id}")).status_code == 429:
                time.sleep(0.05)
            o = response.json()["output"]
            out.append({"id": task_id, "submitted": _time(o["submit_time"]), "started": _time(o["scheduled_time"]),
                        "ended": _time(o["end_time"]), "prompt": o.get("orig_prompt")})
    return out


def greedy(durations: list[float], slots: int = SLOTS) -> float:
    """Each task, in order, on the slot that frees first, the moment it frees."""
    free = [0.0] * slots
    for d in durations:
        heapq.heappush(free, heapq.heappop(free) + d)
    return max(free)


def figures(ledger: dict[str, Any], account: str, facts: list[dict[str, Any]]) -> dict[str, float]:
    tasks = len(facts)
    facts = sorted(facts, key=lambda f: f["submitted"])
    makespan = max(f["ended"] for f in facts) - facts[0]["submitted"]
    held = [f["ended"] - f["submitted"] for f in facts]
    ideal = greedy(held)
    floor = max(sum(held) / SLOTS, max(held))
    mine = [r for r in ledger["requests"] if r["account"] == account]
    asked: dict[str, list[float]] = {}
    for r in mine:
        if r["kind"] == "query" and r.get("task_id"):
            asked.setdefault(r["task_id"], []).append(r["at"])
    delays = []
    for f in facts:
        after = [t for t in asked.get(f["id"], []) if t >= f["ended"]]
        delays.append(100 * (min(after) - f["ended"]) / (f["ended"] - f["started"]) if after else float("nan"))
    delays.sort()
    queries = sum(1 for r in mine if r["kind"] == "query")
    lists = sum(1 for r in mine if r["kind"] == "list")
    return {
        "makespan": makespan, "ideal": ideal, "floor": floor, "ratio": makespan / ideal,
        "det_median": statistics.median(delays), "det_p95": delays[min(len(delays) - 1, int(0.95 * len(delays)))], "det_max": delays[-1],
        "queries_per_task": queries / tasks, "lists": lists, "all_per_task": (queries + lists) / tasks,
        "quota_pct": 100 * (queries + lists) / makespan / QUOTA["queries_per_second"],
    }


def run_r2v(url: str, folder: Path, shots: int, time_scale: float, run: int) -> tuple[dict[str, float], list[str]]:
    manifest = write_manifest(folder, shots, time_scale, run)
    diagnostics = Diagnostics()
    plan = make_plan([manifest], PlanOptions(output_dir=folder / "out", state_dir=folder / "state"), diagnostics)
    assert not diagnostics.errors, diagnostics.errors
    code = execute(plan, RunRequest(options=RunOptions(seed=1), attach=url, log_format="plain"), stream=io.StringIO())
    assert code == 0, code
    report = json.loads((folder / "out" / "report.json").read_text())
    ledger = sim_ledger(url)  # before the bench's own questions below
    facts = task_facts(url, "sim-key", [s["task_id"] for s in report["shots"]])
    account = next(t["account"] for t in ledger["tasks"] if t["task_id"] == facts[0]["id"])
    return figures(ledger, account, facts), [f["prompt"] for f in sorted(facts, key=lambda f: f["submitted"])]


def scaled_sdk_sleep(time_scale: float) -> None:
    """The SDK's waits between queries (1, 1, 2, … 5 s) are provider seconds: scale them."""
    from dashscope.client import base_api

    real = time

    class Clock(types.ModuleType):
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        @staticmethod
        def sleep(seconds: float) -> None:
            real.sleep(seconds * time_scale)

    base_api.time = Clock("time")  # type: ignore[attr-defined]


def run_sdk(url: str, prompts: list[str], key: str) -> dict[str, float]:
    """The official SDK's blocking call on 5 threads taking shots from one queue."""
    import dashscope
    from dashscope import VideoSynthesis

    dashscope.base_http_api_url = url + "/api/v1"
    image = "data:image/png;base64," + base64.b64encode(synth.image_bytes(256, 256)).decode()
    work: queue.Queue[str] = queue.Queue()
    for prompt in prompts:
        work.put(prompt)
    task_ids: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        while True:
            try:
                prompt = work.get_nowait()
            except queue.Empty:
                return
            rsp = VideoSynthesis.call(api_key=key, model="wan2.7-r2v", media=[{"type": "reference_image", "url": image}],
                                      prompt=prompt, resolution="720P", duration=5)
            assert rsp.status_code == 200, rsp
            with lock:
                task_ids.append(rsp.output.task_id)

    threads = [threading.Thread(target=worker) for _ in range(SLOTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ledger = sim_ledger(url)
    facts = task_facts(url, key, task_ids)
    account = next(t["account"] for t in ledger["tasks"] if t["task_id"] == task_ids[0])
    return figures(ledger, account, facts)


def show(name: str, f: dict[str, float]) -> None:
    print(
        f"  {name:<4} makespan {f['makespan']:7.0f}  ideal {f['ideal']:7.0f}  floor {f['floor']:7.0f}  ratio {f['ratio']:.3f}  "
        f"detection % median {f['det_median']:4.1f} p95 {f['det_p95']:4.1f} max {f['det_max']:4.1f}  "
        f"task queries/task {f['queries_per_task']:4.2f}  lists {f['lists']:4.0f}  all queries/task {f['all_per_task']:5.2f}  quota {f['quota_pct']:4.1f} %"
    )


def summary(name: str, runs: list[dict[str, float]]) -> None:
    keys = ("ratio", "det_median", "det_p95", "det_max", "queries_per_task", "all_per_task", "quota_pct")
    cells = "  ".join(f"{k} {min(r[k] for r in runs):.3f}/{statistics.median(r[k] for r in runs):.3f}" for k in keys)
    print(f"  {name:<4} min/median of {len(runs)}: {cells}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shots", default="50", help="comma-separated shot counts (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--time-scale", type=float, default=0.02)
    parser.add_argument("--generation", default="60:300", help="provider seconds LO:HI, uniform (default: %(default)s)")
    parser.add_argument("--no-sdk", action="store_true")
    args = parser.parse_args()
    scaled_sdk_sleep(args.time_scale)
    print(f"5 slots, generation {args.generation} provider s, time scale {args.time_scale}; provider seconds; {GOALS}")
    for shots in (int(n) for n in args.shots.split(",")):
        results: dict[str, list[dict[str, float]]] = {"r2v": [], "sdk": []}
        for run in range(args.runs):
            process, url = start_simulator(args.time_scale, args.generation, seed=7 + run)
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    started = time.monotonic()
                    r2v, prompts = run_r2v(url, Path(tmp), shots, args.time_scale, run)
                    results["r2v"].append(r2v)
                    if not args.no_sdk:
                        results["sdk"].append(run_sdk(url, prompts, "sdk-bench-key"))
                print(f"{shots} shots, run {run + 1} (wall {time.monotonic() - started:.0f} s)")
                for name, runs in results.items():
                    if runs:
                        show(name, runs[-1])
            finally:
                process.terminate()
                process.wait(timeout=10)
        print(f"{shots} shots")
        for name, runs in results.items():
            if runs:
                summary(name, runs)
        if results["sdk"]:
            below = sum(r["ratio"] < s["ratio"] for r, s in zip(results["r2v"], results["sdk"]))
            print(f"  r2v's ratio below the SDK's in {below} of {len(results['sdk'])} runs")


if __name__ == "__main__":
    os.environ.pop("DASHSCOPE_API_KEY", None)
    main()
