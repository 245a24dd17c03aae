"""The facts of a cut just written, read from its header alone, are what probing it
in full says; a file that is not such a video is probed in full."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from r2v_pipeline.media import synth
from r2v_pipeline.media.concat import concatenate
from r2v_pipeline.media.probe import probe_file, probe_written


@settings(max_examples=6, deadline=None)
@given(
    lengths=st.lists(st.sampled_from([0.2, 0.3, 0.5]), min_size=1, max_size=3),
    sizes=st.sampled_from([(64, 48), (96, 64)]),
    sound=st.lists(st.booleans(), min_size=3, max_size=3),
    other_size=st.booleans(),
)
def test_a_cut_from_its_header_is_what_probing_says(
    lengths: list[float], sizes: tuple[int, int], sound: list[bool], other_size: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("cut")
    inputs = []
    for n, seconds in enumerate(lengths):
        size = (48, 48) if other_size and n == 1 else sizes  # another shape: re-encoded
        inputs.append(folder / f"{n}.mp4")
        synth.write_video(inputs[-1], *size, seconds, audio=sound[n])
    cut = concatenate(inputs, folder / "cut.mp4").path
    written = probe_written(cut)
    assert written == probe_file(cut)
    assert written.kind == "video" and written.seconds is not None


@pytest.mark.parametrize(
    "name, content",
    [
        ("a.png", lambda: synth.image_bytes(32, 32, "png")),
        ("a.wav", lambda: synth.audio_bytes(0.3, "wav")),
        ("a.mp3", lambda: synth.audio_bytes(0.3, "mp3")),
        ("a.txt", lambda: b"hello, not a video\n"),
        ("a.mp4", lambda: synth.video_bytes(64, 48, 1.0)[:-3000]),  # cut short
        ("a.mp4", lambda: synth.video_bytes(64, 48, 0.5)[:400]),
        ("a.webm", lambda: synth.video_bytes(64, 48, 0.3, container="matroska")),
        ("a.mov", lambda: synth.video_bytes(64, 48, 0.3, container="mov")),
        ("empty.mp4", lambda: b""),
    ],
)
def test_anything_else_is_probed_in_full(name: str, content, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_bytes(content())
    assert probe_written(path) == probe_file(path)
