"""What a cut's timeline is made of, without OpenTimelineIO: the takes, each shot's
slot, and the error making one raises. ``r2v assemble`` gathers these while it
checks the videos and hands them to ``timeline`` (in a helper process), which
makes the files' texts; the command writes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TIMELINES = "r2v_pipeline.media.timeline"  # the module that writes a cut's timelines from these (a helper process imports it)


class TimelineError(Exception):
    """An adapter could not write the cut."""


@dataclass(frozen=True)
class Clip:
    """One take's video: where it is, how long, and what to say of it."""

    name: str
    path: Path
    frames: int
    rate: float
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Slot:
    """One shot of the cut: the picked take and the others."""

    picked: Clip
    alternates: tuple[Clip, ...] = ()

