"""Whether an MP4 is whole, read from its boxes alone: nothing is demuxed or decoded.

A paid video is checked before the ledger says it is kept. Reading every packet
with FFmpeg (probe.py) costs milliseconds a shot; the file's own index tells a
file cut short as surely: every top-level box must fit in the file, and every
sample the track tables place must end inside it. A prefix of a whole file fails
one of the two: its index is cut, or it points past the end.

This reader only ever vouches for a file it follows to the end. Anything else
(fragmented files, tables that disagree, data kept in another file, a box it
cannot read) raises ``Unsure``, and the caller probes the file fully.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from itertools import accumulate
from typing import BinaryIO, Iterator

from ..catalog.media_info import MediaInfo
from .local_file import open_regular

MAX_MOOV = 64 << 20  # [guess] an index this large is no generated clip's: probed fully

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class Cut(Exception):
    """The file ends before what its boxes declare: cut short."""


class Unsure(Exception):
    """Not a layout this reader follows to the end: probe the file fully."""


@dataclass(frozen=True)
class Layout:
    """What an MP4's index says: brand, length, picture size, sound, and where its last sample ends."""

    brand: bytes  # the ftyp box's major brand
    seconds: float | None
    width: int | None  # the first video track's coded size
    height: int | None
    has_audio: bool
    data_end: int  # where the last sample of any track ends


def video_info(path: str | os.PathLike[str], sha256: str) -> MediaInfo:
    """What a downloaded file is, ``sha256`` its hash (computed as it arrived): an MP4
    or MOV whose boxes show it whole is vouched for from them; a file cut short is
    refused saying so; any other file is probed fully (probe.py, which loads FFmpeg)."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        try:
            layout = read_layout(f, size)
        except Cut as cut:
            return MediaInfo(None, "mp4", size, sha256, problem=f"an MP4 file cut short: {cut}")
        except Unsure:
            layout = None
    if layout is None or _format(layout.brand) not in ("mp4", "mov"):
        from .probe import probe_file  # FFmpeg only for what the boxes do not settle

        return probe_file(path, sha256=sha256)
    return MediaInfo(
        "video", _format(layout.brand), size, sha256, width=layout.width, height=layout.height,
        seconds=layout.seconds, has_video=True, has_audio=layout.has_audio,
    )  # fmt: skip


def _format(brand: bytes) -> str:
    """As probe.py names the ISO family's members by brand."""
    if brand == b"qt  ":
        return "mov"
    return "3gp" if brand.startswith(b"3g") else "mp4"


def read_layout(f: BinaryIO, size: int) -> Layout:
    """The layout of an ISO media file (``f`` at any position, ``size`` its length).
    Raises Cut for a file that ends before its boxes do, Unsure for anything else
    it does not follow."""
    f.seek(0)
    if f.read(8)[4:8] != b"ftyp":
        raise Unsure("no ftyp box first")  # not an MP4 (a MOV may lack it): its boxes are not walked
    top = list(_top_boxes(f, size))
    kinds = [kind for kind, _, _ in top]
    if b"moof" in kinds:
        raise Unsure("a fragmented file")
    if b"moov" not in kinds:
        raise Cut("it has no moov box (its index), which a whole file ends or starts with")
    _, start, end = top[kinds.index(b"moov")]
    if end - start > MAX_MOOV:
        raise Unsure("an index too large to read here")
    f.seek(start)
    moov = f.read(end - start)
    if len(moov) != end - start:
        raise Cut("the file ended while its index was read")
    f.seek(top[0][1])
    brand = f.read(4)
    layout = _moov(moov, brand)
    if layout.data_end > size:
        raise Cut(f"its samples run to byte {layout.data_end:,}; the file ends at {size:,}")
    return layout


