"""Shared fixtures: manifests written into a temporary folder, small real media."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Callable

import pytest

from r2v_pipeline.media import synth

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str | bytes], Path]:
    """write(name, text_or_bytes) -> path, in a fresh folder; text is dedented."""

    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"))
        return path

    return _write


@pytest.fixture(scope="session")
def media_bytes() -> dict[str, bytes]:
    """Small real media, made once per test session."""
    return {
        "png": synth.image_bytes(256, 256, "png"),
        "jpeg": synth.image_bytes(320, 240, "jpeg"),
        "small_png": synth.image_bytes(200, 256, "png"),
        "video_3s": synth.video_bytes(240, 240, 3.0),
        "video_2s_silent": synth.video_bytes(240, 240, 2.0, audio=False),
        "wav_2s": synth.audio_bytes(2.0, "wav"),
        "mp3_2s": synth.audio_bytes(2.0, "mp3"),
        "wav_12s": synth.audio_bytes(12.0, "wav"),
    }


@pytest.fixture
def media(write: Callable[[str, str | bytes], Path], media_bytes: dict[str, bytes]) -> Callable[[str, str], Path]:
    """media(name, kind) writes one of ``media_bytes`` under the manifest folder."""

    def _media(name: str, kind: str) -> Path:
        return write(name, media_bytes[kind])

    return _media
