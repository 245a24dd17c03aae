"""Validate + plan a 10,000-shot episode, next to merely yaml.safe_load-ing it.

    python bench/plan_scale.py [--shots N] [--repeat R]

Target: validate+plan <= 3x the safe_load time. Prints the best of R runs of each.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from r2v_pipeline.diagnostics import Diagnostics
from r2v_pipeline.media import synth
from r2v_pipeline.plan import prompt
from r2v_pipeline.plan.planner import PlanOptions, make_plan

MODELS = ["wan2.7-r2v", "wan2.6-r2v", "wan2.6-r2v-flash"]


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


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shots", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--statements", action="store_true", help="give every prompt a {% if %}: the worst case, no simple templates"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        episode = write_manifests(Path(tmp), args.shots, args.statements)
        text = episode.read_text()

        def plan() -> None:
            prompt._CACHE.clear()  # every run compiles its templates afresh
            prompt._SHAPES.clear()
            diagnostics = Diagnostics()
            result = make_plan([episode], PlanOptions(), diagnostics)
            assert not diagnostics.errors, diagnostics.errors[:3]
            assert len(result.shots) == args.shots

        load = best_of(args.repeat, lambda: yaml.safe_load(text))
        c_load = best_of(args.repeat, lambda: yaml.load(text, Loader=yaml.CSafeLoader)) if hasattr(yaml, "CSafeLoader") else None
        planned = best_of(args.repeat, plan)
    kind = "every prompt with a Jinja statement" if args.statements else "prompts of text and {{ names }}"
    print(f"shots:                 {args.shots} ({len(text) / 1e6:.1f} MB of YAML; {kind})")
    print(f"yaml.safe_load:        {load:.3f} s")
    if c_load is not None:
        print(f"yaml CSafeLoader load: {c_load:.3f} s (for reference)")
    print(f"validate + plan:       {planned:.3f} s")
    print(f"ratio:                 {planned / load:.2f}x safe_load (target <= 3x)")


if __name__ == "__main__":
    main()
