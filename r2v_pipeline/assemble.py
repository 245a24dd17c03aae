"""``r2v assemble``: an episode's videos joined, in manifest order, into one MP4.

Each shot gives its first take, or the one its manifest entry names with
``pick: N``. A video counts only when it is the current version of its shot (its
sidecar's fingerprint is the plan's): a cut never mixes in a shot from before an
edit. When any is missing or stale, nothing is written and the message lists
them with their paths.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .manifest.load import display_name
from .media.concat import Concatenated, ConcatError, concatenate
from .media.probe import MediaInfo, probe_file
from .plan.planner import Plan, PlannedShot
from .run.actions import Stores
from .run.store import recorded_fingerprint, sidecar_path, write_json

EXIT_OK, EXIT_NOT_READY, EXIT_INVALID = 0, 1, 2


@dataclass(frozen=True)
class Part:
    """One shot of a cut: its chosen take's video, or why it cannot go in."""

    shot: PlannedShot
    info: MediaInfo | None = None  # the video, when present and current
    problem: str | None = None

    @property
    def label(self) -> str:
        return f"{self.shot.shot}#take{self.shot.take}" if self.shot.take is not None else self.shot.shot


@dataclass(frozen=True)
class Cut:
    series: str
    episode: str
    manifest: str
    output: Path
    parts: tuple[Part, ...]

    @property
    def key(self) -> str:
        return f"{self.series}/{self.episode}"

    @property
    def not_ready(self) -> list[Part]:
        return [p for p in self.parts if p.problem is not None]


@dataclass(frozen=True)
class Assembled:
    cut: Cut
    joined: Concatenated
    info: MediaInfo  # the cut as written

    def summary(self) -> str:
        seconds = self.info.seconds if self.info.seconds is not None else self.joined.seconds
        return f"{self.cut.key}: {display_name(self.cut.output)}, {seconds:.1f} s, {len(self.cut.parts)} shots, {self.joined.describe()}"


def plan_cuts(plan: Plan, output: Path | None = None) -> list[Cut]:
    """One cut per planned episode, its parts checked against the disk; ``output``
    replaces the default ``<output>/<series>/<episode>.mp4`` (one episode only)."""
    picks = {(e.series, e.episode, s.id): s.pick.value if s.pick else 1 for e in plan.episodes for s in e.shots}
    episodes: dict[tuple[str, str], list[PlannedShot]] = {}
    for shot in plan.shots:
        episodes.setdefault((shot.series, shot.episode), []).append(shot)
    cuts = []
    stores = Stores()
    for (series, episode), shots in episodes.items():
        chosen = [s for s in shots if (s.take or 1) == picks.get((series, episode, s.shot), 1)]
        cuts.append(
            Cut(
                series=series,
                episode=episode,
                manifest=shots[0].manifest,
                output=output or shots[0].output.parent.parent / f"{episode}.mp4",  # beside the episode's folder
                parts=tuple(check_shot(s, stores) for s in chosen),
            )
        )
    return cuts


def check_shot(shot: PlannedShot, stores: Stores) -> Part:
    """The shot's video if it is on disk, is a video, and is of this version of the shot.
    A video the store holds for this version is put in place first (an undone edit)."""
    path = shot.output
    where = display_name(path)
    store = stores.of(shot)
    if not store.is_materialised(shot.fingerprint, path) and store.find(shot.fingerprint) is not None:
        try:
            store.materialise(shot.fingerprint, path, {"key": shot.key})
        except OSError as error:
            return Part(shot, problem=f"cannot put the stored video in place at {where}: {error.strerror or error}")
    if not path.is_file():
        return Part(shot, problem=f"missing: expected {where}")
    recorded = recorded_fingerprint(path)
    if recorded is None:
        return Part(shot, problem=f"unknown version: {where} has no readable sidecar {display_name(sidecar_path(path))}")
    if recorded != shot.fingerprint:
        return Part(shot, problem=f"stale: {where} is from an earlier version of the shot")
    try:
        info = probe_file(path)
    except OSError as error:
        return Part(shot, problem=f"unreadable: {where}: {error.strerror or error}")
    if info.kind != "video" or not info.has_video:
        return Part(shot, problem=f"not a video: {where} is {info.describe()}")
    return Part(shot, info)