def _top_boxes(f: BinaryIO, size: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, end) of each top-level box; Cut where one runs past the end."""
    pos = 0
    while pos < size:
        if size - pos < 8:
            raise Unsure(f"{size - pos} bytes after the last box")
        f.seek(pos)
        header = f.read(16)
        length, kind = _U32.unpack_from(header)[0], header[4:8]
        payload = pos + 8
        if length == 1:
            if len(header) < 16:
                raise Cut(f"the {_name(kind)} box's header is cut")
            length, payload = _U64.unpack_from(header, 8)[0], pos + 16
        elif length == 0:  # the box runs to the end of the file
            length = size - pos
        if length < payload - pos:
            raise Unsure(f"a {_name(kind)} box shorter than its header")
        if pos + length > size:
            raise Cut(f"its {_name(kind)} box declares {length:,} bytes, {size - pos:,} are there")
        yield kind, payload, pos + length
        pos += length


def _children(buf: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, end) of the boxes inside ``buf[start:end]``."""
    pos = start
    while pos + 8 <= end:
        length, kind = _U32.unpack_from(buf, pos)[0], buf[pos + 4 : pos + 8]
        payload = pos + 8
        if length == 1:
            if pos + 16 > end:
                raise Unsure("a box header past its parent")
            length, payload = _U64.unpack_from(buf, pos + 8)[0], pos + 16
        elif length == 0:
            length = end - pos
        if length < payload - pos or pos + length > end:
            raise Unsure(f"a {_name(kind)} box that does not fit its parent")
        yield kind, payload, pos + length
        pos += length


def _child(buf: bytes, start: int, end: int, kind: bytes) -> tuple[int, int]:
    for found, s, e in _children(buf, start, end):
        if found == kind:
            return s, e
    raise Unsure(f"no {_name(kind)} box")


def _moov(buf: bytes, brand: bytes) -> Layout:
    seconds = None
    tracks: list[_Track] = []
    for kind, s, e in _children(buf, 0, len(buf)):
        if kind == b"mvex":
            raise Unsure("a fragmented file")
        if kind == b"mvhd":
            seconds = _duration(buf, s, e)
        elif kind == b"trak":
            tracks.append(_trak(buf, s, e))
    video = next((t for t in tracks if t.handler == b"vide"), None)
    if video is None or video.samples == 0:
        raise Unsure("no video track with samples")  # probe.py words the refusal
    if seconds is None:
        seconds = max((t.seconds for t in tracks if t.seconds is not None), default=None)
    return Layout(
        brand, seconds, video.width, video.height, any(t.handler == b"soun" for t in tracks), max(t.data_end for t in tracks)
    )


@dataclass(frozen=True)
class _Track:
    """One track's facts from its boxes."""

    handler: bytes
    seconds: float | None
    width: int | None
    height: int | None
    samples: int
    data_end: int


def _trak(buf: bytes, start: int, end: int) -> _Track:
    mdia = _child(buf, start, end, b"mdia")
    handler = _need(buf, *_child(buf, *mdia, b"hdlr"), 12)[8:12]
    seconds = _duration(buf, *_child(buf, *mdia, b"mdhd"))
    minf = _child(buf, *mdia, b"minf")
    _self_contained(buf, *_child(buf, *minf, b"dinf"))
    stbl = _child(buf, *minf, b"stbl")
    boxes = {kind: (s, e) for kind, s, e in _children(buf, *stbl)}
    width = height = None
    if handler == b"vide" and b"stsd" in boxes:
        width, height = _visual_size(buf, *boxes[b"stsd"])
    if b"stsz" not in boxes:
        raise Unsure("no stsz box")  # stz2 (compact sizes) is not read here
    sizes = _sample_sizes(buf, *boxes[b"stsz"])
    if b"stco" in boxes:
        offsets = _offsets(buf, *boxes[b"stco"], 4)
    elif b"co64" in boxes:
        offsets = _offsets(buf, *boxes[b"co64"], 8)
    else:
        raise Unsure("no chunk offsets")
    if b"stsc" not in boxes:
        raise Unsure("no stsc box")
    per_chunk = _samples_per_chunk(buf, *boxes[b"stsc"], len(offsets))
    return _Track(handler, seconds, width, height, sizes.count, _data_end(offsets, per_chunk, sizes))


def _need(buf: bytes, start: int, end: int, n: int) -> bytes:
    if end - start < n:
        raise Unsure("a box too short for its fields")
    return buf[start : start + n]


