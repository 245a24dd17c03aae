"""What a pass over a video's packets found (``concat.read_clip``), kept by the
file's content hash.

``r2v assemble`` reads every shot's packets before it writes anything, to see
that each is whole and whether the shots can be joined by copying; then the join
reads them again. An episode is cut again and again (a take picked, a shot
remade) over mostly the same videos: their facts are kept, as probe verdicts are
(``probe_cache``: same root, same switch ``R2V_CACHE_DIR=off``, entries keyed by
the code that found them), so only the videos not seen before are read twice.
An entry that does not parse is the same as none.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..files import write_atomically
from .concat import AudioFormat, Clip, VideoFormat
from .probe_cache import cache_folder

_JUDGES = ("r2v_pipeline.media.concat", "r2v_pipeline.media.clip_cache")


def default_folder() -> Path | None:
    """The cache folder for clip facts, or None when turned off."""
    return cache_folder("clips", _JUDGES)


class ClipCache:
    def __init__(self, folder: Path | None):
        self.folder = folder

    def get(self, sha256: str, path: Path, label: str) -> Clip | None:
        """The clip of the file whose content hash is ``sha256``, as at ``path``, named ``label``."""
        if self.folder is None:
            return None
        try:
            data = json.loads((self.folder / f"{sha256}.json").read_text("utf-8"))
            return _clip(data, path, label) if data.get("sha256") == sha256 else None
        except (OSError, ValueError, TypeError, KeyError, AttributeError, ZeroDivisionError):
            return None

    def put(self, sha256: str, clip: Clip) -> None:
        if self.folder is None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomically(self.folder / f"{sha256}.json", json.dumps({"sha256": sha256, **_facts(clip)}))  # whole or none
        except OSError:
            pass


def _facts(clip: Clip) -> dict[str, Any]:
    """What the packets said: everything but where the file is and what it is called."""
    video, audio = clip.video, clip.audio
    return {
        "video": [video.codec, video.width, video.height, video.pix_fmt, _text(video.rate), _hex(video.extradata)],
        "audio": None if audio is None else [audio.codec, audio.rate, audio.layout, audio.channels, _hex(audio.extradata)],
        "start": str(clip.start),
        "seconds": str(clip.seconds),
        "starts_on_keyframe": clip.starts_on_keyframe,
        "audio_start": str(clip.audio_start),
        "audio_end": str(clip.audio_end),
        "audio_packet": str(clip.audio_packet),
        "frames": clip.frames,
        "frame_rate": clip.frame_rate,
    }


def _clip(data: dict[str, Any], path: Path, label: str) -> Clip:
    """An entry back as a Clip; ValueError or TypeError for anything but what put wrote."""
    codec, width, height, pix_fmt, rate, extradata = data["video"]
    audio = data["audio"]
    return Clip(
        path=path,
        label=label,
        video=VideoFormat(_str(codec), _int(width), _int(height), _optional(pix_fmt, _str), _optional(rate, Fraction), _bytes(extradata)),
        start=Fraction(_str(data["start"])),
        seconds=Fraction(_str(data["seconds"])),
        starts_on_keyframe=_bool(data["starts_on_keyframe"]),
        audio=None if audio is None else AudioFormat(_str(audio[0]), _int(audio[1]), _str(audio[2]), _int(audio[3]), _bytes(audio[4])),
        audio_start=Fraction(_str(data["audio_start"])),
        audio_end=Fraction(_str(data["audio_end"])),
        audio_packet=Fraction(_str(data["audio_packet"])),
        frames=_int(data["frames"]),
        frame_rate=float(data["frame_rate"]),
    )


def _text(value: Fraction | None) -> str | None:
    return None if value is None else str(value)


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes.fromhex(_str(value))


def _optional(value: Any, make: Any) -> Any:
    return None if value is None else make(_str(value))


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("not an integer")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("not a boolean")
    return value
