"""What is known of one media file: plain data, so the catalog can judge media
without loading the prober (PyAV) that finds these facts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MediaKind = Literal["image", "video", "audio"]
Kind = Literal["image", "video"]  # a reference's kind

FORMAT_NAMES = {
    "png": "PNG", "jpeg": "JPEG", "bmp": "BMP", "webp": "WEBP", "gif": "GIF", "tiff": "TIFF",
    "mp4": "MP4", "mov": "MOV", "3gp": "3GP", "m4a": "M4A", "webm": "WebM", "avi": "AVI",
    "wav": "WAV", "mp3": "MP3", "ogg": "Ogg", "flac": "FLAC",
}  # fmt: skip


@dataclass(frozen=True)
class MediaInfo:
    """What a media file is, as the probe found it."""

    kind: MediaKind | None  # None: not a media file this project knows
    format: str  # "png", "mp4", … or "unknown"
    bytes: int
    sha256: str
    width: int | None = None
    height: int | None = None
    seconds: float | None = None
    has_video: bool = False
    has_audio: bool = False
    problem: str | None = None  # kind None: what was found instead ("a PNG signature followed by text")

    @property
    def format_name(self) -> str:
        return FORMAT_NAMES.get(self.format, self.format)

    def describe(self) -> str:
        """A short phrase for messages: 'a 1280×720 PNG image', 'a 12.0 s MP4 video'."""
        if self.kind is None:
            return self.problem or "not a media file this tool can read"
        if self.kind == "image":
            return f"a {self.width}×{self.height} {self.format_name} image"
        length = f"{self.seconds:.1f} s " if self.seconds is not None else ""
        return f"a {length}{self.format_name} {self.kind}"
