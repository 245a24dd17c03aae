"""Joining videos: packets copied when the inputs share a format, re-encoded when they
do not; sound kept in step with picture; lengths that add up; nothing half-written."""

from __future__ import annotations

import array
import fractions
from dataclasses import dataclass, field
from pathlib import Path

import av
import pytest

from r2v_pipeline.media.concat import ConcatError, concatenate, read_clip
from r2v_pipeline.media.synth import write_video

FPS = 30



def count_frames(path: Path) -> tuple[int, float]:
    """A video's pictures and frame rate, counted from its packets here: the tests' own
    count, beside the one reading a clip makes."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 30)
        frames = sum(1 for packet in container.demux(stream) if packet.size)
    return frames, rate

def clip(folder: Path, name: str, width: int = 96, height: int = 64, seconds: float = 1.0, **options: object) -> Path:
    path = folder / name
    write_video(path, width, height, seconds, **options)  # type: ignore[arg-type]
    return path


@dataclass
class Decoded:
    """A file played through to the end with PyAV."""

    width: int = 0
    height: int = 0
    frames: list[av.VideoFrame] = field(default_factory=list)
    picture_seconds: float = 0.0  # the last frame's time plus its length
    sample_rate: int = 0
    samples: array.array = field(default_factory=lambda: array.array("f"))  # first channel
    has_audio: bool = False
    container_seconds: float = 0.0

    def level(self, start: float, end: float) -> float:
        """The loudest sample between two times (seconds)."""
        part = self.samples[int(start * self.sample_rate) : int(end * self.sample_rate)]
        return max((abs(x) for x in part), default=0.0)


def decode(path: Path) -> Decoded:
    out = Decoded()
    with av.open(str(path)) as container:
        out.container_seconds = (container.duration or 0) / 1_000_000
        video = container.streams.video[0]
        out.width, out.height = video.codec_context.width, video.codec_context.height
        out.has_audio = bool(container.streams.audio)
        last_dts: dict[int, int] = {}
        for packet in container.demux():
            if packet.dts is not None:  # timestamps only ever rise, per stream
                assert packet.dts > last_dts.get(packet.stream.index, -(1 << 62)), (packet.stream.type, packet.dts)
                last_dts[packet.stream.index] = packet.dts
            for frame in packet.decode():
                if isinstance(frame, av.VideoFrame):
                    out.frames.append(frame)
                elif isinstance(frame, av.AudioFrame):
                    out.sample_rate = frame.sample_rate
                    assert frame.format.name == "fltp"
                    out.samples.frombytes(bytes(frame.planes[0])[: 4 * frame.samples])
    times = [f.time for f in out.frames]
    assert times == sorted(times) and len(set(times)) == len(times)  # pictures in order, none twice
    out.picture_seconds = times[-1] + 1 / FPS
    return out


def video_payloads(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(video=0) if p.size]


def test_inputs_of_one_format_are_copied_packet_for_packet(tmp_path: Path) -> None:
    a = clip(tmp_path, "a.mp4", seconds=1.0)
    b = clip(tmp_path, "b.mp4", seconds=0.5, color=(200, 40, 40))
    result = concatenate([a, b, a], tmp_path / "cut.mp4")
    assert (result.video, result.audio, result.copied, result.reasons) == ("copy", "copy", True, ())
    assert result.describe() == "copied (all share one format)"
    assert result.inputs == (1.0, 0.5, 1.0) and result.seconds == 2.5
    # No re-encode: the cut's pictures are the inputs' compressed pictures, byte for byte.
    assert video_payloads(tmp_path / "cut.mp4") == video_payloads(a) + video_payloads(b) + video_payloads(a)
    played = decode(tmp_path / "cut.mp4")
    assert len(played.frames) == 75 and played.picture_seconds == pytest.approx(2.5)
    assert played.container_seconds == pytest.approx(2.5, abs=1 / FPS)
    assert len(played.samples) / played.sample_rate == pytest.approx(2.5, abs=3 * 1024 / 48000)  # a packet per input at most


def test_copied_sound_stays_in_step_with_the_picture_over_many_inputs(tmp_path: Path) -> None:
    # 0.7 s is no whole number of AAC packets: laid end to end unchecked, sound would drift 21 ms an input.
    a = clip(tmp_path, "a.mp4", seconds=0.7)
    result = concatenate([a] * 8, tmp_path / "cut.mp4")
    assert (result.video, result.audio) == ("copy", "copy")
    with av.open(str(tmp_path / "cut.mp4")) as container:
        audio = container.streams.audio[0]
        end = max((p.pts or 0) + (p.duration or 0) for p in container.demux(audio) if p.size)
    assert abs(end - 8 * 33600) <= 512  # samples: within half a packet, not 8 × 21 ms late


def test_other_sizes_and_frame_rates_are_re_encoded_into_the_first_frame(tmp_path: Path) -> None:
    wide = clip(tmp_path, "wide.mp4", 96, 64, 0.5)
    tall = clip(tmp_path, "tall.mp4", 48, 96, 0.6, fps=25, color=(200, 200, 200))
    result = concatenate([wide, tall], tmp_path / "cut.mp4", labels=["wide", "tall"])
    assert (result.video, result.audio, result.copied) == ("re-encode", "copy", False)
    assert result.reasons == ("tall is h264 48×96 yuv420p 25 fps, wide h264 96×64 yuv420p 30 fps",)
    assert result.describe().startswith("video re-encoded, audio copied (tall is h264 48×96")
    played = decode(tmp_path / "cut.mp4")
    assert (played.width, played.height) == (96, 64)
    assert len(played.frames) == round(1.1 * FPS)  # one frame grid at the first input's rate
    assert played.picture_seconds == pytest.approx(1.1, abs=1 / FPS)
    # The tall picture is letterboxed (pillarboxed): black bars left and right, picture in the middle.
    frame = played.frames[-1]
    luma = bytes(frame.planes[0])
    row = frame.height // 2 * frame.planes[0].line_size
    assert luma[row + 2] < 24 and luma[row + frame.width - 3] < 24
    assert luma[row + frame.width // 2] > 150


def test_a_silent_input_gets_silence_so_sound_stays_in_step(tmp_path: Path) -> None:
    silent = clip(tmp_path, "silent.mp4", seconds=0.5, audio=False)
    sounding = clip(tmp_path, "sounding.mp4", seconds=0.5)
    result = concatenate([silent, sounding, silent], tmp_path / "cut.mp4")
    assert (result.video, result.audio) == ("copy", "re-encode")  # the picture is not touched for it
    assert result.reasons == ("silent.mp4 has no sound, so silence fills its span",) * 2
    played = decode(tmp_path / "cut.mp4")
    assert played.has_audio and len(played.frames) == 45
    assert len(played.samples) / played.sample_rate == pytest.approx(1.5, abs=1024 / 48000)
    assert played.level(0.0, 0.45) < 0.01  # the silent input's span
    assert played.level(0.55, 0.95) > 0.1  # the tone, where its picture is
    assert played.level(1.05, 1.5) < 0.01


def test_no_sound_anywhere_makes_no_audio_track(tmp_path: Path) -> None:
    a = clip(tmp_path, "a.mp4", seconds=0.4, audio=False)
    b = clip(tmp_path, "b.mp4", 64, 64, 0.4, audio=False)
    result = concatenate([a, b], tmp_path / "cut.mp4")
    assert (result.video, result.audio) == ("re-encode", "none")
    played = decode(tmp_path / "cut.mp4")
    assert not played.has_audio and len(played.frames) == 24


def encoded(path: Path, frames: int, *, b_frames: bool = False, tone_from: float | None = None) -> Path:
    """A 64×64 clip made here: with B-frames (pictures stored out of order), or
    with a tone that starts ``tone_from`` seconds after the first picture."""
    with av.open(str(path), "w", format="mp4") as out:
        options = {"preset": "fast", "bf": "2"} if b_frames else {"preset": "ultrafast"}
        stream = out.add_stream("libx264", rate=FPS, options=options)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        sound = out.add_stream("aac", rate=48000) if tone_from is not None else None
        for i in range(frames):
            frame = av.VideoFrame(64, 64, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([(i * 8) % 256]) * plane.buffer_size)
            frame.pts, frame.time_base = i, fractions.Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if sound is not None and tone_from is not None:
            start, end = round(tone_from * 48000), round(frames / FPS * 48000)
            for at in range(start, end, 1024):
                n = min(1024, end - at)
                tone = av.AudioFrame(format="fltp", layout="stereo", samples=n)
                square = array.array("f", [0.3 if (at + k) // 40 % 2 else -0.3 for k in range(n)]).tobytes()
                for channel in tone.planes:
                    channel.update(square)
                tone.sample_rate, tone.pts, tone.time_base = 48000, at, fractions.Fraction(1, 48000)
                out.mux(sound.encode(tone))
            out.mux(sound.encode(None))
    return path


def test_pictures_with_b_frames_are_copied_in_order(tmp_path: Path) -> None:
    a, b = encoded(tmp_path / "a.mp4", 20, b_frames=True), encoded(tmp_path / "b.mp4", 12, b_frames=True)
    with av.open(str(a)) as container:
        assert any(p.pts != p.dts for p in container.demux(video=0) if p.size)  # B-frames indeed
    result = concatenate([a, b], tmp_path / "cut.mp4")
    assert result.video == "copy"
    played = decode(tmp_path / "cut.mp4")
    assert len(played.frames) == 32 and played.picture_seconds == pytest.approx(32 / FPS)


def test_sound_that_starts_late_is_re_encoded_in_its_place(tmp_path: Path) -> None:
    first = encoded(tmp_path / "first.mp4", 15, tone_from=0.0)
    late = encoded(tmp_path / "late.mp4", 30, tone_from=0.5)
    result = concatenate([first, late], tmp_path / "cut.mp4")
    assert (result.video, result.audio) == ("copy", "re-encode")
    assert result.reasons == ("late.mp4's sound starts 0.5 s after its picture",)
    played = decode(tmp_path / "cut.mp4")
    assert played.level(0.05, 0.45) > 0.2  # first's tone
    assert played.level(0.55, 0.95) < 0.01  # late's first half second: silence, as in late.mp4
    assert played.level(1.05, 1.45) > 0.2


def test_an_unreadable_input_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    good = clip(tmp_path, "good.mp4", seconds=0.2)
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    with pytest.raises(ConcatError, match="bad.mp4"):
        concatenate([good, bad], tmp_path / "cut.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4", "good.mp4"]


def test_a_copied_cut_has_every_picture_of_inputs_on_other_clocks(tmp_path: Path) -> None:
    # Matroska counts in milliseconds, MP4 here in 1/15360 s and 1/48000 s: the copy re-times
    # packets across clocks whose ratio is no whole number.
    a = clip(tmp_path, "a.mp4", seconds=0.7)
    b = clip(tmp_path, "b.mkv", seconds=0.5, color=(200, 40, 40), container="matroska")
    result = concatenate([a, b, a, b], tmp_path / "cut.mp4")
    assert (result.video, result.audio, result.reasons) == ("copy", "copy", ())
    assert result.inputs == (0.7, 0.5, 0.7, 0.5) and result.seconds == pytest.approx(2.4)
    assert [(c.frames, c.frame_rate) for c in map(read_clip, (a, b))] == [(21, 30.0), (15, 30.0)] == [count_frames(a), count_frames(b)]
    assert video_payloads(tmp_path / "cut.mp4") == (video_payloads(a) + video_payloads(b)) * 2
    played = decode(tmp_path / "cut.mp4")
    assert len(played.frames) == 72 and played.picture_seconds == pytest.approx(2.4, abs=1e-3)  # Matroska times are whole ms
    assert [round(f.time * FPS) for f in played.frames] == list(range(72))  # every picture in its slot, none lost or doubled
    assert len(played.samples) / played.sample_rate == pytest.approx(2.4, abs=4 * 1024 / 48000)


def test_reading_counts_each_inputs_pictures_and_a_re_encoded_cut_holds_them_all(tmp_path: Path) -> None:
    a = clip(tmp_path, "a.mp4", seconds=0.4)
    square = clip(tmp_path, "square.mp4", 64, 64, 0.3)
    result = concatenate([a, square], tmp_path / "cut.mp4")
    assert result.video == "re-encode"
    assert [(c.frames, c.frame_rate) for c in map(read_clip, (a, square))] == [(12, 30.0), (9, 30.0)] == [count_frames(a), count_frames(square)]
    assert count_frames(tmp_path / "cut.mp4") == (21, 30.0)
