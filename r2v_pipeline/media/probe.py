"""What a media file really is, judged from its bytes (never from its name)."""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from typing import BinaryIO, Literal

import av

MediaKind = Literal["image", "video", "audio"]

# PyAV's demuxer name -> (format, kind). The ISO media family is told apart below.
_DEMUXERS: dict[str, tuple[str, MediaKind]] = {
    "png_pipe": ("png", "image"),
    "jpeg_pipe": ("jpeg", "image"),
    "bmp_pipe": ("bmp", "image"),
    "webp_pipe": ("webp", "image"),
    "gif": ("gif", "image"),
    "gif_pipe": ("gif", "image"),
    "tiff_pipe": ("tiff", "image"),
    "wav": ("wav", "audio"),
    "mp3": ("mp3", "audio"),
    "ogg": ("ogg", "audio"),
    "flac": ("flac", "audio"),
    "matroska,webm": ("webm", "video"),
    "avi": ("avi", "video"),
}
_ISO_FAMILY = "mov,mp4,m4a,3gp,3g2,mj2"

FORMAT_NAMES = {
    "png": "PNG", "jpeg": "JPEG", "bmp": "BMP", "webp": "WEBP", "gif": "GIF", "tiff": "TIFF",
    "mp4": "MP4", "mov": "MOV", "3gp": "3GP", "m4a": "M4A", "webm": "WebM", "avi": "AVI",
    "wav": "WAV", "mp3": "MP3", "ogg": "Ogg", "flac": "FLAC",
}  # fmt: skip


@dataclass(frozen=True)
class MediaInfo:
    kind: MediaKind | None  # None: not a media file this project knows
    format: str  # "png", "mp4", … or "unknown"
    bytes: int
    sha256: str
    width: int | None = None
    height: int | None = None
    seconds: float | None = None
    has_video: bool = False
    has_audio: bool = False

    @property
    def format_name(self) -> str:
        return FORMAT_NAMES.get(self.format, self.format)

    def describe(self) -> str:
        """A short phrase for messages: 'a 1280×720 PNG image', 'a 12.0 s MP4 video'."""
        if self.kind is None:
            return "not a media file this tool can read"
        if self.kind == "image":
            return f"a {self.width}×{self.height} {self.format_name} image"
        length = f"{self.seconds:.1f} s " if self.seconds is not None else ""
        return f"a {length}{self.format_name} {self.kind}"


def probe_file(path: str | os.PathLike[str]) -> MediaInfo:
    """Probe a local file; OSError propagates (missing file, directory, no access)."""
    with open(path, "rb") as f:
        digest = hashlib.sha256()
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
        size = f.tell()
        f.seek(0)
        return _probe(f, size, digest.hexdigest())


def probe_bytes(data: bytes) -> MediaInfo:
    return _probe(io.BytesIO(data), len(data), hashlib.sha256(data).hexdigest())


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _Nameless:
    """A file without its name, so FFmpeg cannot guess the format from the extension."""

    def __init__(self, f: BinaryIO):
        self._f = f

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()


def _probe(f: BinaryIO, size: int, sha256: str) -> MediaInfo:
    head = f.read(32)
    f.seek(0)
    unknown = MediaInfo(None, "unknown", size, sha256)
    if size == 0:
        return unknown
    try:
        with av.open(_Nameless(f), mode="r") as container:
            return _describe(container, head, size, sha256) or unknown
    except (av.FFmpegError, ValueError, OSError, UnicodeDecodeError, OverflowError):
        return unknown


def _describe(container: av.container.InputContainer, head: bytes, size: int, sha256: str) -> MediaInfo | None:
    demuxer = container.format.name
    video = container.streams.video[0] if container.streams.video else None
    has_audio = bool(container.streams.audio)
    seconds = container.duration / 1_000_000 if container.duration else None
    if demuxer == _ISO_FAMILY:
        fmt, kind = _iso_format(head, video is not None)
    elif demuxer in _DEMUXERS:
        fmt, kind = _DEMUXERS[demuxer]
    else:
        return None
    width = height = None
    if video is not None:
        width, height = video.codec_context.width or None, video.codec_context.height or None
    if kind == "image":
        seconds = None
    return MediaInfo(
        kind=kind,
        format=fmt,
        bytes=size,
        sha256=sha256,
        width=width,
        height=height,
        seconds=seconds,
        has_video=video is not None,
        has_audio=has_audio,
    )


def _iso_format(head: bytes, has_video: bool) -> tuple[str, MediaKind]:
    """MP4 and MOV share a demuxer; the 'ftyp' brand tells them apart."""
    brand = head[8:12] if head[4:8] == b"ftyp" else b""
    if not has_video:
        return ("m4a", "audio")
    if brand == b"qt  " or not brand:  # QuickTime files may have no ftyp box at all
        return ("mov", "video")
    if brand.startswith(b"3g"):
        return ("3gp", "video")
    return ("mp4", "video")
