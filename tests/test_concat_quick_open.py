"""Inputs opened quickly for a copy (header only, no frame decoded) give the very
bytes a full opening gives; an input whose header does not say enough is opened fully."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import pytest
from hypothesis import given, settings, strategies as st

from r2v_pipeline.media import concat
from r2v_pipeline.media.concat import concatenate
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


def test_each_mp4_input_of_a_copy_is_opened_once_for_the_join_from_its_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = [tmp_path / f"{n}.mp4" for n in range(3)]
    for path in inputs:
        write_video(path, 96, 64, 0.3)
    opened = options_of_opens(monkeypatch)
    assert concatenate(inputs, tmp_path / "cut.mp4").describe().startswith("copied")
    reads, joining = opened[: len(inputs)], opened[len(inputs) :]
    assert reads == [concat.PROBE_OPTIONS] * len(inputs)
    assert joining.count(None) == 1  # the first's streams, once, as the copy's template
    assert joining[-len(inputs) :] == [concat.QUICK_OPEN] * len(inputs)  # then each from its header, and no more


def test_inputs_whose_header_does_not_say_enough_are_opened_fully(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = [tmp_path / "a.mkv", tmp_path / "b.mkv"]  # Matroska: not an MP4 header
    for path in inputs:
        write_video(path, 96, 64, 0.4, container="matroska")
    opened = options_of_opens(monkeypatch)
    concatenate(inputs, tmp_path / "quick.mp4")
    joins = opened[-2 * len(inputs) :]  # after reading the inputs and the first's streams: each tried quickly, then fully
    assert joins == [concat.QUICK_OPEN, None] * len(inputs)
    monkeypatch.undo()
    quick, full, _ = joined_both_ways(inputs, tmp_path, monkeypatch)
    assert quick == full
