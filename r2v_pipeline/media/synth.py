"""Real, small media files made on the spot: example references, test inputs and
the simulator's generated videos. Everything is encoded by FFmpeg through PyAV."""

from __future__ import annotations

import array
import fractions
import io
import math
import os
import tempfile
from pathlib import Path
from typing import cast

import av

RGB = tuple[int, int, int]

_IMAGE_CODECS = {  # format -> (PyAV container, codec, pixel format)
    "png": ("image2pipe", "png", "rgb24"),
    "jpeg": ("image2pipe", "mjpeg", "yuvj420p"),
    "webp": ("webp", "libwebp", "yuv420p"),
    "bmp": ("image2pipe", "bmp", "bgr24"),
}


def _picture(width: int, height: int, color: RGB) -> av.VideoFrame:
    """A flat background with a lighter disc in the middle, as an RGB frame."""
    frame = av.VideoFrame(width, height, "rgb24")
    plane = frame.planes[0]
    pad = b"\0" * (plane.line_size - 3 * width)
    light = tuple(min(255, c + 90) for c in color)
    cx, cy, r2 = width / 2, height / 2, (min(width, height) / 3) ** 2
    rows = []
    for y in range(height):
        dy2 = (y - cy) ** 2
        if dy2 > r2:
            rows.append(bytes(color) * width + pad)
            continue
        half = int(math.sqrt(r2 - dy2))
        left, right = max(0, int(cx) - half), min(width, int(cx) + half)
        rows.append(bytes(color) * left + bytes(light) * (right - left) + bytes(color) * (width - right) + pad)
    plane.update(b"".join(rows))
    return frame


def image_bytes(width: int, height: int, fmt: str = "png", color: RGB = (60, 110, 170)) -> bytes:
    container_fmt, codec, pix = _IMAGE_CODECS[fmt]
    buf = io.BytesIO()
    with av.open(buf, "w", format=container_fmt) as out:
        stream = cast(av.VideoStream, out.add_stream(codec, rate=1))
        stream.width, stream.height, stream.pix_fmt = width, height, pix
        frame = _picture(width, height, color).reformat(format=pix)
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    return buf.getvalue()


def write_video(
    path: str | os.PathLike[str],
    width: int,
    height: int,
    seconds: float,
    *,
    fps: int = 30,
    audio: bool = True,
    color: RGB = (40, 70, 120),
    container: str = "mp4",
) -> None:
    """Write an H.264 (+AAC) video: a still picture crossed by a moving band."""
    frames = max(1, round(seconds * fps))
    base = _picture(width, height, color).reformat(format="yuv420p")
    y_plane, u_plane, v_plane = (bytes(p) for p in base.planes)
    line = base.planes[0].line_size
    band_rows = max(2, height // 12)
    band = b"\xeb" * (line * band_rows)
    options = {"movflags": "+faststart"}
    with av.open(os.fspath(path), "w", format=container, options=options) as out:
        video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "32"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = None
        if audio:
            sound = out.add_stream("aac", rate=48000)
            sound.layout = "mono"
        for i in range(frames):
            frame = av.VideoFrame(width, height, "yuv420p")
            top = (i * max(1, height // fps)) % max(1, height - band_rows) * line
            frame.planes[0].update(y_plane[:top] + band + y_plane[top + len(band) :])
            frame.planes[1].update(u_plane)
            frame.planes[2].update(v_plane)
            frame.pts, frame.time_base = i, fractions.Fraction(1, fps)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if sound is not None:
            _encode_tone(out, sound, frames / fps, 48000)


def video_bytes(width: int, height: int, seconds: float, **options: object) -> bytes:
    container = str(options.get("container", "mp4"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"clip.{container}"
        write_video(path, width, height, seconds, **options)  # type: ignore[arg-type]
        return path.read_bytes()


def audio_bytes(seconds: float, fmt: str = "wav", tone_hz: float = 330.0) -> bytes:
    """A mono tone, as WAV (PCM) or MP3."""
    rate = 16000 if fmt == "wav" else 44100
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        codec = "pcm_s16le" if fmt == "wav" else "libmp3lame"
        stream = cast(av.AudioStream, out.add_stream(codec, rate=rate))
        stream.layout = "mono"
        _encode_tone(out, stream, seconds, rate, tone_hz)
    return buf.getvalue()


def _encode_tone(out: av.container.OutputContainer, stream: av.AudioStream, seconds: float, rate: int, hz: float = 440.0) -> None:
    """Encode a sine tone; mono, so planar and packed sample layouts are the same bytes."""
    total = round(seconds * rate)
    chunk = stream.codec_context.frame_size or 1024
    sample_format = stream.codec_context.format.name
    integer = sample_format.startswith("s16")
    wave = [0.2 * math.sin(2 * math.pi * hz * i / rate) for i in range(rate)]
    if integer:
        wave = [int(x * 32767) for x in wave]
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        samples = array.array("h" if integer else "f", (wave[(start + j) % rate] for j in range(n)))
        frame = av.AudioFrame(format=sample_format, layout="mono", samples=n)
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate, frame.pts, frame.time_base = rate, start, fractions.Fraction(1, rate)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
