"""An episode's cut as editing software reads it: an OpenTimelineIO timeline, and
FCP 7 XML and a CMX 3600 EDL written from it by OTIO's adapters.

The main video track holds the picked take of each shot, in order, each clip
named by its shot id. The other takes ride along two ways, since no interchange
format has a standard slot for alternates: each main clip's metadata lists them
(``r2v.alternates``), and disabled tracks named "alternates N" hold them at
their shot's place (trimmed to it), so an editor can switch one in by enabling
the track. The EDL carries the main track only (CMX 3600 has one video track).
Media references are relative to the timeline file, so the folder can move.
"""

from __future__ import annotations

import functools
import importlib
import os
from pathlib import Path
from typing import Any, Callable
from xml.etree import ElementTree

import opentimelineio as otio

from .timeline_parts import Clip, Slot, TimelineError

TIMELINE_FORMATS = {"otio_json": ".otio", "fcp_xml": ".xml", "cmx_3600": ".edl"}  # adapter → file ending
# The package holding each adapter that OTIO does not carry itself. Its write
# function is found from the package's own plugin manifest, not through OTIO's
# active manifest: finding that one scans every installed distribution's entry
# points, which costs more than writing a cut's three files.
ADAPTER_PACKAGES = {"fcp_xml": "otio_fcp_adapter", "cmx_3600": "otio_cmx3600_adapter"}
METADATA_KEY = "r2v"


def build_timeline(name: str, slots: list[Slot], folder: Path, metadata: dict[str, Any] | None = None) -> otio.schema.Timeline:
    """The timeline, its media referenced relative to ``folder`` (where it is written)."""
    rate = slots[0].picked.rate if slots else 30.0
    timeline = otio.schema.Timeline(name=name)
    timeline.global_start_time = otio.opentime.RationalTime(0, rate)
    if metadata:
        timeline.metadata[METADATA_KEY] = metadata
    main = otio.schema.Track(name="picked takes", kind=otio.schema.TrackKind.Video)
    for slot in slots:
        clip = _clip(slot.picked, folder)
        clip.metadata[METADATA_KEY]["alternates"] = [
            {"name": alt.name, "file": _relative(alt.path, folder), "frames": alt.frames, **alt.metadata} for alt in slot.alternates
        ]
        main.append(clip)
    timeline.tracks.append(main)
    for depth in range(max((len(s.alternates) for s in slots), default=0)):
        track = otio.schema.Track(name=f"alternates {depth + 1}", kind=otio.schema.TrackKind.Video)
        track.enabled = False  # present for the editor to switch in; never plays by default
        for slot in slots:
            length = _length(slot.picked)
            used = otio.opentime.RationalTime(0, rate)
            if depth < len(slot.alternates):
                alt = slot.alternates[depth]
                used = min(_length(alt), length.rescaled_to(alt.rate))  # trimmed to its shot's place
                track.append(_clip(alt, folder, used))
            rest = (length - used).rescaled_to(rate)
            if rest.value > 0:
                track.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate), rest)))
        timeline.tracks.append(track)
    return timeline


def cut_texts(name: str, slots: list[Slot], folder: Path, metadata: dict[str, Any], stem: Path) -> list[tuple[Path, str]]:
    """A cut's timeline built (``build_timeline``) and its files' texts (``timeline_texts``):
    what ``r2v assemble`` asks of its helper process while it joins the videos."""
    return timeline_texts(build_timeline(name, slots, folder, metadata), stem)


def timeline_texts(timeline: otio.schema.Timeline, stem: Path) -> list[tuple[Path, str]]:
    """The timeline as ``<stem>.otio``, ``.xml`` (FCP 7) and ``.edl`` (CMX 3600, the main
    track alone): each file's path and text. Writes nothing: the caller writes them
    once the cut they describe is in place."""
    texts = []
    for adapter, ending in TIMELINE_FORMATS.items():
        path = stem.with_name(stem.name + ending)
        source = _main_only(timeline) if adapter == "cmx_3600" else timeline
        try:
            text = _writer(adapter)(source)
        except (otio.exceptions.OTIOError, ValueError, TypeError, ImportError) as error:
            raise TimelineError(f"{path.name}: {error}") from None
        if adapter == "fcp_xml":
            text = _disable_upper_tracks(text)
        texts.append((path, text))
    return texts


@functools.cache
def _writer(adapter: str) -> Callable[[otio.schema.Timeline], str]:
    """The adapter's write_to_string, loaded as OTIO's plugin system loads it; ImportError when absent."""
    package = ADAPTER_PACKAGES.get(adapter)
    if package is None:  # one of OTIO's own
        return importlib.import_module(f"opentimelineio.adapters.{adapter}").write_to_string  # type: ignore[no-any-return]
    manifest = Path(importlib.import_module(package).__file__ or "").parent / "plugin_manifest.json"
    try:
        plugin = otio.plugins.manifest.manifest_from_file(str(manifest)).from_name(adapter)
    except (OSError, otio.exceptions.OTIOError) as error:
        raise ImportError(f"the {adapter} adapter's plugin manifest: {error}") from None
    return plugin.module().write_to_string  # type: ignore[no-any-return]


def _clip(take: Clip, folder: Path, duration: otio.opentime.RationalTime | None = None) -> otio.schema.Clip:
    """A take at its own rate: its frames, whole unless ``duration`` trims it."""
    available = _range(0, take.frames, take.rate)
    reference = otio.schema.ExternalReference(target_url=_relative(take.path, folder), available_range=available)
    used = otio.opentime.TimeRange(otio.opentime.RationalTime(0, take.rate), duration if duration is not None else _length(take))
    clip = otio.schema.Clip(name=take.name, media_reference=reference, source_range=used)
    clip.metadata[METADATA_KEY] = dict(take.metadata)
    return clip


def _length(take: Clip) -> otio.opentime.RationalTime:
    return otio.opentime.RationalTime(take.frames, take.rate)


def _range(start: int, frames: int, rate: float) -> otio.opentime.TimeRange:
    return otio.opentime.TimeRange(otio.opentime.RationalTime(start, rate), otio.opentime.RationalTime(frames, rate))


def _main_only(timeline: otio.schema.Timeline) -> otio.schema.Timeline:
    copy = timeline.deepcopy()
    while len(copy.tracks) > 1:
        del copy.tracks[-1]
    return copy


def _disable_upper_tracks(text: str) -> str:
    """The adapter drops a track's enabled flag; in FCP a higher track covers a lower
    one, so the alternates' tracks are marked off by hand (<enabled>FALSE</enabled>)."""
    root = ElementTree.fromstring(text)
    for sequence in root.iter("sequence"):
        for track in sequence.findall("./media/video/track")[1:]:
            flag = ElementTree.Element("enabled")
            flag.text = "FALSE"
            track.insert(0, flag)
    ElementTree.indent(root, space="    ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n"


def _relative(path: Path, folder: Path) -> str:
    """A POSIX path relative to the timeline's folder (what the formats' readers resolve)."""
    return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()
