"""The settings one request sends: the shot's own, then the defaults, fitted to its model.

A shot may say its frame as ``size`` or as ``resolution`` + ``ratio``; each
model gets the form it takes. A default the model does not take is left out
(a series may mix models); the same setting on the shot itself is an error.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from ..catalog import setting_names
from ..catalog.formats import size_of, tier_of
from ..catalog.spec import ModelSpec
from ..diagnostics import Diagnostics
from ..manifest.model import SET_ELSEWHERE, Shot, Value

# Chosen by their own rules: the frame (size, or resolution + ratio) and the seed (one per take).
CHOSEN_APART = ("size", "resolution", "ratio", "seed")
# Sent as the shot, else its defaults, say, where the model takes them.
PLAIN_SETTINGS = tuple(name for name in setting_names() if name not in (*SET_ELSEWHERE, *CHOSEN_APART))
SEED_MAX = 2_147_483_647


@dataclass(frozen=True)
class Chosen:
    """Settings to send, each with the manifest value it came from."""

    values: dict[str, Value[Any]]
    resolution: str  # the tier the video is made at (for prices), default included
    audio: bool  # whether the video has sound, default included
    implied: frozenset[str] = frozenset()  # sent because the model's table says so, not the manifest

    @property
    def manifest_set(self) -> frozenset[str]:
        return frozenset(self.values) - self.implied

    def effective(self, spec: ModelSpec, name: str) -> Any:
        """The value the provider uses: the one sent, else its default."""
        value = self.values.get(name)
        return value.value if value is not None else spec.defaults.get(name)


def choose_settings(
    spec: ModelSpec,
    shot: Shot,
    defaults: dict[str, Value[Any]],
    has_first_frame: bool,
    diagnostics: Diagnostics,
) -> Chosen:
    values: dict[str, Value[Any]] = {}
    resolution, ratio = _frame(shot, defaults, diagnostics)
    if "size" in spec.settings:
        if resolution or ratio:
            default_tier, default_ratio = tier_of(str(spec.defaults["size"])) or ("1080P", "16:9")
            size = size_of(resolution.value if resolution else default_tier, ratio.value if ratio else default_ratio)
            values["size"] = Value(size, (ratio or resolution).pos)  # type: ignore[union-attr]
    else:
        if resolution:
            values["resolution"] = resolution
        if ratio and not has_first_frame:
            values["ratio"] = ratio
        elif ratio and ("ratio" in shot.settings or "size" in shot.settings):
            diagnostics.warning(ratio.pos, "ratio is not sent; with a first frame, the frame's shape decides")
    for name in PLAIN_SETTINGS:
        value = shot.settings.get(name) or defaults.get(name)
        if value is None:
            continue
        if name in spec.settings:
            values[name] = value
        elif name in shot.settings:
            takes = ", ".join(sorted(n for n in spec.settings if n not in ("prompt", "webhook_url")))
            diagnostics.error(value.pos, f"{spec.model} has no {name} setting (it takes {takes})")
    implied = frozenset(name for name in spec.explicit if name not in values)
    for name in implied:  # the provider's default is not settled: say what is meant
        values[name] = Value(spec.explicit[name], shot.pos)
    tier = resolution.value if resolution else _default_tier(spec)
    audio = values["audio"].value if "audio" in values else spec.defaults.get("audio", True)
    return Chosen(values, tier, audio is not False, implied)


def _frame(shot: Shot, defaults: dict[str, Value[Any]], diagnostics: Diagnostics) -> tuple[Value[str] | None, Value[str] | None]:
    """(resolution, ratio), the shot's choices over the defaults'."""
    resolution = ratio = None
    for level in (defaults, shot.settings):
        size, res, rat = level.get("size"), level.get("resolution"), level.get("ratio")
        if size is not None:
            tier = tier_of(size.value)
            if tier is None:
                continue  # the schema already refused it
            if (res and res.value != tier[0]) or (rat and rat.value != tier[1]):
                diagnostics.error(size.pos, f"size {size.value} is {tier[0]} {tier[1]}, which its resolution/ratio contradict")
            resolution, ratio = Value(tier[0], size.pos), Value(tier[1], size.pos)
        resolution, ratio = res or resolution, rat or ratio
    return resolution, ratio


def _default_tier(spec: ModelSpec) -> str:
    if "size" in spec.defaults:
        tier = tier_of(str(spec.defaults["size"]))
        return tier[0] if tier else "1080P"
    return str(spec.defaults.get("resolution", "1080P"))


def take_seeds(shot: Shot, defaults: dict[str, Value[Any]], series: str, episode: str, diagnostics: Diagnostics) -> list[Value[int] | None]:
    """The seed of each take; None lets the provider pick."""
    seed = shot.settings.get("seed") or defaults.get("seed")
    takes = shot.takes
    count = 1 if takes is None else len(takes.value) if isinstance(takes.value, list) else takes.value
    if shot.pick is not None and shot.pick.value > count:
        diagnostics.error(shot.pick.pos, f"pick {shot.pick.value}: the shot has {count} take{'s' if count > 1 else ''}")
    if takes is None:
        return [seed]
    if isinstance(takes.value, list):
        if "seed" in shot.settings:
            diagnostics.error(shot.settings["seed"].pos, "give seed or a list of seeds in takes, not both")
        return [Value(s, takes.pos) for s in takes.value]
    if seed is not None:
        return [Value((seed.value + k) % (SEED_MAX + 1), seed.pos) for k in range(takes.value)]
    return [Value(derived_seed(series, episode, shot.id, k), takes.pos) for k in range(takes.value)]


def derived_seed(series: str, episode: str, shot: str, take: int) -> int:
    """A stable seed for a take whose seed the manifest leaves open."""
    digest = hashlib.sha256(f"{series}/{episode}/{shot}/{take}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (SEED_MAX + 1)
