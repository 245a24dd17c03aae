"""Small JPEG pictures of media, for pages that must open without a network."""

from __future__ import annotations

import base64
import io
import os
from fractions import Fraction
from typing import cast

import av


def thumbnail(path: str | os.PathLike[str], width: int = 320, at: float = 0.5) -> bytes | None:
    """A JPEG of ``path`` (an image, or a video's frame ``at`` of the way in), ``width`` wide.
    None when the file has no picture to show."""
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


def data_uri(jpeg: bytes | None) -> str | None:
    return f"data:image/jpeg;base64,{base64.b64encode(jpeg).decode()}" if jpeg else None
