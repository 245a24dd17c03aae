"""``r2v assemble``: an episode's videos joined, in manifest order, into one MP4.

Each shot gives the take its manifest entry names with ``pick: N``, else the
one picked in review (the episode's selects file), else its first approved or
not rejected take; a shot whose every take was rejected holds the cut back. A video counts only when it is the current version of its shot (its
sidecar's fingerprint is the plan's): a cut never mixes in a shot from before an
edit. When any is missing or stale, nothing is written and the message lists
them with their paths.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .files import write_atomically
from .helper_process import Helper
from .manifest.load import display_name
from .media.clip_cache import ClipCache, default_folder as clip_cache_folder
from .media.concat import Clip as Input, Concatenated, ConcatError, join_clips, read_clip
from .media.probe import MediaInfo, file_sha256, probe_file, probe_written
from .media.timeline_parts import TIMELINES, Clip, Slot, TimelineError
from .plan.planner import Plan, PlannedShot
from .run.store import Stores, recorded_fingerprint, sidecar_path, write_json

# What the cuts of one command keep from checking their videos, so the joins do not
# read them again: packets in memory, and each such file open until its join. Videos
# beyond either are read twice instead.
KEEP_PACKETS_BYTES = 512 << 20  # [guess] an hour of 1080p, a small share of a machine that edits video
KEEP_PACKETS_FILES = 256  # [guess] at most; and a quarter of the open files the process may hold (Linux: 1,024, macOS: 256)


@dataclass(frozen=True)
class Part:
    """One shot of a cut: its chosen take's video, or why it cannot go in."""

    shot: PlannedShot
    clip: Input | None = None  # the video, when present, current and readable: its format and lengths
    sha256: str | None = None  # its content hash
    problem: str | None = None
    alternates: tuple[Part, ...] = ()  # the shot's other takes whose videos are current (and read)

    @property
    def label(self) -> str:
        return _label(self.shot)


def _label(shot: PlannedShot) -> str:
    """How messages name a shot's take: "night-watch#take2"."""
    return f"{shot.shot}#take{shot.take}" if shot.take is not None else shot.shot


@dataclass(frozen=True)
class Cut:
    """One episode's cut: where it goes, and each shot's part."""

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
    """A cut as written: the MP4, how it was joined, and its timelines."""

    cut: Cut
    joined: Concatenated
    info: MediaInfo  # the cut as written
    timelines: tuple[Path, ...] = field(default=())  # the cut for editing software: .otio, FCP 7 .xml, .edl

    def summary(self) -> str:
        seconds = self.info.seconds if self.info.seconds is not None else self.joined.seconds
        timeline = f"; for editors: {', '.join(p.name for p in self.timelines)}" if self.timelines else ""
        return f"{self.cut.key}: {display_name(self.cut.output)}, {seconds:.1f} s, {len(self.cut.parts)} shots, {self.joined.describe()}{timeline}"


