"""``r2v assemble`` of an episode whose shots share one format, next to FFmpeg's concat demuxer.

    python bench/assemble.py [--shots N] [--seconds S] [--repeat R] [--pyav]

Makes an episode of N shots (default 20) of S seconds (default 5) of 1280x720
H.264 + AAC at 30 fps, each with the sidecar ``r2v run`` writes, so every video
is current and they can be joined by copying packets; the first shot has two
takes. Then, R times (default 3), in pairs so that machine load falls on both
sides alike:

- ``r2v assemble`` in a fresh process (what a user waits for: start-up, plan,
  the join, the cut's sidecar and timelines), its videos' packet facts kept from
  an untimed run before (a cut made again after a pick: the bench's own cache
  folder), and again with that cache off (videos never cut before: each read
  once, its check keeping the packets the join copies). Before each, the first
  shot's pick changes in the episode's selects file, as ``r2v review`` writes
  it: each timed run is a real cut of a changed episode, never one that a
  "nothing changed" shortcut (a plan kept from the run before) could answer;
- ``ffmpeg -f concat -c copy`` of the cut's files. When FFmpeg is not installed
  the bench says so and measures PyAV's own remux (packets re-timed and copied, in
  a fresh process) instead.

Prints min and median of each, their ratios, and the goal (issue 12): ``r2v
assemble`` <= 2x the concat demuxer. Also prints the join alone, in this process
(``concatenate``), against the same reference, and each side's processor time
(user + system), which a busy shared machine disturbs less than the wall clock.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from r2v_pipeline.diagnostics import Diagnostics
from r2v_pipeline.media import synth
from r2v_pipeline.manifest.selects import SUFFIX as SELECTS_SUFFIX
from r2v_pipeline.media.concat import concatenate
from r2v_pipeline.plan.planner import PlanOptions, make_plan

GOAL = 2.0  # r2v assemble over FFmpeg's concat demuxer
WIDTH, HEIGHT, FPS = 1280, 720, 30
COLORS = [(40, 70, 120), (120, 60, 40), (50, 110, 60)]

# PyAV's own remux, for a machine without FFmpeg: each input's packets re-timed to
# follow the last and muxed into one MP4, nothing decoded.
REMUX = """
import sys, av
out_path, inputs = sys.argv[1], sys.argv[2:]
with av.open(out_path, "w", format="mp4") as out:
    with av.open(inputs[0]) as first:
        streams = [out.add_stream_from_template(s) for s in (first.streams.video[0], first.streams.audio[0])]
    start, last = [0, 0], [None, None]  # per stream: where this input begins, the last dts written
    for path in inputs:
        with av.open(path) as source:
            shift, ends = [None, None], [0, 0]
            for packet in source.demux(source.streams.video[0], source.streams.audio[0]):
                if packet.dts is None:
                    continue
                i = 0 if packet.stream.type == "video" else 1
                if shift[i] is None:
                    shift[i] = start[i] - packet.pts
                ends[i] = max(ends[i], packet.pts + (packet.duration or 0) + shift[i])
                packet.pts += shift[i]
                packet.dts += shift[i]
                if last[i] is not None and packet.dts <= last[i]:
                    packet.dts = last[i] + 1
                    packet.pts = max(packet.pts, packet.dts)
                last[i] = packet.dts
                packet.stream = streams[i]
                out.mux(packet)
            start = ends
"""


def make_episode(folder: Path, shots: int, seconds: float) -> tuple[Path, list[Path]]:
    (folder / "media").mkdir()
    (folder / "media" / "mia.png").write_bytes(synth.image_bytes(256, 256, "png"))
    (folder / "series.yaml").write_text(
        "series: bench\n"
        "defaults: {model: wan2.7-r2v, resolution: 720P, ratio: '16:9', duration: 5, prompt_extend: false}\n"
        "cast: {mia: {image: media/mia.png}}\n"
        "output: {dir: out, state: state}\n"
    )
    lines = ["extends: series.yaml", "episode: ep1", "shots:"]
    lines += [f"  - {{id: shot-{i:02d}, prompt: '{{{{ mia }}}} walks, take {i}'{', takes: 2' if i == 0 else ''}}}" for i in range(shots)]
    episode = folder / "ep1.yaml"
    episode.write_text("\n".join(lines) + "\n")
    diagnostics = Diagnostics()
    plan = make_plan([episode], PlanOptions(), diagnostics)
    if diagnostics.errors:
        sys.exit(f"the bench's manifest is invalid: {diagnostics.errors}")
    sources = []
    for n, color in enumerate(COLORS):  # a few distinct pictures, one encoder setting: copyable
        sources.append(folder / f"source-{n}.mp4")
        synth.write_video(sources[-1], WIDTH, HEIGHT, seconds, fps=FPS, color=color)
    videos = []
    for i, shot in enumerate(plan.shots):
        shot.output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sources[i % len(sources)], shot.output)
        shot.output.with_suffix(".json").write_text(json.dumps({"fingerprint": shot.fingerprint, "key": shot.key}))
        if (shot.take or 1) == 1:
            videos.append(shot.output)  # the cut as first picked; the reference joins these
    return episode, videos


def pick(episode: Path, take: int) -> None:
    """The first shot's take for the cut, in the episode's selects file (as r2v review writes it)."""
    episode.with_suffix(SELECTS_SUFFIX).write_text(f"shots:\n  shot-00:\n    pick: {take}\n")


def wall(command: list[str], cwd: Path, env: dict[str, str] | None = None, cpu: list[float] | None = None) -> float:
    """Seconds the command took; its processor seconds (user + system) added to ``cpu``:
    on a shared machine they move less with the load than the wall clock does."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:4])} … failed ({done.returncode}): {done.stderr[-2000:] or done.stdout[-2000:]}")
    if cpu is not None:
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return took


