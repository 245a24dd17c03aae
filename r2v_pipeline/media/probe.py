"""What a media file really is, judged from its bytes (never from its name).

A file counts as media only when its content proves it: an image's picture
decodes; a video has a video stream whose first frame decodes; a video's or a
voice's packets run to the length its header declares. A lookalike (a PNG
signature followed by text, a file cut short) gets ``kind=None`` and a
``problem`` saying what was found.

Local files are opened only when they are regular files, and read no further
than a caller's bound: a path to /dev/zero, a FIFO or a socket must not hang or
exhaust a check that runs before anything is spent.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
from dataclasses import dataclass, replace
from typing import BinaryIO, Callable, Iterator

import av

from ..catalog.media_info import FORMAT_NAMES, MediaInfo, MediaKind
from .local_file import NotAFile, TooLarge, file_sha256, hash_open, open_regular  # noqa: F401  (file_sha256: where callers have found it)

__all__ = [
    "MediaInfo", "MediaKind", "NotAFile", "TooLarge", "file_sha256", "probe_bytes", "probe_file", "probe_open", "probe_written",
    "read_regular",
]  # fmt: skip

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


# Leading bytes of the formats above, to say what an unreadable file resembles.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "png"),
    (0, b"\xff\xd8\xff", "jpeg"),
    (0, b"BM", "bmp"),
    (0, b"GIF8", "gif"),
    (8, b"WEBP", "webp"),
    (8, b"WAVE", "wav"),
    (0, b"ID3", "mp3"),
    (0, b"\xff\xfb", "mp3"),
    (0, b"\xff\xf3", "mp3"),
    (0, b"OggS", "ogg"),
    (0, b"fLaC", "flac"),
    (4, b"ftyp", "mp4"),
    (4, b"moov", "mov"),
    (0, b"\x1aE\xdf\xa3", "webm"),
    (0, b"II*\x00", "tiff"),
    (0, b"MM\x00*", "tiff"),
)

# Single-picture formats and their decoders. FFmpeg takes the whole file as one
# packet, so the picture is decoded once, without a demuxer probing the file
# first (which decodes the picture too: twice the cost of a 12-megapixel PNG).
_PICTURE_CODECS = {"png": "png", "jpeg": "mjpeg", "bmp": "bmp", "webp": "webp", "tiff": "tiff"}

# [guess] A picture above this many pixels is not decoded: every provider's
# largest image is 8000 px a side, and a tiny PNG can declare gigapixels
# (a decompression bomb). FFmpeg refuses such a picture with EINVAL.
MAX_PIXELS = 8192 * 8192

# [guess] How far a file's packets may end before its declared length and it still
# counts as whole: timestamps round, and a last frame's duration may be unset.
TRUNCATION_SLACK_S = 0.2
TRUNCATION_SLACK_SHARE = 0.01

# [guess] Packets of a stream fed to its decoder in search of a first frame: decoders
# hold a few back (B-frame reordering), and a stream may open on a damaged packet.
FIRST_FRAME_PACKETS = 32

_FFMPEG_OPTIONS = {"max_pixels": str(MAX_PIXELS)}
# A JPEG cut short decodes with grey fill unless told to fail on the first error.
_STRICT_IMAGE_OPTIONS = {**_FFMPEG_OPTIONS, "err_detect": "explode"}
# An MP4's header read, no frame decoded (probe_written: the rest is known).
_HEADER_ONLY = {**_FFMPEG_OPTIONS, "probesize": "32", "analyzeduration": "0"}
_PROBE_ERRORS = (av.FFmpegError, ValueError, OSError, UnicodeDecodeError, OverflowError, IndexError, ZeroDivisionError)


def probe_file(path: str | os.PathLike[str], *, max_bytes: int | None = None, sha256: str | None = None) -> MediaInfo:
    """Probe a local file. OSError propagates (missing file, no access); NotAFile
    for anything but a regular file; TooLarge past ``max_bytes``. ``sha256``: the
    content hash, where the caller computed it while writing the file (not read again)."""
    with open_regular(path) as f:
        if sha256 is None:
            sha256, size = hash_open(f, path, max_bytes)
            f.seek(0)
        else:
            size = os.fstat(f.fileno()).st_size
        return _probe(f, size, sha256)


def probe_written(path: str | os.PathLike[str]) -> MediaInfo:
    """A video this tool has just muxed (a cut), from its header: size, hash, length,
    picture size and streams, as ``probe_file`` gives them, without demuxing and
    decoding it again (its every packet was read as it was written). Anything but
    an MP4/MOV whose index places every packet inside the file is probed in full."""
    with open_regular(path) as f:
        sha256, size = hash_open(f, path, None)
        f.seek(0)
        head = f.read(512)
        f.seek(0)
        try:
            with av.open(_Nameless(f, size), mode="r", options=_HEADER_ONLY) as container:
                video = next((s for s in container.streams.video if not _is_cover_art(s)), None)
                if container.format.name == _ISO_FAMILY and video is not None and container.duration and _indexed_within(container, size):
                    fmt, kind = _iso_format(head, True)
                    return MediaInfo(
                        kind=kind, format=fmt, bytes=size, sha256=sha256, has_video=True, has_audio=bool(container.streams.audio),
                        seconds=_seconds(container.duration), width=video.codec_context.width or None,
                        height=video.codec_context.height or None,
                    )  # fmt: skip
        except _PROBE_ERRORS:
            pass
        f.seek(0)  # not what a cut is: judged in full
        return _probe(f, size, sha256)


def _indexed_within(container: av.container.InputContainer, size: int) -> bool:
    """Every packet the container's index lists lies within its ``size`` bytes (a file cut short does not)."""
    end = 0
    for stream in container.streams:
        entries = getattr(stream, "index_entries", None)  # PyAV 15 and later; before: not known, so not trusted
        if entries is None:
            return False
        for entry in entries:
            end = max(end, entry.pos + entry.size)
    return 0 < end <= size


