"""Samples per AAC packet, read from the stream's AudioSpecificConfig: what FFmpeg
finds after seeing a packet, for plain AAC; None for anything else, never an error."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from hypothesis import given, strategies as st

from r2v_pipeline.media import aac_config
from r2v_pipeline.media.synth import write_video


def config(kind: int, rate_index: int, channels: int, short: bool, tail: list[tuple[int, int]] = ()) -> bytes:  # type: ignore[assignment]
    """An AudioSpecificConfig from its fields (``tail``: more (value, bits) after GASpecificConfig)."""
    fields = [(kind, 5), (rate_index, 4)] + ([(48000, 24)] if rate_index == 0xF else []) + [(channels, 4), (int(short), 1), (0, 1), (0, 1), *tail]
    value, size = 0, 0
    for field, bits in fields:
        value, size = (value << bits) | field, size + bits
    pad = -size % 8
    return (value << pad).to_bytes((size + pad) // 8, "big")


@given(kind=st.sampled_from(sorted(aac_config.PLAIN_AAC)), rate_index=st.sampled_from([3, 4, 8, 0xF]), channels=st.integers(1, 7), short=st.booleans())
def test_plain_aac_says_its_frame_length(kind: int, rate_index: int, channels: int, short: bool) -> None:
    expected = 960 if short else 1024
    assert aac_config.frame_size(config(kind, rate_index, channels, short)) == expected
    no_sbr = [(aac_config.SYNC_EXTENSION, 11), (aac_config.SBR, 5), (0, 1)]  # "no SBR", as FFmpeg's encoder writes
    assert aac_config.frame_size(config(kind, rate_index, channels, short, no_sbr)) == expected


@given(rate_index=st.sampled_from([3, 4, 8]), channels=st.integers(1, 7))
def test_anything_but_plain_aac_is_left_to_ffmpeg(rate_index: int, channels: int) -> None:
    assert aac_config.frame_size(config(5, rate_index, channels, False)) is None  # SBR (HE-AAC)
    assert aac_config.frame_size(config(29, rate_index, channels, False)) is None  # parametric stereo
    assert aac_config.frame_size(config(23, rate_index, channels, False)) is None  # low delay
    assert aac_config.frame_size(config(2, rate_index, 0, False)) is None  # a program config element
    sbr_present = [(aac_config.SYNC_EXTENSION, 11), (aac_config.SBR, 5), (1, 1)]
    assert aac_config.frame_size(config(2, rate_index, channels, False, sbr_present)) is None


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
