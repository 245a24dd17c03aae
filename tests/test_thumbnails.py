"""Report pictures are drawn once per content and kept in the video store's cache."""

from __future__ import annotations

import hashlib
from pathlib import Path

from r2v_pipeline.media import synth
from r2v_pipeline.media.thumbnail import Thumbnails, thumbnail


def _file(folder: Path, name: str, data: bytes) -> tuple[Path, str]:
    path = folder / name
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_a_thumbnail_is_drawn_once_per_content(tmp_path: Path) -> None:
    video, sha = _file(tmp_path, "v.mp4", synth.video_bytes(320, 240, 2.0))
    cache = Thumbnails(tmp_path / "thumbs")
    first = cache.get(video, sha)
    assert first is not None and first.startswith(b"\xff\xd8")  # a JPEG
    assert first == thumbnail(video)
    video.unlink()  # what a second get returns cannot come from the video any more
    assert cache.get(video, sha) == first
    assert Thumbnails(tmp_path / "thumbs").get(video, sha) == first  # another run, the same cache


def test_the_content_not_the_name_keys_the_cache(tmp_path: Path) -> None:
    cache = Thumbnails(tmp_path / "thumbs")
    red, _ = _file(tmp_path, "a.png", synth.image_bytes(64, 48, "png", color=(200, 20, 20)))
    before = cache.get(red)  # no hash given: read from the file
    red.write_bytes(synth.image_bytes(64, 48, "png", color=(20, 20, 200)))  # same name, new content
    after = cache.get(red)
    assert before and after and before != after
    assert len(list((tmp_path / "thumbs").rglob("*.jpg"))) == 2


def test_a_source_without_a_picture_is_remembered_as_such(tmp_path: Path) -> None:
    audio, sha = _file(tmp_path, "a.wav", synth.audio_bytes(0.5))
    cache = Thumbnails(tmp_path / "thumbs")
    assert cache.get(audio, sha) is None
    (kept,) = (tmp_path / "thumbs").rglob("*.jpg")
    assert kept.stat().st_size == 0
    assert cache.get(audio, sha) is None


def test_a_cache_that_cannot_be_written_only_costs_the_drawing(tmp_path: Path) -> None:
    video, sha = _file(tmp_path, "v.mp4", synth.video_bytes(160, 120, 1.0))
    (tmp_path / "a-file").write_text("not a folder")  # the cache cannot be made here, even by root
    assert Thumbnails(tmp_path / "a-file" / "thumbs").get(video, sha) == thumbnail(video)


def test_a_file_that_is_not_there_has_no_picture(tmp_path: Path) -> None:
    assert Thumbnails(tmp_path / "thumbs").get(tmp_path / "gone.mp4") is None
