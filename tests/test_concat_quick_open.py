"""Inputs opened quickly (header only, no frame decoded) give the very facts and
bytes a full opening gives; an input whose header does not say enough is opened fully."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import av
import pytest
from hypothesis import given, settings, strategies as st

from r2v_pipeline.media import concat
from r2v_pipeline.media.concat import Clip, concatenate, read_clip
from r2v_pipeline.media.synth import write_video


def joined_both_ways(inputs: list[Path], folder: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[bytes, bytes, str]:
    quick = concatenate(inputs, folder / "quick.mp4")
    with monkeypatch.context() as patch:
        patch.setattr(concat, "QUICK_OPEN", None)  # every input opened fully
        full = concatenate(inputs, folder / "full.mp4")
    assert quick == concat.Concatenated(**{**full.__dict__, "path": quick.path})
    return (folder / "quick.mp4").read_bytes(), (folder / "full.mp4").read_bytes(), quick.describe()


def options_of_opens(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, str] | None]:
    """The options of each file concat opens from now on, in order."""
    opened: list[dict[str, str] | None] = []
    real = av.open

    def spying(path: object, *args: object, **kwargs: object) -> object:
        opened.append(kwargs.get("options"))  # type: ignore[arg-type]
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(concat.av, "open", spying)
    return opened


@settings(max_examples=8, deadline=None)
@given(
    lengths=st.lists(st.sampled_from([0.2, 0.35, 0.5, 1.0]), min_size=1, max_size=4),
    fps=st.sampled_from([24, 25, 30]),
    sound=st.booleans(),
)
def test_a_copy_from_quickly_opened_inputs_is_the_same_file(
    lengths: list[float], fps: int, sound: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("quick")
    inputs = []
    for n, seconds in enumerate(lengths):
        inputs.append(folder / f"{n}.mp4")
        write_video(inputs[-1], 96, 64, seconds, fps=fps, audio=sound, color=(40 * n % 255, 70, 120))
    with pytest.MonkeyPatch.context() as patch:
        quick, full, how = joined_both_ways(inputs, folder, patch)
    assert how.startswith("copied")
    assert hashlib.sha256(quick).hexdigest() == hashlib.sha256(full).hexdigest()


def read_fully(path: Path) -> Clip:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(concat, "QUICK_OPEN", None)
        return read_clip(path)


@settings(max_examples=10, deadline=None)
@given(
    size=st.sampled_from([(96, 64), (98, 66), (64, 96), (320, 240)]),
    seconds=st.sampled_from([0.2, 0.5, 1.1]),
    fps=st.sampled_from([12, 24, 25, 30, 60]),
    sound=st.booleans(),
)
def test_an_mp4_read_from_its_header_has_the_facts_of_a_full_reading(
    size: tuple[int, int], seconds: float, fps: int, sound: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("facts") / "a.mp4"
    write_video(path, *size, seconds, fps=fps, audio=sound)
    quick, full = read_clip(path), read_fully(path)
    # All but the pixel format, which the header leaves to the parameter sets it carries.
    assert dataclasses.replace(quick, video=dataclasses.replace(quick.video, pix_fmt=full.video.pix_fmt)) == full
    assert quick.video.copies_with(full.video) and full.video.copies_with(quick.video)


def test_a_copy_needs_one_parameter_set_whatever_the_pixel_format_is_known_as() -> None:
    from fractions import Fraction

    from r2v_pipeline.media.concat import VideoFormat

    a = VideoFormat("h264", 96, 64, None, Fraction(30), b"\x01sps-a")
    assert a.copies_with(dataclasses.replace(a, pix_fmt="yuv420p"))  # the same set: the same pictures
    assert not a.copies_with(dataclasses.replace(a, extradata=b"\x01sps-b"))
    assert not a.copies_with(dataclasses.replace(a, width=98))
    assert not a.copies_with(dataclasses.replace(a, rate=Fraction(25)))
    bare = dataclasses.replace(a, extradata=None, pix_fmt="yuv420p")  # no set to compare: everything is
    assert bare.copies_with(dataclasses.replace(bare)) and not bare.copies_with(dataclasses.replace(bare, pix_fmt="yuv444p"))


def test_each_mp4_input_of_a_copy_is_opened_once_for_the_join_from_its_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = [tmp_path / f"{n}.mp4" for n in range(3)]
    for path in inputs:
        write_video(path, 96, 64, 0.3)
    opened = options_of_opens(monkeypatch)
    assert concatenate(inputs, tmp_path / "cut.mp4").describe().startswith("copied")
    reads, joining = opened[: len(inputs)], opened[len(inputs) :]
    assert reads == [concat.QUICK_OPEN] * len(inputs)  # read from the header too: no picture decoded
    # Then the output, the first's streams (the copy's template) and each input, all from
    # their headers, and no more.
    assert joining == [{"movflags": "+faststart"}, concat.QUICK_OPEN] + [concat.QUICK_OPEN] * len(inputs)


def picture_first(source: Path, dest: Path) -> None:
    """``source`` remuxed so that its first packet is a picture (sound starts a little
    later), as most muxers write: opened from the header, FFmpeg has seen no sound packet."""
    with av.open(str(source)) as src, av.open(str(dest), "w", format="mp4") as out:
        video, sound = out.add_stream_from_template(src.streams.video[0]), out.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux():
            if packet.dts is None:
                continue
            if packet.stream.type == "audio":
                packet.pts, packet.dts, packet.stream = packet.pts + 2048, packet.dts + 2048, sound
            else:
                packet.stream = video
            out.mux(packet)


def test_an_mp4_whose_first_packet_is_a_picture_is_read_and_joined_from_its_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = []
    for n in range(2):
        write_video(tmp_path / f"s{n}.mp4", 96, 64, 0.5, color=(60 * n, 90, 120))
        inputs.append(tmp_path / f"{n}.mp4")
        picture_first(tmp_path / f"s{n}.mp4", inputs[-1])
        with av.open(str(inputs[-1])) as container:
            assert next(container.demux()).stream.type == "video"
    assert read_clip(inputs[0]) == dataclasses.replace(read_fully(inputs[0]), video=read_clip(inputs[0]).video)
    opened = options_of_opens(monkeypatch)
    concatenate(inputs, tmp_path / "cut.mp4")
    assert concat.PROBE_OPTIONS not in opened and None not in opened  # nothing opened fully
    monkeypatch.undo()
    quick, full, how = joined_both_ways(inputs, tmp_path, monkeypatch)
    assert how.startswith("copied") and quick == full


def test_inputs_whose_header_does_not_say_enough_are_opened_fully(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = [tmp_path / "a.mkv", tmp_path / "b.mkv"]  # Matroska: not an MP4 header
    for path in inputs:
        write_video(path, 96, 64, 0.4, container="matroska")
    opened = options_of_opens(monkeypatch)
    concatenate(inputs, tmp_path / "quick.mp4")
    assert opened[: 2 * len(inputs)] == [concat.QUICK_OPEN, concat.PROBE_OPTIONS] * len(inputs)  # read: tried quickly, then fully
    joins = opened[-2 * len(inputs) :]  # after reading the inputs and the first's streams: each tried quickly, then fully
    assert joins == [concat.QUICK_OPEN, None] * len(inputs)
    monkeypatch.undo()
    quick, full, _ = joined_both_ways(inputs, tmp_path, monkeypatch)
    assert quick == full