def plan_cuts(plan: Plan, output: Path | None = None, keep: Callable[[PlannedShot], bool] | None = None) -> list[Cut]:
    """One cut per planned episode, its parts checked against the disk; ``output``
    replaces the default ``<output>/<series>/<episode>.mp4`` (one episode only).
    ``keep`` picks some shots only (--only): such a cut is ``<episode>.selection.mp4``."""
    episodes: dict[tuple[str, str], list[PlannedShot]] = {}
    for shot in plan.shots:
        if keep is None or keep(shot):
            episodes.setdefault((shot.series, shot.episode), []).append(shot)
    name = "{episode}.mp4" if keep is None else "{episode}.selection.mp4"
    cuts = []
    stores = Stores()
    clips = ClipCache(clip_cache_folder())
    room = Room(KEEP_PACKETS_BYTES, min(KEEP_PACKETS_FILES, _open_files_allowed() // 4))
    for (series, episode), shots in episodes.items():
        chosen = [s for s in shots if s.review.picked or s.review.every_take_rejected and (s.take or 1) == 1]
        others: dict[str, list[Part]] = {}
        for s in shots:
            if s not in chosen and (other := check_shot(s, stores, clips)).clip is not None:
                others.setdefault(s.shot, []).append(other)
        cuts.append(
            Cut(
                series=series,
                episode=episode,
                manifest=shots[0].manifest,
                output=output or shots[0].output.parent.parent / name.format(episode=episode),  # beside the episode's folder
                parts=tuple(replace(check_shot(s, stores, clips, room), alternates=tuple(others.get(s.shot, ()))) for s in chosen),
            )
        )
    return cuts


def _open_files_allowed() -> int:
    """The process's limit on open files (its soft limit), where the system says one."""
    try:
        import resource  # not on Windows
    except ImportError:
        return 512  # Windows' C runtime: 512 open files by default
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return KEEP_PACKETS_FILES * 4 if soft == resource.RLIM_INFINITY else soft


class Room:
    """What checking videos may still keep for the joins: bytes of packets and open files."""

    def __init__(self, size: int, files: int):
        self.size, self.files = size, files

    def take(self, size: int) -> bool:
        if size > self.size or self.files < 1:
            return False
        self.size, self.files = self.size - size, self.files - 1
        return True


def check_shot(shot: PlannedShot, stores: Stores, clips: ClipCache | None = None, room: Room | None = None) -> Part:
    """The shot's video if it is on disk, is a video, and is of this version of the shot.
    A video the store holds for this version is put in place first (an undone edit).
    Its packets are read here, once, unless ``clips`` knows these bytes already; a
    video read here that fits in ``room`` keeps its packets for the join, so it is
    read once in all."""
    path = shot.output
    where = display_name(path)
    if shot.review.every_take_rejected:
        return Part(shot, problem="every take was rejected in review: make another take, or pick one")
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
        sha256 = file_sha256(path)
        clip = clips.get(sha256, path, _label(shot)) if clips is not None else None
        if clip is None:
            clip = read_clip(path, _label(shot), keep=room is not None and room.take(path.stat().st_size))
            if clips is not None:
                clips.put(sha256, clip)
        return Part(shot, clip, sha256)
    except OSError as error:
        return Part(shot, problem=f"unreadable: {where}: {error.strerror or error}")
    except ConcatError:
        pass
    try:  # say what it is instead
        info = probe_file(path)
    except OSError as error:
        return Part(shot, problem=f"unreadable: {where}: {error.strerror or error}")
    if info.kind != "video" or not info.has_video:
        return Part(shot, problem=f"not a video: {where} is {info.describe()}")
    return Part(shot, problem=f"unreadable: {where}: its pictures cannot be read")


def assemble(cut: Cut, helper: Helper | None = None) -> Assembled:
    """Join a ready cut's videos and write its sidecar; raises ConcatError. Its timelines
    are made by ``helper`` (a ``Helper`` of ``TIMELINES``; without one, here) while the
    videos are joined, and written once the cut is."""
    clips = [p.clip for p in cut.parts if p.clip is not None]
    assert len(clips) == len(cut.parts), "assemble() takes a cut whose every shot is ready"
    about = {"series": cut.series, "episode": cut.episode, "manifest": cut.manifest, "cut": cut.output.name, "r2v_version": __version__}
    texts = (helper or Helper(TIMELINES)).call("cut_texts", f"{cut.series} {cut.episode}", _slots(cut), cut.output.parent, about, cut.output.with_suffix(""))
    joined = join_clips(clips, cut.output)
    try:
        info = probe_written(cut.output)  # its packets were all just read: the header says the rest
        timelines = []
        for path, text in texts.result():
            write_atomically(path, text)
            timelines.append(path)
        write_json(sidecar_path(cut.output), _sidecar(cut, joined, info, timelines))
    except (OSError, TimelineError) as error:
        raise ConcatError(f"writing {cut.output}'s sidecar or timelines: {error}") from None
    return Assembled(cut, joined, info, tuple(timelines))


def _slots(cut: Cut) -> list[Slot]:
    """The cut for its timelines: picked takes on the main track, the other takes as
    alternates, clip names the shot ids, each take as long as its reading counted."""
    return [Slot(_clip(p), tuple(_clip(a) for a in p.alternates)) for p in cut.parts]


def _clip(part: Part) -> Clip:
    assert part.clip is not None, "a cut's parts and alternates are read"
    shot, review = part.shot, part.shot.review
    about = {
        "shot": shot.shot,
        "take": shot.take or 1,
        "fingerprint": shot.fingerprint,
        "picked": review.picked,
        "review": review.verdict.value if review.verdict else None,
        "note": review.note or None,
    }
    return Clip(shot.shot, shot.output, part.clip.frames, part.clip.frame_rate, about)


def _sidecar(cut: Cut, joined: Concatenated, info: MediaInfo, timelines: list[Path]) -> dict[str, Any]:
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
                "sha256": p.sha256,
                "fingerprint": p.shot.fingerprint,
                "seconds": seconds,
            }
            for p, seconds in zip(cut.parts, joined.inputs)
        ],
        "timelines": [os.path.relpath(p.resolve(), folder) for p in timelines],
        "created": time.time(),
    }
