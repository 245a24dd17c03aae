"""A downloaded MP4 is judged whole from its boxes: a cut-short file is never vouched for."""

from __future__ import annotations

import io
import struct
from functools import lru_cache
from pathlib import Path

import av
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from r2v_pipeline.media import synth
from r2v_pipeline.media.mp4_layout import Cut, Unsure, read_layout, video_info
from r2v_pipeline.media.probe import probe_bytes

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@lru_cache(maxsize=None)
def clip(kind: str) -> bytes:
    """'faststart': the index first (as the simulator serves); 'index-last': as a plain mux
    writes it; 'silent': no sound track; 'mov': a QuickTime file."""
    if kind == "silent":
        return synth.video_bytes(160, 96, 1.0, audio=False)
    data = synth.video_bytes(160, 96, 1.0)
    if kind == "faststart":
        return data
    out = io.BytesIO()
    with av.open(io.BytesIO(data)) as source, av.open(out, "w", format="mov" if kind == "mov" else "mp4") as dest:
        streams = {s.index: dest.add_stream_from_template(s) for s in source.streams}
        for packet in source.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream_index]
                dest.mux(packet)
    return out.getvalue()


KINDS = ["faststart", "index-last", "silent", "mov"]


def layout_of(data: bytes):  # type: ignore[no-untyped-def]
    return read_layout(io.BytesIO(data), len(data))


@pytest.mark.parametrize("kind", KINDS)
def test_a_whole_file_is_vouched_for_with_what_ffmpeg_finds(kind: str) -> None:
    data = clip(kind)
    layout = layout_of(data)
    probed = probe_bytes(data)
    assert (layout.width, layout.height, layout.has_audio) == (probed.width, probed.height, probed.has_audio)
    assert layout.seconds == pytest.approx(probed.seconds, abs=0.05)
    assert layout.data_end <= len(data)


@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(share=st.floats(0.0, 1.0, exclude_max=True))
def test_no_prefix_of_a_whole_file_is_vouched_for(kind: str, share: float) -> None:
    data = clip(kind)
    cut = data[: int(len(data) * share)]
    with pytest.raises((Cut, Unsure)):
        layout_of(cut)


@pytest.mark.parametrize("kind", ["faststart", "index-last"])
def test_every_prefix_past_the_first_box_is_called_cut_short(kind: str) -> None:
    data = clip(kind)
    first = struct.unpack(">I", data[:4])[0]
    unsure = []
    for n in range(first + 8, len(data)):
        try:
            layout_of(data[:n])
        except Cut:
            continue
        except Unsure:
            unsure.append(n)
        else:
            pytest.fail(f"a prefix of {n} of {len(data)} bytes was vouched for")
    # Only a cut inside a box's 8-byte header leaves too little to call it: probed fully then.
    assert len(unsure) <= 7 * 4


@SETTINGS
@given(at=st.integers(0, 10**9), value=st.integers(0, 255))
def test_a_damaged_byte_gives_a_verdict_or_none_never_a_crash(at: int, value: int) -> None:
    data = bytearray(clip("faststart"))
    data[at % len(data)] = value
    try:
        layout = layout_of(bytes(data))
    except (Cut, Unsure):
        return
    assert layout.data_end <= len(data)  # vouched for: every sample it places is in the file


@SETTINGS
@given(junk=st.binary(max_size=400))
def test_anything_after_an_ftyp_header_gives_a_verdict_or_none(junk: bytes) -> None:
    data = b"\x00\x00\x00\x10ftypisom\x00\x00\x02\x00" + junk
    try:
        layout = layout_of(data)
    except (Cut, Unsure):
        return
    assert layout.data_end <= len(data)


def test_a_sample_table_pointing_past_the_end_is_cut_short() -> None:
    data = bytearray(clip("index-last"))
    moov = data.index(b"moov") - 4
    stco = data.index(b"stco", moov)
    struct.pack_into(">I", data, stco + 12, len(data))  # the first chunk now starts at the file's end
    with pytest.raises(Cut, match="samples run to byte"):
        layout_of(bytes(data))


def test_video_info_vouches_refuses_or_probes(tmp_path: Path) -> None:
    whole = tmp_path / "whole.mp4"
    whole.write_bytes(clip("faststart"))
    info = video_info(whole, "a" * 64)
    assert (info.kind, info.format, info.has_video, info.bytes) == ("video", "mp4", True, whole.stat().st_size)
    assert (info.width, info.height) == (160, 96)

    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip("faststart")[: len(clip("faststart")) * 2 // 3])
    info = video_info(cut, "b" * 64)
    assert info.kind is None and info.problem and "cut short" in info.problem

    mov = tmp_path / "clip.mov"
    mov.write_bytes(clip("mov"))
    assert video_info(mov, "c" * 64).format == "mov"

    page = tmp_path / "page.mp4"  # an error page served in the video's place: FFmpeg's verdict
    page.write_text("<html><body>Access denied</body></html>")
    info = video_info(page, "d" * 64)
    assert info.kind is None and "text" in (info.problem or "")

    picture = tmp_path / "picture.mp4"
    picture.write_bytes(synth.image_bytes(32, 32))
    assert video_info(picture, "e" * 64).kind == "image"
