"""A clip read with its packets kept is joined from them, not read again: the cut
is the very file a join that reads its inputs writes, and kept packets serve one
join only (a second join of the same clips reads the files)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from r2v_pipeline.media import concat
from r2v_pipeline.media.concat import join_clips, read_clip
from r2v_pipeline.media.synth import write_video
from tests.test_concat import encoded


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@settings(max_examples=8, deadline=None)
@given(
    inputs=st.lists(st.tuples(st.sampled_from([0.2, 0.35, 0.5, 1.0]), st.sampled_from(["mp4", "matroska"])), min_size=1, max_size=4),
    fps=st.sampled_from([24, 25, 30]),
    sound=st.booleans(),
)
def test_a_copy_from_kept_packets_is_the_file_a_reading_copy_writes(
    inputs: list[tuple[float, str]], fps: int, sound: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("kept")
    paths = []
    for n, (seconds, container) in enumerate(inputs):  # Matroska counts in ms: packets re-timed across clocks
        paths.append(folder / f"{n}.{'mkv' if container == 'matroska' else 'mp4'}")
        write_video(paths[-1], 96, 64, seconds, fps=fps, audio=sound, color=(40 * n % 255, 70, 120), container=container)
    kept = [read_clip(p, keep=True) for p in paths]
    assert all(c.kept is not None for c in kept)
    from_kept = join_clips(kept, folder / "kept.mp4")
    from_files = join_clips([read_clip(p) for p in paths], folder / "read.mp4")
    assert from_kept.describe().startswith("copied")
    assert from_kept == concat.Concatenated(**{**from_files.__dict__, "path": from_kept.path})
    assert digest(folder / "kept.mp4") == digest(folder / "read.mp4")
    again = join_clips(kept, folder / "again.mp4")  # the packets were taken: the files are read
    assert again.inputs == from_kept.inputs and digest(folder / "again.mp4") == digest(folder / "read.mp4")


def test_kept_pictures_stored_out_of_order_are_copied_as_a_reading_copy_copies_them(tmp_path: Path) -> None:
    inputs = [encoded(tmp_path / "a.mp4", 20, b_frames=True), encoded(tmp_path / "b.mp4", 12, b_frames=True)]
    from_kept = join_clips([read_clip(p, keep=True) for p in inputs], tmp_path / "kept.mp4")
    join_clips([read_clip(p) for p in inputs], tmp_path / "read.mp4")
    assert from_kept.video == "copy" and digest(tmp_path / "kept.mp4") == digest(tmp_path / "read.mp4")


def test_a_re_encoded_cut_reads_its_inputs_and_leaves_kept_packets_unused(tmp_path: Path) -> None:
    wide, square = tmp_path / "wide.mp4", tmp_path / "square.mp4"
    write_video(wide, 96, 64, 0.4)
    write_video(square, 64, 64, 0.3)
    clips = [read_clip(wide, keep=True), read_clip(square, keep=True)]
    result = join_clips(clips, tmp_path / "cut.mp4")
    assert result.video == "re-encode" and [(c.frames, c.frame_rate) for c in clips] == [(12, 30.0), (9, 30.0)]
    assert all(c.kept is not None and c.kept.take() is not None for c in clips)  # decoding reads the files


def test_a_clip_read_without_keep_holds_no_packets(tmp_path: Path) -> None:
    write_video(tmp_path / "a.mp4", 96, 64, 0.2)
    assert read_clip(tmp_path / "a.mp4").kept is None
    kept = read_clip(tmp_path / "a.mp4", keep=True)
    assert kept == read_clip(tmp_path / "a.mp4")  # the same facts; the packets are no part of them
    assert kept.kept is not None
    packets = kept.kept.take()
    assert packets is not None and len(packets) == 6 + 11  # 0.2 s: 6 pictures, 11 sound packets (one of priming)
    assert {p.stream.type for p in packets} == {"video", "audio"}  # their streams still open
    assert kept.kept.take() is None
