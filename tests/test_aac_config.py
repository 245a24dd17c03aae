"""Samples per AAC packet, read from the stream's AudioSpecificConfig: what FFmpeg
finds after seeing a packet, for plain AAC; None for anything else, never an error."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from hypothesis import given, strategies as st

from r2v_pipeline.media import aac_config
from r2v_pipeline.media.synth import write_video


NO_SBR = [(0x2B7, 11), (5, 5), (0, 1)]  # "SBR absent", after the config: as FFmpeg's encoder writes it


def config(kind: int, rate_index: int, channels: int, short: bool, tail: list[tuple[int, int]] = NO_SBR, core_delay: int | None = None, extension: bool = False) -> bytes:
    """An AudioSpecificConfig from its fields (``tail``: more (value, bits) after GASpecificConfig)."""
    core = [(1, 1), (core_delay, 14)] if core_delay is not None else [(0, 1)]
    fields = [(kind, 5), (rate_index, 4)] + ([(48000, 24)] if rate_index == 0xF else []) + [(channels, 4), (int(short), 1), *core, (int(extension), 1), *tail]
    value, size = 0, 0
    for field, bits in fields:
        value, size = (value << bits) | field, size + bits
    pad = -size % 8
    return (value << pad).to_bytes((size + pad) // 8, "big")


@given(
    kind=st.sampled_from(sorted(aac_config.PLAIN_AAC)), rate_index=st.sampled_from([3, 4, 8, 0xF]), channels=st.integers(1, 7),
    short=st.booleans(), core_delay=st.one_of(st.none(), st.integers(0, (1 << 14) - 1)),
)  # fmt: skip
def test_plain_aac_declaring_no_sbr_says_its_frame_length(kind: int, rate_index: int, channels: int, short: bool, core_delay: int | None) -> None:
    assert aac_config.frame_size(config(kind, rate_index, channels, short, core_delay=core_delay)) == (960 if short else 1024)


@given(rate_index=st.sampled_from([3, 4, 8]), channels=st.integers(1, 7))
def test_anything_but_plain_aac_declaring_no_sbr_is_left_to_ffmpeg(rate_index: int, channels: int) -> None:
    assert aac_config.frame_size(config(5, rate_index, channels, False)) is None  # SBR (HE-AAC)
    assert aac_config.frame_size(config(29, rate_index, channels, False)) is None  # parametric stereo
    assert aac_config.frame_size(config(23, rate_index, channels, False)) is None  # low delay
    assert aac_config.frame_size(config(2, rate_index, 0, False)) is None  # a program config element
    assert aac_config.frame_size(config(2, rate_index, channels, False, extension=True)) is None
    # SBR possible (FFmpeg doubles rate and frame when a packet carries it), or present.
    assert aac_config.frame_size(config(2, rate_index, channels, False, tail=[])) is None
    assert aac_config.frame_size(config(2, rate_index, channels, False, tail=[(0x2B7, 11), (5, 5), (1, 1)])) is None
    assert aac_config.frame_size(bytes.fromhex("1190")) is None


@given(st.binary(max_size=12))
def test_any_bytes_give_a_frame_length_or_none(data: bytes) -> None:
    assert aac_config.frame_size(data) in (None, 960, 1024)


@pytest.mark.parametrize("seconds", [0.3, 1.0])
def test_the_encoders_config_says_what_ffmpeg_finds(seconds: float, tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    write_video(path, 64, 48, seconds)
    with av.open(str(path)) as container:
        sound = container.streams.audio[0].codec_context
        assert aac_config.frame_size(sound.extradata) == sound.frame_size == 1024