def assemble(cut: Cut) -> Assembled:
    """Join a ready cut's videos and write its sidecar; raises ConcatError."""
    parts = [p for p in cut.parts if p.info is not None]
    assert len(parts) == len(cut.parts), "assemble() takes a cut whose every shot is ready"
    joined = concatenate([p.shot.output for p in parts], cut.output, [p.label for p in parts])
    try:
        info = probe_file(cut.output)
        write_json(sidecar_path(cut.output), _sidecar(cut, joined, info))
    except OSError as error:
        raise ConcatError(f"writing {cut.output}'s sidecar: {error}") from None
    return Assembled(cut, joined, info)


def _sidecar(cut: Cut, joined: Concatenated, info: MediaInfo) -> dict[str, Any]:
    """What went in, so a cut can be traced to its takes; paths are relative to the cut."""
    folder = cut.output.resolve().parent
    return {
        "r2v_version": __version__,
        "series": cut.series,
        "episode": cut.episode,
        "manifest": cut.manifest,
        "video": {"path": cut.output.name, "bytes": info.bytes, "sha256": info.sha256, "seconds": info.seconds},
        "method": {"video": joined.video, "audio": joined.audio, "reasons": list(joined.reasons)},
        "shots": [
            {
                "shot": p.shot.shot,
                "take": p.shot.take,
                "file": os.path.relpath(p.shot.output.resolve(), folder),
                "sha256": p.info.sha256 if p.info else None,
                "fingerprint": p.shot.fingerprint,
                "seconds": seconds,
            }
            for p, seconds in zip(cut.parts, joined.inputs)
        ],
        "created": time.time(),
    }


# --- the command ----------------------------------------------------------------


def add_command(subparsers: Any) -> None:
    """Register ``assemble`` on the ``r2v`` command's subparsers."""
    from .cli import _plan_arguments  # cli imports this module: import it only when called

    parser = subparsers.add_parser(
        "assemble",
        help="join an episode's videos, in manifest order, into one MP4",
        description="Join each episode's videos (the first take, or the shot's pick: N) in manifest order into "
        "<output>/<series>/<episode>.mp4, copying the streams when the shots share a format and re-encoding "
        "them (H.264 + AAC) when they do not. Exit 1, writing nothing, when a shot's video is missing or stale.",
    )
    _plan_arguments(parser, simulated_view=True)
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="where the cut goes (one episode only; default: <output>/<series>/<episode>.mp4)")
    parser.set_defaults(func=cmd_assemble)


def cmd_assemble(args: argparse.Namespace) -> int:
    from .cli import _load_plan, _print_diagnostics

    plan, diagnostics = _load_plan(args)
    _print_diagnostics(diagnostics)
    if diagnostics.errors:
        return EXIT_INVALID
    cuts = plan_cuts(plan, args.output)
    if not cuts:
        print("r2v: nothing to assemble: the manifests have no shots", file=sys.stderr)
        return EXIT_INVALID
    if args.output is not None and len(cuts) > 1:
        print(f"r2v: -o names one file, but the manifests hold {len(cuts)} episodes; assemble them one at a time", file=sys.stderr)
        return EXIT_INVALID
    if args.output is not None and args.output.is_dir():
        print(f"r2v: -o {args.output} is a folder; name the file to write", file=sys.stderr)
        return EXIT_INVALID
    if args.output is not None and args.output.resolve() in {p.shot.output.resolve() for p in cuts[0].parts}:
        print(f"r2v: -o {args.output} is one of the shots' videos; name another file", file=sys.stderr)
        return EXIT_INVALID
    waiting = [c for c in cuts if c.not_ready]
    if waiting:  # every problem at once, and nothing written
        for cut in waiting:
            print(f"r2v: cannot assemble {cut.key}: {len(cut.not_ready)} of {len(cut.parts)} shots not ready; nothing was written", file=sys.stderr)
            for part in cut.not_ready:
                print(f"  {part.label}: {part.problem}", file=sys.stderr)
        print(f"r2v: run `{_run_command(args)}` first", file=sys.stderr)
        return EXIT_NOT_READY
    for cut in cuts:
        try:
            print(assemble(cut).summary())
        except ConcatError as error:
            print(f"r2v: cannot assemble {cut.key}: {error}", file=sys.stderr)
            return EXIT_NOT_READY
    return EXIT_OK


def _run_command(args: argparse.Namespace) -> str:
    """The ``r2v run`` that makes what is missing, with this command's folders."""
    words = ["r2v", "run"] + (["--simulate"] if args.simulated else [])
    for flag, value in (("--out", args.out), ("--state", args.state)):
        if value is not None:
            words += [flag, str(value)]
    return shlex.join(words + [str(f) for f in args.files])
