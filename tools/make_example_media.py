"""Regenerate the example series' reference media (small, real files).

    python tools/make_example_media.py

The files are committed; rerun this only to change them (it rewrites them, and
their new bytes change the fingerprints of the shots that use them).
"""

from __future__ import annotations

from pathlib import Path

from r2v_pipeline.media import synth

MEDIA = Path(__file__).resolve().parent.parent / "manifests" / "lighthouse" / "media"


def main() -> None:
    MEDIA.mkdir(parents=True, exist_ok=True)
    files = {
        "ada.png": synth.image_bytes(320, 400, "png", color=(170, 90, 60)),
        "gull.webp": synth.image_bytes(320, 320, "webp", color=(200, 200, 210)),
        "lamp-room.jpg": synth.image_bytes(480, 270, "jpeg", color=(40, 60, 90)),
        "storm-board.png": synth.image_bytes(480, 480, "png", color=(90, 90, 110)),
        "harbour-dawn.png": synth.image_bytes(480, 270, "png", color=(230, 160, 90)),
        "ada-voice.wav": synth.audio_bytes(1.5, "wav", tone_hz=262.0),
        "milo-voice.mp3": synth.audio_bytes(2.0, "mp3", tone_hz=196.0),
        "milo.mp4": synth.video_bytes(320, 320, 3.0, color=(60, 120, 80)),
    }
    for name, data in files.items():
        (MEDIA / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
