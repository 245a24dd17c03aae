"""How long r2v run takes through a pool of 1, 2 and 3 accounts, next to each ideal.

    python bench/accounts_makespan.py [--shots-per-account 20] [--time-scale 0.02] [--generation 60:300]

For each pool size N the simulator runs as its own process, told which key is
which account (R2V_SIM_DASHSCOPE_ACCOUNTS), and r2v runs N × shots-per-account
shots through N accounts named in the manifest. Figures are provider seconds,
from the simulator's own task timestamps (see run_makespan.py, whose helpers
this reuses):

* makespan: first submission to the last task's end;
* ideal: the same tasks, each holding a slot from its submission to its end
  (as run_makespan counts them), in submission order on 5 × N slots with
  nothing lost between one task's end and the next one's start (a greedy list
  schedule);
* ratio: makespan / ideal (the issue asks ≤ 1.1 for 15 slots);
* peak: the most tasks any one account had waiting or running at once (≤ 5).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path

import httpx

from run_makespan import greedy, start_simulator, task_facts, write_manifest

from r2v_pipeline.diagnostics import Diagnostics
from r2v_pipeline.pipeline import RunRequest, execute
from r2v_pipeline.plan.planner import PlanOptions, make_plan
from r2v_pipeline.run.work import RunOptions

NAMES = ("a", "b", "c")


def pooled_manifest(folder: Path, accounts: int, shots: int, time_scale: float) -> Path:
    """run_makespan's manifest, with ``accounts`` accounts named under provider (each
    with the provider's quota per provider second, which the manifest already gives)."""
    path = write_manifest(folder, shots, time_scale, run=0)
    lines = path.read_text().splitlines()
    (at,) = [i for i, line in enumerate(lines) if line.startswith("provider: {quota: ")]
    quota = lines[at][len("provider: {quota: ") : -1]
    pool = ["provider:", "  name: dashscope", f"  quota: {quota}", "  accounts:"]
    pool += [f"    - {{name: {name}, key_env: BENCH_KEY_{name.upper()}}}" for name in NAMES[:accounts]]
    path.write_text("\n".join(lines[:at] + pool + lines[at + 1 :]) + "\n")
    return path


def bench(accounts: int, shots_per_account: int, time_scale: float, generation: str) -> dict[str, float]:
    keys = {name: f"bench-key-{name}" for name in NAMES[:accounts]}
    os.environ["R2V_SIM_DASHSCOPE_ACCOUNTS"] = ";".join(f"{name}={key}" for name, key in keys.items())
    for name, key in keys.items():
        os.environ[f"BENCH_KEY_{name.upper()}"] = key
    process, url = start_simulator(time_scale, generation, seed=7)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            manifest = pooled_manifest(folder, accounts, shots_per_account * accounts, time_scale)
            diagnostics = Diagnostics()
            plan = make_plan([manifest], PlanOptions(output_dir=folder / "out", state_dir=folder / "state"), diagnostics)
            assert not diagnostics.errors, diagnostics.errors
            started = time.monotonic()
            code = execute(plan, RunRequest(options=RunOptions(seed=1), attach=url, log_format="plain"), stream=io.StringIO())
            wall = time.monotonic() - started
            assert code == 0, code
            report = json.loads((folder / "out" / "report.json").read_text())
            facts = []
            for name, key in keys.items():  # each account's tasks are asked about with its own key
                facts += task_facts(url, key, [s["task_id"] for s in report["shots"] if s["account"] == name])
            health = httpx.get(url + "/_sim/health", trust_env=False).json()
    finally:
        process.terminate()
        process.wait(timeout=10)
    facts.sort(key=lambda f: f["submitted"])
    makespan = max(f["ended"] for f in facts) - facts[0]["submitted"]
    ideal = greedy([f["ended"] - f["submitted"] for f in facts], slots=5 * accounts)
    return {
        "tasks": len(facts),
        "makespan_s": makespan,
        "ideal_s": ideal,
        "ratio": makespan / ideal,
        "peak": max(health["peak_in_flight_by_account"].values()),
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shots-per-account", type=int, default=20)
    parser.add_argument("--time-scale", type=float, default=0.02)
    parser.add_argument("--generation", default="60:300", help="provider seconds LO:HI (default: %(default)s)")
    parser.add_argument("--accounts", default="1,2,3", help="pool sizes to run (default: %(default)s)")
    args = parser.parse_args()
    print(f"{args.shots_per_account} shots per account, 5 slots each, generation {args.generation} provider s, time scale {args.time_scale}")
    for accounts in (int(n) for n in args.accounts.split(",")):
        f = bench(accounts, args.shots_per_account, args.time_scale, args.generation)
        print(
            f"{accounts} account(s), {5 * accounts:>2} slots  {f['tasks']:>4.0f} tasks  makespan {f['makespan_s']:8.1f} s  "
            f"ideal {f['ideal_s']:8.1f} s  ratio {f['ratio']:.3f}  peak per account {f['peak']:.0f}  wall {f['wall_s']:.1f} s"
        )


if __name__ == "__main__":
    for variable in ("DASHSCOPE_API_KEY", "R2V_SIM_DASHSCOPE_KEYS"):
        os.environ.pop(variable, None)
    main()
