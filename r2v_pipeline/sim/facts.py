"""What a remote URL holds, told to the simulator (it has no network): the JSON form
``POST /_sim/facts``, ``SimConfig.remote_media`` and ``r2v sim --media-facts`` take."""

from __future__ import annotations

import math
from typing import Any, Mapping

from ..catalog.media_info import MediaInfo

MEDIA_KINDS = ("image", "video", "audio")


def read_declarations(declared: Any) -> dict[str, MediaInfo]:
    """``{URL: facts, …}`` read whole: ValueError names the first URL or fact that is wrong,
    and then nothing is taken."""
    if not isinstance(declared, Mapping):
        raise ValueError("declare media as an object of URL -> facts")
    found = {}
    for url, facts in declared.items():
        if not isinstance(url, str) or url.partition(":")[0].lower() not in ("http", "https"):
            raise ValueError(f"{str(url)[:60]!r}: only http(s) URLs are declared (data: URIs carry their bytes, oss:// keys are uploads)")
        try:
            found[url] = facts_from_json(facts)
        except ValueError as err:
            raise ValueError(f"{url[:80]}: {err}") from None
    return found


def facts_json(info: MediaInfo) -> dict[str, Any]:
    """A file's facts as ``POST /_sim/facts`` takes them."""
    facts: dict[str, Any] = {"kind": info.kind, "format": info.format, "bytes": info.bytes, "sha256": info.sha256}
    for name in ("width", "height", "seconds"):
        if getattr(info, name) is not None:
            facts[name] = getattr(info, name)
    if info.kind in ("video", "audio"):
        facts["audio"] = info.has_audio
    return facts


def facts_from_json(facts: Any) -> MediaInfo:
    """The facts of one URL: kind (image, video, audio, or null for bytes that are no
    media), format, bytes; width, height, seconds, audio (a video's sound) and sha256
    where known. ValueError names what is wrong."""
    if not isinstance(facts, Mapping):
        raise ValueError(f"facts must be an object, not {facts!r}")
    kind = facts.get("kind")
    if kind is not None and kind not in MEDIA_KINDS:
        raise ValueError(f"kind must be one of {', '.join(MEDIA_KINDS)} or null, not {kind!r}")
    fmt = facts.get("format")
    if not isinstance(fmt, str) or not fmt:
        raise ValueError("format must be a name such as png or mp4")
    width, height = _count(facts, "width"), _count(facts, "height")
    size, length = _count(facts, "bytes", minimum=0), facts.get("seconds")
    if size is None:
        raise ValueError("bytes is required")
    if length is not None and not (isinstance(length, (int, float)) and not isinstance(length, bool) and math.isfinite(length) and length >= 0):
        raise ValueError(f"seconds must be a number of 0 or more, not {length!r}")
    sha = facts.get("sha256", "")
    return MediaInfo(
        kind=kind, format=fmt, bytes=size, sha256=sha if isinstance(sha, str) else "",
        width=width, height=height, seconds=None if length is None else float(length),
        has_video=kind in ("image", "video"), has_audio=bool(facts.get("audio", kind == "audio")),
        problem=None if kind else "bytes that are no image, video or audio (as declared)",
    )  # fmt: skip


def _count(facts: Mapping[str, Any], name: str, minimum: int = 1) -> int | None:
    value = facts.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be a whole number of {minimum} or more, not {value!r}")
    return value
