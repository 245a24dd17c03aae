"""Validate + plan a large episode, next to merely yaml.safe_load-ing it.

    python bench/plan_scale.py                       # the three goals below
    python bench/plan_scale.py --mode plain10k|plain50k|if10k
    python bench/plan_scale.py --shots N [--statements] [--repeat R]
    python bench/plan_scale.py --against REV [--rounds K] [...]

Goals (issue 12): 10k and 50k shots of plain prompts <= 1.5x yaml.safe_load of
the same file, growing linearly (50k takes <= 5x the time of 10k); 10k distinct
templates with a {% if %} <= 3x. The two are timed in pairs, alternating in one
process, so that drifts in machine load fall on both; min and median of R runs.

``--against REV`` compares this checkout with the package as committed at REV
on the same machine in one sitting: K rounds, each running the bench once in a
fresh process per side, in alternating order so that drifts in machine load
fall on both; it prints the best of all runs per side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import yaml

from r2v_pipeline.diagnostics import Diagnostics
from r2v_pipeline.media import synth
from r2v_pipeline.plan import prompt
from r2v_pipeline.plan.planner import PlanOptions, make_plan

MODELS = ["wan2.7-r2v", "wan2.6-r2v", "wan2.6-r2v-flash"]
# Every run probes its media files, as on first sight: no verdicts from a probe cache.
os.environ.setdefault("R2V_CACHE_DIR", "off")


def write_manifests(folder: Path, shots: int, statements: bool = False) -> Path:
    (folder / "media").mkdir()
    for name in ("mia", "leo", "cup"):
        (folder / "media" / f"{name}.png").write_bytes(synth.image_bytes(256, 256, "png"))
    (folder / "media" / "kai.mp4").write_bytes(synth.video_bytes(256, 256, 2.0))
    (folder / "media" / "mia.wav").write_bytes(synth.audio_bytes(1.5, "wav"))
    (folder / "series.yaml").write_text(
        "series: scale\n"
        "defaults: {model: wan2.7-r2v, resolution: 720P, ratio: '16:9', duration: 5, prompt_extend: false}\n"
        "cast:\n"
        "  mia: {image: media/mia.png, voice: media/mia.wav, description: a baker}\n"
        "  leo: {image: media/leo.png}\n"
        "  cup: {image: media/cup.png}\n"
        "  kai: {video: media/kai.mp4}\n"
        "prices: {currency: USD, dashscope: {wan2.7-r2v: {720P: 0.1}, wan2.6-r2v: {720P: 0.1}, "
        "wan2.6-r2v-flash: {720P: {audio: 0.05, silent: 0.03}}}}\n"
    )
    lines = ["extends: series.yaml", "episode: big", "vars: {town: Harwich}", "shots:"]
    for i in range(shots):
        model = MODELS[i % 3]
        lines += [
            f"  - id: shot-{i:05d}",
            f"    model: {model}",
            f"    duration: {2 + i % 9}",
            f"    seed: {i}",
            "    prompt: >-",
            f"      {{{{ mia }}}} hands {{{{ cup }}}} to {{{{ leo }}}} in {{{{ town }}}}, scene {i};",
            f"      {{{{ kai }}}} watches from the door{' quietly' if i % 2 else ''}.",
        ]
        if statements:  # a Jinja statement: the template needs Jinja's compiler
            lines += ["      {% if town != 'Dover' %}It rains.{% endif %}"]
        if i % 5 == 0:
            lines += ["    vars: {town: Dover}"]
    episode = folder / "episode.yaml"
    episode.write_text("\n".join(lines) + "\n")
    return episode


MODES = {"plain10k": (10_000, False), "plain50k": (50_000, False), "if10k": (10_000, True)}
GOALS = {False: 1.5, True: 3.0}  # validate + plan / safe_load, by whether prompts hold a statement
LINEAR_GOAL = 5.0  # 50k shots / 10k shots: linear growth


def clear_template_caches() -> None:
    """Forget compiled templates (their shapes live in prompt.py or, since Jinja loads
    lazily, in sandbox.py: --against compares either)."""
    prompt._CACHE.clear()
    for module in (prompt, sys.modules.get("r2v_pipeline.plan.sandbox")):
        shapes = getattr(module, "_SHAPES", None)
        if shapes is not None:
            shapes.clear()


def best_of(repeat: int, fn, clock=time.perf_counter) -> float:
    return min(timed(repeat, fn, clock))


def timed(repeat: int, fn, clock=time.perf_counter) -> list[float]:
    times = []
    for _ in range(repeat):
        start = clock()
        fn()
        times.append(clock() - start)
    return times


def paired(repeat: int, first, second) -> tuple[list[float], list[float]]:
    """``repeat`` runs of each, alternating which goes first."""
    a: list[float] = []
    b: list[float] = []
    for i in range(repeat):
        for fn, times in ((first, a), (second, b)) if i % 2 == 0 else ((second, b), (first, a)):
            times += timed(1, fn)
    return a, b


def measure(shots: int, repeat: int, statements: bool, cpu: bool = False) -> dict[str, float | None]:
    with tempfile.TemporaryDirectory() as tmp:
        episode = write_manifests(Path(tmp), shots, statements)
        text = episode.read_text()

        def plan() -> None:
            clear_template_caches()  # every run compiles its templates afresh
            diagnostics = Diagnostics()
            result = make_plan([episode], PlanOptions(), diagnostics)
            assert not diagnostics.errors, diagnostics.errors[:3]
            assert len(result.shots) == shots

        loads, plans = paired(repeat, lambda: yaml.safe_load(text), plan)
        c_load = best_of(repeat, lambda: yaml.load(text, Loader=yaml.CSafeLoader)) if hasattr(yaml, "CSafeLoader") else None
        result = {
            "load": min(loads), "c_load": c_load, "plan": min(plans), "yaml_mb": len(text) / 1e6,
            "load_median": statistics.median(loads), "plan_median": statistics.median(plans),
        }  # fmt: skip
        if cpu:  # CPU seconds too: on a shared machine they vary less than wall time
            result["load_cpu"] = best_of(repeat, lambda: yaml.safe_load(text), time.process_time)
            result["plan_cpu"] = best_of(repeat, plan, time.process_time)
    return result


def report(args: argparse.Namespace, result: dict[str, float | None]) -> None:
    load, c_load, planned = result["load"], result["c_load"], result["plan"]
    assert load is not None and planned is not None
    kind = "every prompt with a Jinja statement" if args.statements else "prompts of text and {{ names }}"
    print(f"shots:                 {args.shots} ({result['yaml_mb']:.1f} MB of YAML; {kind})")
    print(f"yaml.safe_load:        min {load:.3f} s, median {result['load_median']:.3f} s")
    if c_load is not None:
        print(f"yaml CSafeLoader load: {c_load:.3f} s (for reference)")
    print(f"validate + plan:       min {planned:.3f} s, median {result['plan_median']:.3f} s")
    goal = GOALS[args.statements]
    ratios = f"{planned / load:.2f}x (min), {result['plan_median'] / result['load_median']:.2f}x (median)"
    print(f"ratio:                 {ratios} safe_load (goal <= {goal}x)")


def goals(args: argparse.Namespace) -> None:
    """Every mode, then how 50k grows over 10k."""
    results = {}
    for mode, (shots, statements) in MODES.items():
        print(f"== {mode}")
        run = argparse.Namespace(**{**vars(args), "shots": shots, "statements": statements})
        results[mode] = measure(shots, args.repeat, statements)
        report(run, results[mode])
    growth = results["plain50k"]["plan"] / results["plain10k"]["plan"]
    load_growth = results["plain50k"]["load"] / results["plain10k"]["load"]
    print(f"== growth: validate + plan 50k / 10k = {growth:.2f} (goal <= {LINEAR_GOAL}); safe_load 50k / 10k = {load_growth:.2f}")


def export(rev: str, folder: Path) -> Path:
    """The package as committed at ``rev``, unpacked under ``folder``."""
    repo = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(repo), "archive", rev, "r2v_pipeline"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return folder


def run_side(args: argparse.Namespace, name: str, root: Path) -> dict[str, float]:
    """One bench run, in a fresh process importing the package under ``root``."""
    command = [sys.executable, __file__, "--json", "--shots", str(args.shots), "--repeat", str(args.repeat)]
    env = {**os.environ, "PYTHONPATH": str(root)}  # after this script's folder, before the installed package
    out = subprocess.run(command + ["--statements"] * args.statements, env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert Path(result.pop("package")).is_relative_to(root), f"{name} ran the wrong package"
    return {k: result[k] for k in ("load", "plan", "load_cpu", "plan_cpu")}


def compare(args: argparse.Namespace) -> None:
    repo = Path(__file__).resolve().parent.parent
    best: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sides = [(f"at {args.against}", export(args.against, Path(tmp))), ("this checkout", repo)]
        for round_ in range(args.rounds):
            for name, root in sides if round_ % 2 == 0 else sides[::-1]:
                result = run_side(args, name, root)
                kept = best.setdefault(name, result)
                best[name] = {k: min(v, kept[k]) for k, v in result.items()}
    kind = "every prompt with a Jinja statement" if args.statements else "prompts of text and {{ names }}"
    print(f"shots: {args.shots} ({kind}); best of {args.rounds} rounds x {args.repeat} runs per side")
    for name, t in best.items():
        print(
            f"{name:>16}: yaml.safe_load {t['load']:.3f} s, validate + plan {t['plan']:.3f} s ({t['plan'] / t['load']:.2f}x)"
            f"; CPU {t['load_cpu']:.3f} s, {t['plan_cpu']:.3f} s"
        )
    before, after = best.values()
    print(f"validate + plan, this checkout / at {args.against}: wall {after['plan'] / before['plan']:.3f}, CPU {after['plan_cpu'] / before['plan_cpu']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=[*MODES, "goals"], help="a goal's episode (default: all, unless --shots is given)")
    parser.add_argument("--shots", type=int)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--statements", action="store_true", help="give every prompt a {%% if %%}: the worst case, no simple templates"
    )
    parser.add_argument("--against", metavar="REV", help="compare with the package as committed at REV")
    parser.add_argument("--rounds", type=int, default=3, help="with --against: runs per side, alternating")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one side of --against
    args = parser.parse_args()
    if args.mode in MODES:
        args.shots, args.statements = MODES[args.mode]
    elif args.shots is None and not args.against and not args.json:
        goals(args)
        return
    args.shots = args.shots or 10_000
    if args.against:
        compare(args)
    elif args.json:
        print(json.dumps({**measure(args.shots, args.repeat, args.statements, cpu=True), "package": prompt.__file__}))
    else:
        report(args, measure(args.shots, args.repeat, args.statements))


if __name__ == "__main__":
    main()