def figures(times: list[float]) -> str:
    return f"min {min(times):.3f} s, median {statistics.median(times):.3f} s"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shots", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pyav", action="store_true", help="measure against PyAV's own remux even where FFmpeg is installed")
    args = parser.parse_args()
    # Byte-compiled first, as an installed r2v is: with PYTHONDONTWRITEBYTECODE set every
    # start would compile the package from source (see startup.py).
    compileall.compile_dir(Path(__file__).resolve().parent.parent / "r2v_pipeline", quiet=1)
    ffmpeg = None if args.pyav else shutil.which("ffmpeg")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        episode, videos = make_episode(folder, args.shots, args.seconds)
        listing = folder / "concat.txt"
        listing.write_text("".join(f"file '{v}'\n" for v in videos))
        if ffmpeg:
            reference_name = "ffmpeg concat demuxer (-c copy)"
            reference = [ffmpeg, "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(folder / "ffmpeg.mp4")]
        else:
            print("measuring against PyAV's own remux" + ("" if args.pyav else " (ffmpeg is not installed)"))
            reference_name = "PyAV remux (fresh process)"
            reference = [sys.executable, "-c", REMUX, str(folder / "pyav.mp4"), *map(str, videos)]
        r2v = [sys.executable, "-m", "r2v_pipeline", "assemble", episode.name]
        cut = folder / "out" / "bench" / "ep1.mp4"
        warm = {**os.environ, "R2V_CACHE_DIR": str(folder / "cache")}
        cold = {**os.environ, "R2V_CACHE_DIR": "off"}
        wall(r2v, folder, warm)  # untimed: fills the bench's own cache
        ours, new, theirs, joins = [], [], [], []
        cpu: dict[str, list[float]] = {"ours": [], "new": [], "theirs": []}
        for n in range(args.repeat):
            pick(episode, 2 - n % 2)  # the pick changes before every cut: 2, 1, 2, …
            ours.append(wall(r2v, folder, warm, cpu["ours"]))
            pick(episode, 1 + n % 2)
            new.append(wall(r2v, folder, cold, cpu["new"]))
            theirs.append(wall(reference, folder, cpu=cpu["theirs"]))
            start = time.perf_counter()
            joined = concatenate(videos, folder / "joined.mp4")
            joins.append(time.perf_counter() - start)
        sidecar = json.loads(cut.with_suffix(".json").read_text())
        method = sidecar["method"]
        if (joined.video, joined.audio) != ("copy", "copy") or (method["video"], method["audio"]) != ("copy", "copy"):
            sys.exit(f"the shots were not stream-copied: {joined.describe()}, the cut's sidecar says {method}")
        if sidecar["shots"][0]["take"] != 1 + (args.repeat - 1) % 2:
            sys.exit(f"the last cut did not follow the last pick: its first shot is {sidecar['shots'][0]}")
    print(f"{args.shots} shots of {args.seconds:g} s, {WIDTH}x{HEIGHT} {FPS} fps H.264 + AAC, stream copy; {args.repeat} paired runs")
    print(f"  r2v assemble (fresh process, videos seen before): {figures(ours)}")
    print(f"  r2v assemble (fresh process, videos new): {figures(new)}")
    print(f"  {reference_name}: {figures(theirs)}")
    print(f"  the join alone, in process (concatenate): {figures(joins)}; {min(joins) / min(theirs):.2f}x the reference at min")
    for name, times in (("videos seen before", ours), ("videos new", new)):
        ratio_min, ratio_median = min(times) / min(theirs), statistics.median(times) / statistics.median(theirs)
        verdict = "meets" if ratio_min <= GOAL else "misses"
        print(f"r2v assemble ({name}) / reference: {ratio_min:.2f}x at min, {ratio_median:.2f}x at median (goal <= {GOAL:g}x: {verdict})")
    for name, key in (("videos seen before", "ours"), ("videos new", "new")):
        print(f"  processor time (user + system), {name}: {figures(cpu[key])}; {min(cpu[key]) / min(cpu['theirs']):.2f}x the reference's ({figures(cpu['theirs'])}) at min")


if __name__ == "__main__":
    main()
