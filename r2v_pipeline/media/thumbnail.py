"""Small JPEG pictures of media, for pages that must open without a network; kept by
the content hash of their source, so a report rewritten on every run draws only the new."""

from __future__ import annotations

import base64
import io
import os
from fractions import Fraction
from pathlib import Path
from typing import cast

from ..files import write_atomically
from .local_file import file_sha256

THUMBS_FOLDER = "thumbs"  # in the video store: a cache, safe to delete at any time


def thumbnail(path: str | os.PathLike[str], width: int = 320, at: float = 0.5) -> bytes | None:
    """A JPEG of ``path`` (an image, or a video's frame ``at`` of the way in), ``width`` wide.
    None when the file has no picture to show."""
    import av  # FFmpeg loads only when a picture must be drawn: a page whose pictures are cached needs none

    try:
        with av.open(os.fspath(path)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            if container.duration and container.duration > 500_000 and at > 0:  # a video, not a still
                target = int(container.duration * at)  # microseconds: the container's own unit
                container.seek(target, any_frame=False, backward=True)
            frame = next(container.decode(stream), None)
            if frame is None:
                return None
            height = max(2, round(frame.height * width / frame.width / 2) * 2)
            small = frame.reformat(width=width, height=height, format="yuvj420p")
            out = io.BytesIO()
            with av.open(out, "w", format="image2pipe") as image:
                encoder = cast(av.VideoStream, image.add_stream("mjpeg", rate=Fraction(1, 1)))
                encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
                for packet in [*encoder.encode(small), *encoder.encode()]:
                    image.mux(packet)
            return out.getvalue()
    except (av.FFmpegError, OSError, StopIteration, ValueError):
        return None


class Thumbnails:
    """Thumbnails by (content hash, width, position) in ``folder`` (None: no cache).

    An empty file records that a source has no picture. A cache that cannot be written
    (read-only, full) only costs the drawing again; it never fails the caller."""

    def __init__(self, folder: Path | None):
        self.folder = folder

    def get(self, path: Path, sha256: str | None = None, width: int = 320, at: float = 0.5) -> bytes | None:
        """The thumbnail of ``path``, whose content hash is ``sha256`` where the caller
        knows it (a sidecar, the plan), else read from the file."""
        if self.folder is None:
            return thumbnail(path, width, at)
        try:
            content = sha256 or file_sha256(path)
        except (OSError, ValueError):
            return None
        kept = self.folder / content[:2] / f"{content}-{width}-{at:g}.jpg"
        try:
            return kept.read_bytes() or None
        except OSError:
            pass
        jpeg = thumbnail(path, width, at)
        try:
            kept.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(kept, jpeg or b"")  # a full disk leaves no half-written picture behind
        except OSError:
            pass
        return jpeg


def data_uri(jpeg: bytes | None) -> str | None:
    return f"data:image/jpeg;base64,{base64.b64encode(jpeg).decode()}" if jpeg else None
