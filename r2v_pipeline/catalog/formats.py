"""Output frame sizes by resolution tier and aspect ratio.

wan2.6 takes these as ``size`` strings ("1280*720"); wan2.7 and Freepik take the
tier and the ratio. The pixel sizes are the ones DashScope lists for wan2.6;
the other models are assumed to render the same sizes for the same tier and
ratio (the simulator does).
"""

from __future__ import annotations

RESOLUTIONS = ("720P", "1080P")
RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4")

FRAME_SIZES: dict[tuple[str, str], tuple[int, int]] = {
    ("720P", "16:9"): (1280, 720),
    ("720P", "9:16"): (720, 1280),
    ("720P", "1:1"): (960, 960),
    ("720P", "4:3"): (1088, 832),
    ("720P", "3:4"): (832, 1088),
    ("1080P", "16:9"): (1920, 1080),
    ("1080P", "9:16"): (1080, 1920),
    ("1080P", "1:1"): (1440, 1440),
    ("1080P", "4:3"): (1632, 1248),
    ("1080P", "3:4"): (1248, 1632),
}

SIZES: tuple[str, ...] = tuple(f"{w}*{h}" for (w, h) in FRAME_SIZES.values())

_BY_SIZE = {f"{w}*{h}": key for key, (w, h) in FRAME_SIZES.items()}


def size_of(resolution: str, ratio: str) -> str:
    w, h = FRAME_SIZES[(resolution, ratio)]
    return f"{w}*{h}"


def tier_of(size: str) -> tuple[str, str] | None:
    """(resolution, ratio) of a wan2.6 size string, or None if it is not one."""
    return _BY_SIZE.get(size)


def frame_size(resolution: str, ratio: str) -> tuple[int, int]:
    return FRAME_SIZES[(resolution, ratio)]


def nearest_ratio(width: int, height: int) -> str:
    """The listed ratio closest to a picture's shape (a first frame decides the ratio)."""
    shape = width / height
    return min(RATIOS, key=lambda r: abs(_ratio_value(r) - shape))


def _ratio_value(ratio: str) -> float:
    w, h = ratio.split(":")
    return int(w) / int(h)