def probe_open(f: BinaryIO, size: int, sha256: str) -> MediaInfo:
    """Probe a file already opened by ``open_regular`` and hashed (at its start again)."""
    return _probe(f, size, sha256)


def probe_bytes(data: bytes) -> MediaInfo:
    return _probe(io.BytesIO(data), len(data), hashlib.sha256(data).hexdigest())


def read_regular(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (NotAFile, TooLarge otherwise):
    what is sent is read under the same guard as what was probed."""
    with open_regular(path) as f:
        if os.fstat(f.fileno()).st_size > max_bytes:
            raise TooLarge(path, os.fstat(f.fileno()).st_size, max_bytes)
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TooLarge(path, len(data), max_bytes)
    return data


class _Nameless:
    """A file without its name, so FFmpeg cannot guess the format from the extension,
    and cut at ``size``: the demuxer reads exactly the bytes that were hashed."""

    def __init__(self, f: BinaryIO, size: int):
        self._f = f
        self._size = size

    def read(self, n: int = -1) -> bytes:
        left = max(0, self._size - self._f.tell())
        return self._f.read(left if n < 0 else min(n, left))

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == os.SEEK_END:
            return self._f.seek(self._size + offset)
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()


# --- what the bytes are --------------------------------------------------------


def _probe(f: BinaryIO, size: int, sha256: str) -> MediaInfo:
    head = f.read(512)
    f.seek(0)
    if size == 0:
        return MediaInfo(None, "unknown", 0, sha256, problem="an empty file")
    resembles = _resembles(head)
    if resembles in _PICTURE_CODECS:
        return _probe_picture(_Nameless(f, size).read(), resembles, sha256, head)
    wav_seconds = _wav_seconds(f, size) if head[8:12] == b"WAVE" else None
    try:
        with av.open(_Nameless(f, size), mode="r", options=_FFMPEG_OPTIONS) as container:
            return _describe(container, head, size, sha256, wav_seconds)
    except _PROBE_ERRORS:
        return _unreadable(head, size, sha256)


def _describe(
    container: av.container.InputContainer, head: bytes, size: int, sha256: str, wav_seconds: float | None
) -> MediaInfo:
    demuxer = container.format.name
    video = next((s for s in container.streams.video if not _is_cover_art(s)), None)
    if demuxer == _ISO_FAMILY:
        fmt, kind = _iso_format(head, video is not None)
    elif demuxer in _DEMUXERS:
        fmt, kind = _DEMUXERS[demuxer]
    else:
        return _unreadable(head, size, sha256)
    info = MediaInfo(kind=kind, format=fmt, bytes=size, sha256=sha256, has_video=video is not None, has_audio=bool(container.streams.audio))
    if kind == "image":
        return _check_image(container, info, head)
    return _check_timed(container, info, video, wav_seconds)


def _probe_picture(data: bytes, fmt: str, sha256: str, head: bytes) -> MediaInfo:
    """A single-picture file, decoded straight from its bytes."""
    info = MediaInfo("image", fmt, len(data), sha256, has_video=True)
    codec = av.CodecContext.create(_PICTURE_CODECS[fmt], "r")
    codec.options = dict(_STRICT_IMAGE_OPTIONS)
    codec.thread_count = 1
    return _picture_of(info, head, lambda: _first([*codec.decode(av.Packet(data)), *codec.decode(None)]))


def _check_image(container: av.container.InputContainer, info: MediaInfo, head: bytes) -> MediaInfo:
    """An image (of a kind the demuxer found) is one whose picture decodes."""
    stream = container.streams.video[0] if container.streams.video else None
    if stream is None or stream.codec_context is None:
        return _refused(info, f"{_a(info.format_name)} header with no picture in it")
    stream.codec_context.options = dict(_STRICT_IMAGE_OPTIONS)
    return _picture_of(info, head, lambda: next(_decoded(container, stream), None))


def _picture_of(info: MediaInfo, head: bytes, decode: Callable[[], av.frame.Frame | None]) -> MediaInfo:
    """``info`` with the decoded picture's size, or refused saying why there is none."""
    try:
        frame = decode()
    except av.FFmpegError as error:
        if error.errno == errno.EINVAL:
            return _refused(info, f"{_a(info.format_name)} picture over {MAX_PIXELS / 1e6:.0f} megapixels, more than any provider takes")
        return _refused(info, _no_picture(info, head))
    except _PROBE_ERRORS:
        return _refused(info, _no_picture(info, head))
    if frame is None:
        return _refused(info, _no_picture(info, head))
    return replace(info, width=frame.width, height=frame.height)


def _first(frames: list[av.frame.Frame]) -> av.frame.Frame | None:
    return frames[0] if frames else None


def _check_timed(
    container: av.container.InputContainer, info: MediaInfo, video: av.VideoStream | None, header_seconds: float | None
) -> MediaInfo:
    """Video and sound: the stream that makes the kind decodes, and the packets
    present run to the length the header declares (a file cut short does not).
    ``header_seconds``: the length a WAV header declares, which FFmpeg's own
    figure hides (it measures what is there)."""
    name, what = info.format_name, "video" if info.kind == "video" else "audio"
    main = video if info.kind == "video" else next(iter(container.streams.audio), None)
    if main is None:
        return _refused(info, f"{_a(name)} file with no {what} stream")
    if main.codec_context is None:  # FFmpeg knows no decoder for it
        return _refused(info, f"{_a(name)} file whose {what} is in a codec this tool cannot decode")
    main.codec_context.options = dict(_FFMPEG_OPTIONS)
    main.codec_context.thread_count = 1  # one frame is decoded: threads would only add start-up time
    found = _scan(container, main)
    if not found.packets:
        return _refused(info, f"{_a(name)} header with no {what} after it")
    if not found.decoded:
        return _refused(info, f"{_a(name)} file whose {what} does not decode (damaged, or not really {name}?)")
    declared = header_seconds or _seconds(container.duration)
    measured = None if found.end is None else max(0.0, found.end - (_seconds(container.start_time) or 0.0))
    if declared is not None and measured is not None and measured < declared - _slack(declared):
        return _refused(info, f"{_a(name)} file that ends at {measured:.1f} s of its declared {declared:.1f} s: truncated?")
    seconds = _seconds(container.duration)
    width, height = (video.codec_context.width or None, video.codec_context.height or None) if video else (None, None)
    return replace(info, seconds=measured if seconds is None else seconds, width=width, height=height)


def _seconds(microseconds: int | None) -> float | None:
    """FFmpeg's container times, in microseconds; 0 or None when it does not know."""
    return microseconds / 1_000_000 if microseconds else None


@dataclass
class _Scan:
    """What a pass over a file's packets found."""

    packets: int = 0  # of the main stream, with data
    decoded: bool = False  # the main stream gave a frame
    end: float | None = None  # where the last packet of any stream ends, in seconds


def _scan(container: av.container.InputContainer, main: av.stream.Stream) -> _Scan:
    """Demux every packet, decoding only until ``main`` gives its first frame."""
    found = _Scan()
    tried = 0
    ends: dict[int, int] = {}  # stream -> where its last packet ends, in its own ticks (seconds once, at the end)
    for packet in _packets(container):
        index = packet.stream_index
        mine = index == main.index
        if mine and not found.decoded and tried < FIRST_FRAME_PACKETS:
            tried += 1
            found.decoded = _decodes(packet)
        stamp = packet.pts if packet.pts is not None else packet.dts
        if packet.size == 0:
            continue
        found.packets += mine
        if stamp is not None:
            finish = stamp + (packet.duration or 0)
            if finish > ends.get(index, finish - 1):
                ends[index] = finish
    bases = {stream.index: stream.time_base for stream in container.streams}
    seconds = [float(end * bases[index]) for index, end in ends.items() if bases.get(index) is not None]
    found.end = max(seconds) if seconds else None
    return found


def _packets(container: av.container.InputContainer) -> Iterator[av.Packet]:
    try:
        yield from container.demux()
    except av.FFmpegError:
        return  # damaged from here on: the packets before are what the file holds


def _decodes(packet: av.Packet) -> bool:
    try:
        return any(True for _ in packet.decode())
    except av.FFmpegError:
        return False  # a damaged packet; a later one may still decode


def _decoded(container: av.container.InputContainer, stream: av.stream.Stream) -> Iterator[av.frame.Frame]:
    for packet in container.demux(stream):
        yield from packet.decode()  # the last, empty packet flushes the decoder


def _slack(declared: float) -> float:
    return max(TRUNCATION_SLACK_S, declared * TRUNCATION_SLACK_SHARE)


_ATTACHED_PIC = 0x400  # AV_DISPOSITION_ATTACHED_PIC


def _is_cover_art(stream: av.stream.Stream) -> bool:
    """An M4A's album picture shows up as a one-frame video stream."""
    return bool(int(getattr(stream, "disposition", 0)) & _ATTACHED_PIC)


def _no_picture(info: MediaInfo, head: bytes) -> str:
    name = info.format_name
    signature = next((o + len(m) for o, m, f in _SIGNATURES if f == info.format and head[o : o + len(m)] == m), None)
    if signature is not None and _is_text(head[signature:]):
        return f"{_a(name)} signature followed by text, not a picture"
    return f"{_a(name)} file whose picture does not decode (cut short, or not really {name}?)"


def _refused(info: MediaInfo, problem: str) -> MediaInfo:
    return replace(info, kind=None, problem=problem)


def _wav_seconds(f: BinaryIO, size: int) -> float | None:
    """The length a WAV header declares: its data chunk's size over the byte rate.
    None when it does not say (a streamed WAV leaves the size unset)."""
    try:
        return _riff_data_seconds(f, size)
    finally:
        f.seek(0)


def _riff_data_seconds(f: BinaryIO, size: int) -> float | None:
    byte_rate = None
    offset = 12
    for _ in range(64):  # [guess] real files have a handful of chunks before the data
        f.seek(offset)
        header = f.read(8)
        if len(header) < 8:
            return None
        chunk, length = header[:4], int.from_bytes(header[4:], "little")
        if chunk == b"fmt " and length >= 16:
            byte_rate = int.from_bytes(f.read(12)[8:12], "little")
        elif chunk == b"data":
            unset = length in (0, 0xFFFFFFFF)
            return None if unset or not byte_rate else length / byte_rate
        offset += 8 + length + (length & 1)
        if offset >= size:
            return None
    return None


def _unreadable(head: bytes, size: int, sha256: str) -> MediaInfo:
    """A file FFmpeg cannot open as any format here: say what it resembles."""
    fmt = _resembles(head)
    if fmt is not None:
        name = FORMAT_NAMES[fmt]
        problem = f"a file that starts like {_a(name)} but does not read as one (cut short or damaged?)"
        return MediaInfo(None, fmt, size, sha256, problem=problem)
    if _is_text(head):
        return MediaInfo(None, "unknown", size, sha256, problem="text, not an image, video or audio file")
    return MediaInfo(None, "unknown", size, sha256)


def _resembles(head: bytes) -> str | None:
    return next((fmt for offset, magic, fmt in _SIGNATURES if head[offset : offset + len(magic)] == magic), None)


def _is_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:  # a character cut at the end of the sample is still text
        if error.start < len(head) - 3:
            return False
        text = head[: error.start].decode("utf-8")
    return bool(text) and all(c.isprintable() or c in "\t\r\n" for c in text)


_SPOKEN_WITH_AN = frozenset({"MP4", "MP3", "M4A", "MOV", "Ogg", "AVI"})


def _a(name: str) -> str:
    """'an MP4', 'a PNG': the article goes by how the name is spoken."""
    return f"{'an' if name in _SPOKEN_WITH_AN else 'a'} {name}"


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