def _duration(buf: bytes, start: int, end: int) -> float | None:
    """Seconds an mvhd or mdhd box declares (None when it does not say)."""
    version = _need(buf, start, end, 1)[0]
    if version == 1:
        body = _need(buf, start, end, 32)
        timescale, duration = _U32.unpack_from(body, 20)[0], _U64.unpack_from(body, 24)[0]
        unknown = 0xFFFFFFFFFFFFFFFF
    else:
        body = _need(buf, start, end, 20)
        timescale, duration = _U32.unpack_from(body, 12)[0], _U32.unpack_from(body, 16)[0]
        unknown = 0xFFFFFFFF
    return duration / timescale if timescale and duration and duration != unknown else None


def _self_contained(buf: bytes, start: int, end: int) -> None:
    """Every data reference is 'this file' (flag 1): samples kept elsewhere are not checked here."""
    s, e = _child(buf, start, end, b"dref")
    for _, es, ee in _children(buf, s + 8, e):
        if ee - es < 4 or not buf[es + 3] & 1:
            raise Unsure("samples kept in another file")


def _visual_size(buf: bytes, start: int, end: int) -> tuple[int | None, int | None]:
    """The coded width and height in the first sample description (a visual sample entry)."""
    for _, s, e in _children(buf, start + 8, end):
        if e - s >= 28:
            width, height = struct.unpack_from(">HH", buf, s + 24)
            return width or None, height or None
        break
    return None, None


@dataclass(frozen=True)
class _Sizes:
    """A track's sample sizes, fixed or one each, to add up spans of samples."""

    count: int
    fixed: int  # every sample's size, or 0: each is in ``prefix``
    prefix: list[int]  # bytes before each sample (count + 1 entries) when sizes vary

    def span(self, first: int, n: int) -> int:
        """Bytes of samples first … first + n - 1."""
        return self.fixed * n if self.fixed else self.prefix[first + n] - self.prefix[first]


def _sample_sizes(buf: bytes, start: int, end: int) -> _Sizes:
    body = _need(buf, start, end, 12)
    fixed, count = struct.unpack_from(">II", body, 4)
    if fixed:
        return _Sizes(count, fixed, [])
    if end - start - 12 < 4 * count:
        raise Unsure("an stsz box shorter than its count")
    return _Sizes(count, 0, [0, *accumulate(struct.unpack_from(f">{count}I", buf, start + 12))])


def _offsets(buf: bytes, start: int, end: int, width: int) -> tuple[int, ...]:
    count = _U32.unpack_from(_need(buf, start, end, 8), 4)[0]
    if end - start - 8 < width * count:
        raise Unsure("a chunk offset box shorter than its count")
    return struct.unpack_from(f">{count}{'I' if width == 4 else 'Q'}", buf, start + 8)


def _samples_per_chunk(buf: bytes, start: int, end: int, chunks: int) -> list[int]:
    """How many samples each chunk holds, from the stsc runs (first chunk, samples per chunk)."""
    count = _U32.unpack_from(_need(buf, start, end, 8), 4)[0]
    if end - start - 8 < 12 * count:
        raise Unsure("an stsc box shorter than its count")
    runs = [struct.unpack_from(">II", buf, start + 8 + 12 * i) for i in range(count)]
    if chunks and (not runs or runs[0][0] != 1):
        raise Unsure("sample-to-chunk runs that do not start at the first chunk")
    out: list[int] = []
    for i, (first, per) in enumerate(runs):
        last = runs[i + 1][0] - 1 if i + 1 < count else chunks
        if last < first - 1 or last > chunks or first - 1 != len(out):
            raise Unsure("sample-to-chunk runs out of order")
        out.extend([per] * (last - first + 1))
    return out


def _data_end(offsets: tuple[int, ...], per_chunk: list[int], sizes: _Sizes) -> int:
    """Where the last byte of the track's samples lies; Unsure when the tables disagree."""
    if len(per_chunk) != len(offsets):
        raise Unsure("sample-to-chunk runs that do not cover every chunk")
    sample = end = 0
    for offset, n in zip(offsets, per_chunk):
        if sample + n > sizes.count:
            raise Unsure("chunks that hold more samples than the track has")
        if n:
            end = max(end, offset + sizes.span(sample, n))
        sample += n
    if sample != sizes.count:
        raise Unsure("samples no chunk holds")
    return end


def _name(kind: bytes) -> str:
    return kind.decode("latin-1") if kind.isascii() and kind.isalnum() else kind.hex()
