"""Joining videos end to end into one MP4: packets copied when the inputs share a
format, re-encoded to a common one when they do not.

Knows nothing of manifests: paths in, one file out, and what was done. Picture
and sound are decided apart, so one silent input costs an audio re-encode (cheap)
and never a picture re-encode (slow, lossy). Every input keeps its picture's
length: input k starts exactly where inputs 1…k-1 end, and sound is cut, padded
or filled with silence to that grid, so it stays in step with the picture.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Literal, Protocol, Sequence, cast

import av
from av.audio.codeccontext import AudioCodecContext
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.packet import Packet
from av.video.frame import PictureType, VideoFrame
from av.video.stream import VideoStream

from ..files import put_in_place, temporary_beside
from . import aac_config

VIDEO_CODEC, PIXEL_FORMAT = "libx264", "yuv420p"  # what any player plays
X264_OPTIONS = {"preset": "veryfast", "crf": "18"}  # visually lossless; a re-encode should not show
AUDIO_CODEC = "aac"
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)

Mode = Literal["copy", "re-encode", "none"]


class ConcatError(Exception):
    """An input FFmpeg cannot read, or an output it cannot write; the message is for a person."""


@dataclass(frozen=True)
class VideoFormat:
    """What a copied picture track must share with the others."""

    codec: str
    width: int
    height: int
    pix_fmt: str | None  # None when read from an MP4's header: its parameter sets imply it
    rate: Fraction | None  # frames per second
    extradata: bytes | None  # codec parameters (H.264 SPS/PPS): one set serves a copied track

    def copies_with(self, other: VideoFormat) -> bool:
        """Whether both tracks' packets can go in one copied track. One set of parameters
        describes a copied track, and the same set means the same pixel format, so that
        is compared only where there is no set (it is unknown where a header was read)."""
        if self.extradata and self.extradata == other.extradata:
            return (self.codec, self.width, self.height, self.rate) == (other.codec, other.width, other.height, other.rate)
        return self == other

    def describe(self) -> str:
        rate = f" {float(self.rate):g} fps" if self.rate else ""
        pixels = f" {self.pix_fmt}" if self.pix_fmt else ""
        return f"{self.codec} {self.width}×{self.height}{pixels}{rate}"


@dataclass(frozen=True)
class AudioFormat:
    """What a copied sound track must share with the others."""

    codec: str
    rate: int
    layout: str
    channels: int
    extradata: bytes | None

    def describe(self) -> str:
        return f"{self.codec} {self.rate} Hz {self.layout}"


@dataclass(frozen=True)
class Clip:
    """One input, from a pass over its packets (nothing decoded). Times in seconds."""

    path: Path
    label: str  # how messages name it
    video: VideoFormat
    start: Fraction  # the first picture's time: the clip's zero
    seconds: Fraction  # first picture to the end of the last
    starts_on_keyframe: bool
    audio: AudioFormat | None = None
    audio_start: Fraction = Fraction(0)  # from the clip's zero; encoder priming makes it negative
    audio_end: Fraction = Fraction(0)
    audio_packet: Fraction = Fraction(0)  # what one packet decodes to
    frames: int = 0  # pictures: video packets with data
    frame_rate: float = 30.0  # as an editor's timeline gives it (the stream's average rate)
    kept: Kept | None = field(default=None, compare=False, repr=False)  # its packets, when read with keep=True


class Kept:
    """A clip's packets as its reading found them, for one copy: the join takes them
    instead of reading the file again. Taken once (a copy re-times them in place), so
    a second join of the same clip reads the file. The file stays open until then:
    the packets belong to its streams."""

    def __init__(self, packets: list[Packet], source: InputContainer, video: VideoStream, audio: AudioStream | None):
        self._packets: list[Packet] | None = packets
        self._source = source
        self.clocks = _Clocks(video, audio)

    def take(self) -> list[Packet] | None:
        packets, self._packets = self._packets, None
        return packets

    def close(self) -> None:
        self._packets = None
        self._source.close()


class _Clocks:
    """What a copy needs of an input's streams besides their packets."""

    def __init__(self, video: VideoStream, audio: AudioStream | None):
        self.video_index, self.video_time_base = video.index, video.time_base
        self.audio_time_base = audio.time_base if audio is not None else None
        self.audio = _AudioTicks.of(audio) if audio is not None else None


@dataclass(frozen=True)
class Concatenated:
    """What a join wrote, and how."""

    path: Path
    seconds: float  # the sum of the inputs' picture lengths
    inputs: tuple[float, ...]  # each input's picture length
    video: Mode  # copy | re-encode
    audio: Mode  # copy | re-encode | none (no input has sound)
    reasons: tuple[str, ...]  # why anything was re-encoded

    @property
    def copied(self) -> bool:
        return self.video == "copy" and self.audio != "re-encode"

    def describe(self) -> str:
        """'copied (…)', 're-encoded (…)' or 'video copied, audio re-encoded (…)'."""
        if self.copied:
            why = "all share one format" if len(self.inputs) > 1 else "one input"
            return f"copied ({why}{', no sound' if self.audio == 'none' else ''})"
        what = "re-encoded" if self.video == "re-encode" and self.audio != "copy" else f"video {_past(self.video)}, audio {_past(self.audio)}"
        return f"{what} ({'; '.join(self.reasons)})"


def _past(mode: Mode) -> str:
    return {"copy": "copied", "re-encode": "re-encoded", "none": "none"}[mode]


def concatenate(inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], labels: Sequence[str] | None = None) -> Concatenated:
    """Join ``inputs`` in order into the MP4 ``output``, written beside it first and
    renamed into place, so a reader never sees half a file; raises ConcatError."""
    paths = [Path(p) for p in inputs]
    names = list(labels) if labels is not None else [p.name for p in paths]
    return join_clips([read_clip(path, name) for path, name in zip(paths, names)], output)


def join_clips(clips: Sequence[Clip], output: str | os.PathLike[str]) -> Concatenated:
    """As ``concatenate``, of inputs already read (``read_clip``: a caller that checked
    its inputs that way need not read them twice)."""
    if not clips:
        raise ConcatError("nothing to join")
    video_reasons = _video_reasons(clips)
    audio_mode, audio_reasons = _audio_plan(clips)
    dest = Path(output)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = temporary_beside(dest, ".part")  # same folder: the rename is atomic; a name of this writer's own
    except OSError as error:
        raise ConcatError(f"writing {dest}: {error}") from None
    try:
        with av.open(os.fspath(partial), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            video, audio = _tracks(out, clips, bool(video_reasons), audio_mode)
            start = Fraction(0)
            for clip in clips:
                _join(clip, start, video, audio)
                start += clip.seconds
            video.finish()
            if audio is not None:
                audio.finish()
        put_in_place(partial, dest)
    except (av.FFmpegError, OSError) as error:
        raise ConcatError(f"writing {dest}: {error}") from None
    finally:
        partial.unlink(missing_ok=True)
    return Concatenated(
        path=dest,
        seconds=float(sum(c.seconds for c in clips)),
        inputs=tuple(float(c.seconds) for c in clips),
        video="re-encode" if video_reasons else "copy",
        audio=audio_mode,
        reasons=tuple(video_reasons + audio_reasons),
    )


# --- what the inputs are ------------------------------------------------------

# Opening a file decodes its first pictures to learn their pixel format; one
# decoder thread does it at less cost than a pool started for a few frames.
PROBE_OPTIONS = {"threads": "1"}
# Opening a file from its header only, no frame decoded to fill in what neither
# the copy nor a clip's facts use (the picture's pixel format). Stream times,
# sample rate and codec frame size come from an MP4's header all the same.
QUICK_OPEN = {"probesize": "32", "analyzeduration": "0"}
_ISO_FAMILY = "mov,mp4,m4a,3gp,3g2,mj2"


def read_clip(path: Path, label: str | None = None, *, keep: bool = False) -> Clip:
    """Formats and lengths of an input, from its packets; raises ConcatError.
    ``keep``: the clip holds its packets (``Clip.kept``), so a join that copies
    them reads the file once in all (the caller weighs the memory and open files)."""
    label = label or path.name
    try:
        with ExitStack() as open_until:
            source = open_until.enter_context(_open_to_read(path))
            clip = _read_clip(source, path, label, keep)
            if clip.kept is not None:
                open_until.pop_all()  # kept packets point at its streams: closed once they are copied
            return clip
    except (av.FFmpegError, OSError) as error:
        raise ConcatError(f"{label}: cannot read {path}: {error}") from None


def _open_to_read(path: Path) -> InputContainer:
    """The input, opened from its header where that says every fact a clip holds but the
    pixel format (an MP4 whose picture track carries its parameter sets, which imply it):
    no picture decoded, a third of the time a full opening takes. Fully otherwise."""
    name = os.fspath(path)
    if QUICK_OPEN is not None:
        source = av.open(name, options=QUICK_OPEN)
        try:
            if _header_suffices(source):
                return source
        except BaseException:
            source.close()
            raise
        source.close()
    return av.open(name, options=PROBE_OPTIONS)


def _header_suffices(source: InputContainer) -> bool:
    if source.format.name != _ISO_FAMILY or not source.streams.video:
        return False
    v = source.streams.video[0].codec_context
    if not (v.extradata and v.width and v.height):
        return False
    return all(a.codec_context.sample_rate and _frame_size(a.codec_context) > 0 for a in source.streams.audio[:1])


def _read_clip(source: InputContainer, path: Path, label: str, keep: bool = False) -> Clip:
    if not source.streams.video:
        raise ConcatError(f"{label}: {path} has no picture")
    v = source.streams.video[0]
    a = source.streams.audio[0] if source.streams.audio else None
    rate = v.guessed_rate or v.average_rate
    video = VideoFormat(v.codec_context.name, v.codec_context.width, v.codec_context.height, v.codec_context.pix_fmt, Fraction(rate) if rate else None, v.codec_context.extradata)
    # Times are summed in each stream's own ticks (integers: a file has thousands of
    # packets) and made seconds once at the end.
    v_tb = Fraction(v.time_base or Fraction(1, 90000))
    frame = (Fraction(1) / video.rate if video.rate else Fraction(1, 30)) / v_tb
    # The loop every packet of a cut goes through when read: locals only, no call per
    # packet where one can be avoided (a 20-shot episode has ~8,000 packets).
    v_index, v_start, v_end = v.index, None, 0  # the span the pictures cover, in their ticks
    a_ticks = _AudioTicks.of(a) if a is not None else None
    a_start, a_end, audio_packet = None, 0, 0  # the sound's span and its longest packet, in its ticks
    counts_samples = a_ticks is not None and a_ticks.per_sample == 1  # MP4's AAC: a packet's length is its duration
    frame_size = a_ticks.frame_size if a_ticks is not None else 0
    keyframe: bool | None = None
    frames = 0
    packets: list[Packet] = []
    keeping = packets.append if keep else None
    for packet in source.demux(*([v] + ([a] if a is not None else []))):
        if packet.size == 0:
            continue
        if keeping is not None:
            keeping(packet)
        pts = packet.pts
        if packet.stream_index == v_index:
            frames += 1
            if pts is None:
                continue
            if keyframe is None:
                keyframe = packet.is_keyframe
            end = pts + (packet.duration or frame)
            if v_start is None or pts < v_start:
                v_start = pts
            if end > v_end:
                v_end = end
        elif a_ticks is not None and pts is not None:
            duration = packet.duration or 0
            if counts_samples:
                length = duration if duration > frame_size else frame_size
            else:
                length = a_ticks.length(duration)
            if length > audio_packet:
                audio_packet = length
            end = pts + (duration or length)
            if a_start is None or pts < a_start:
                a_start = pts
            if end > a_end:
                a_end = end
    if v_start is None:
        raise ConcatError(f"{label}: {path} holds no pictures")
    v_begins, v_ends = v_start * v_tb, v_end * v_tb
    audio = None
    sound_starts = sound_ends = Fraction(0)
    if a is not None and a_ticks is not None and a_start is not None:
        cc = a.codec_context
        audio = AudioFormat(cc.name, cc.sample_rate, cc.layout.name, cc.layout.nb_channels, cc.extradata)
        sound_starts, sound_ends = a_start * a_ticks.time_base - v_begins, a_end * a_ticks.time_base - v_begins
    return Clip(
        path=path,
        label=label,
        video=video,
        start=v_begins,
        seconds=v_ends - v_begins,
        starts_on_keyframe=bool(keyframe),
        audio=audio,
        audio_start=sound_starts,
        audio_end=sound_ends,
        audio_packet=audio_packet * a_ticks.time_base if a_ticks is not None else Fraction(0),
        frames=frames,
        frame_rate=float(v.average_rate or v.guessed_rate or 30),
        kept=Kept(packets, source, v, a) if keep else None,
    )


class _AudioTicks:
    """What a sound packet decodes to, in its stream's ticks: a whole codec frame
    (AAC: 1024 samples), though the container may mark the last one shorter (the
    edit list's trim). Whole ticks where the stream counts samples (MP4's AAC does)."""

    def __init__(self, time_base: Fraction, rate: int, frame_size: int):
        self.time_base, self.rate, self.frame_size = time_base, rate, frame_size
        per_sample = 1 / (time_base * rate)  # ticks per sample
        self.per_sample: Fraction | int = int(per_sample) if per_sample.denominator == 1 else per_sample

    @classmethod
    def of(cls, stream: AudioStream) -> _AudioTicks:
        rate = stream.codec_context.sample_rate
        return cls(Fraction(stream.time_base or Fraction(1, rate)), rate, _frame_size(stream.codec_context))

    def length(self, duration: int | None) -> Fraction | int:
        if not duration:
            return self.frame_size * self.per_sample
        if self.per_sample == 1:
            return max(self.frame_size, duration)
        samples = max(self.frame_size, round(duration * self.time_base * self.rate))
        return samples * self.per_sample


def _frame_size(codec: AudioCodecContext) -> int:
    """Samples per sound packet: FFmpeg's figure once it has seen a packet, else what the
    stream's AAC config says (an MP4 opened from its header, its first packet a picture);
    0 when neither knows."""
    if codec.frame_size:
        return codec.frame_size
    return (aac_config.frame_size(codec.extradata) or 0) if codec.name == "aac" else 0


def _whole(value: Fraction) -> Fraction | int:
    """An int where the fraction is one: int arithmetic is many times faster."""
    return value.numerator if value.denominator == 1 else value


def _video_reasons(clips: Sequence[Clip]) -> list[str]:
    """Why the pictures cannot be copied; none when they can."""
    first = clips[0]
    reasons: list[str] = []
    theirs: VideoFormat | None = None  # the first's, with its pixel format: learnt once, if a message needs it
    for clip in clips[1:]:
        if clip.video.copies_with(first.video):
            continue
        ours, theirs = _with_pixels(clip), theirs or _with_pixels(first)
        if (ours.codec, ours.width, ours.height, ours.pix_fmt, ours.rate) != (theirs.codec, theirs.width, theirs.height, theirs.pix_fmt, theirs.rate):
            reasons.append(f"{clip.label} is {ours.describe()}, {first.label} {theirs.describe()}")
        else:  # one parameter set describes a copied track: different encoder settings cannot share it
            reasons.append(f"{clip.label} was encoded with other {clip.video.codec} parameters than {first.label}")
    reasons += [f"{c.label} does not start on a key frame" for c in clips if not c.starts_on_keyframe]
    return reasons


def _with_pixels(clip: Clip) -> VideoFormat:
    """The clip's picture format with its pixel format, which reading its header left
    unknown: learnt here, where a message saying why a copy cannot be made needs it."""
    if clip.video.pix_fmt is not None:
        return clip.video
    try:
        with av.open(os.fspath(clip.path), options=PROBE_OPTIONS) as source:
            return replace(clip.video, pix_fmt=source.streams.video[0].codec_context.pix_fmt)
    except (av.FFmpegError, OSError, IndexError):
        return clip.video


def _audio_plan(clips: Sequence[Clip]) -> tuple[Mode, list[str]]:
    sounding = [c for c in clips if c.audio is not None]
    if not sounding:
        return "none", []
    first = sounding[0]
    assert first.audio is not None
    reasons = [f"{c.label} has no sound, so silence fills its span" for c in clips if c.audio is None]
    for clip in sounding[1:]:
        if clip.audio == first.audio:
            continue
        assert clip.audio is not None
        if clip.audio.describe() != first.audio.describe():
            reasons.append(f"{clip.label}'s sound is {clip.audio.describe()}, {first.label}'s {first.audio.describe()}")
        else:
            reasons.append(f"{clip.label}'s sound was encoded with other {clip.audio.codec} parameters than {first.label}'s")
    for clip in sounding:  # copied packets are laid end to end: each input's sound must span its picture
        if clip.audio_start > clip.audio_packet:
            reasons.append(f"{clip.label}'s sound starts {float(clip.audio_start):.1f} s after its picture")
        elif clip.audio_start < -3 * clip.audio_packet:  # more than an encoder's priming (AAC: 1 to 2 packets)
            reasons.append(f"{clip.label}'s sound starts {float(-clip.audio_start):.1f} s before its picture")
        elif clip.audio_end < clip.seconds - clip.audio_packet:
            reasons.append(f"{clip.label}'s sound stops {float(clip.seconds - clip.audio_end):.1f} s before its picture")
    return ("re-encode" if reasons else "copy"), reasons


# --- writing ------------------------------------------------------------------


class _Track(Protocol):
    def open_clip(self, clip: Clip, start: Fraction, source: InputContainer) -> None: ...
    def packet(self, packet: Packet) -> None: ...
    def close_clip(self) -> None: ...
    def finish(self) -> None: ...


def _tracks(out: OutputContainer, clips: Sequence[Clip], encode_video: bool, audio_mode: Mode) -> tuple[_Track, _Track | None]:
    """The output's tracks, picture first (players expect it); copied ones take the first
    input's stream parameters, from its header where that says them (``_open_to_read``)."""
    with _open_to_read(clips[0].path) as first:
        video: _Track = _VideoEncoder(out, clips[0].video) if encode_video else _Copier(out, first.streams.video[0])
        if audio_mode == "none":
            return video, None
        if audio_mode == "copy":
            return video, _Copier(out, first.streams.audio[0])
    formats = [c.audio for c in clips if c.audio is not None]
    widest = max(formats, key=lambda f: f.channels)  # mono beside stereo: keep the stereo
    rate = formats[0].rate if formats[0].rate in AAC_RATES else 48000
    return video, _AudioEncoder(out, rate, widest.layout)



def _open_for(clip: Clip, video: _Track, audio: _Track | None) -> InputContainer:
    """The input, opened quickly where every track copies and its header holds what
    the copy uses (an MP4 whose streams are the ones read before); fully otherwise."""
    path = os.fspath(clip.path)
    if isinstance(video, _Copier) and (audio is None or isinstance(audio, _Copier)):
        source = av.open(path, options=QUICK_OPEN)
        if _header_says(source, clip, audio is not None):
            return source
        source.close()
    return av.open(path)


def _header_says(source: InputContainer, clip: Clip, sound: bool) -> bool:
    """The header says what reading it does (``_header_suffices``), of the streams read before."""
    if not _header_suffices(source):
        return False
    v = source.streams.video[0].codec_context
    if (v.name, v.width, v.height) != (clip.video.codec, clip.video.width, clip.video.height):
        return False
    if not sound:
        return True
    if not source.streams.audio or clip.audio is None:
        return False
    a = source.streams.audio[0].codec_context
    return (a.name, a.sample_rate) == (clip.audio.codec, clip.audio.rate)


def _join(clip: Clip, start: Fraction, video: _Track, audio: _Track | None) -> None:
    """Feed one input's packets to the tracks; ``start`` is where it begins in the output."""
    copier, sound_copier = video if isinstance(video, _Copier) else None, audio if isinstance(audio, _Copier) else None
    copying = copier is not None and (audio is None or sound_copier is not None)
    try:
        kept = clip.kept.take() if copying and clip.kept is not None else None
        if kept is not None and clip.kept is not None and copier is not None:
            try:
                _copy(kept, clip.kept.clocks, clip, start, copier, sound_copier)
            finally:
                clip.kept.close()
            return
        with _open_for(clip, video, audio) as source:
            v = source.streams.video[0]
            a = source.streams.audio[0] if audio is not None and source.streams.audio else None
            packets = source.demux(*([v] if a is None else [v, a]))
            if copying and copier is not None:
                _copy(packets, _Clocks(v, a), clip, start, copier, sound_copier)
                return
            video.open_clip(clip, start, source)
            if audio is not None:
                audio.open_clip(clip, start, source)
            for packet in packets:
                if packet.stream_index == v.index:
                    video.packet(packet)
                elif audio is not None:
                    audio.packet(packet)
            video.close_clip()
            if audio is not None:
                audio.close_clip()
    except av.FFmpegError as error:
        raise ConcatError(f"{clip.label}: {clip.path}: {error}") from None


def _copy(packets: Iterable[Packet], clocks: _Clocks, clip: Clip, start: Fraction, video: _Copier, audio: _Copier | None) -> None:
    """One input's packets into the copied tracks: the loop every packet of a cut goes through."""
    video.open_copy(clip, start, clocks.video_time_base, None)
    if audio is not None:
        audio.open_copy(clip, start, clocks.audio_time_base, clocks.audio)
    video_index, put_video = clocks.video_index, video.packet
    put_audio = audio.packet if audio is not None else None
    for packet in packets:
        if packet.stream_index == video_index:
            put_video(packet)
        elif put_audio is not None:
            put_audio(packet)


def _mux(out: OutputContainer, packets: Iterable[Packet]) -> None:
    for packet in packets:
        out.mux(packet)


class _Copier:
    """Packets copied as they are, re-timed so each input starts where the last ended.

    Pictures keep their own times. Sound packets are laid end to end (one gapless
    track, what players expect) and each input's last ones are dropped or kept so
    that its sound ends as near as can be to where its picture ends: within half a
    packet (AAC at 48 kHz: 11 ms), so sound never drifts from picture however many
    inputs there are. An input's encoder priming (AAC: 21 ms of silence) stays,
    which is what a copy costs against a re-encode.
    """

    def __init__(self, out: OutputContainer, template: VideoStream | AudioStream):
        self.mux = out.mux_one
        self.kind = template.type
        self.stream = out.add_stream_from_template(template)
        self.time_base = Fraction(template.time_base or Fraction(1, 90000))
        self.last_dts: int | None = None
        # Times in the output's ticks: whole numbers where the inputs' clocks are the
        # output's (the common case), so thousands of packets cost no fraction arithmetic.
        self.cursor: Fraction | int | None = None  # sound: where the next packet goes
        self.shift: Fraction | int = 0
        self.end2: Fraction | int = 0  # twice where this input's picture ends
        self.scale: Fraction | int = 1  # output ticks per input tick
        self.done = False
        self.restamp = False  # the input's ticks are not the output's: packets say which they are in
        self.samples = False
        self.sound: _AudioTicks | None = None

    def open_clip(self, clip: Clip, start: Fraction, source: InputContainer) -> None:
        if self.kind == "audio":
            stream = source.streams.audio[0]
            self.open_copy(clip, start, stream.time_base, _AudioTicks.of(stream))
        else:
            self.open_copy(clip, start, source.streams.video[0].time_base, None)

    def open_copy(self, clip: Clip, start: Fraction, time_base: Fraction | None, sound: _AudioTicks | None) -> None:
        """The next input, its stream's ticks ``time_base``; ``sound`` for the sound track."""
        self.scale = _whole(Fraction(time_base or self.time_base) / self.time_base)
        self.shift = _whole((start - clip.start) / self.time_base)
        self.end2 = _whole(2 * (start + clip.seconds) / self.time_base)
        self.done = False
        self.restamp = not time_base or Fraction(time_base) != self.time_base
        self.sound = sound
        # Sound counted in samples on the output's clock (MP4's AAC): a packet's length is
        # its duration, at least a codec frame; worked out here rather than by _AudioTicks.
        self.samples = sound is not None and sound.per_sample == 1 and self.scale == 1

    def packet(self, packet: Packet) -> None:
        pts = packet.pts
        if pts is None or self.done or packet.size == 0:
            return
        scale, shift, sound = self.scale, self.shift, self.sound
        if sound is None:
            dts = packet.dts
            out_pts = round(pts * scale + shift)
            out_dts = round(dts * scale + shift) if dts is not None else out_pts
            duration = round((packet.duration or 0) * scale)
        else:
            duration = packet.duration
            if self.samples:
                length = duration if duration and duration > sound.frame_size else sound.frame_size
            else:
                length = sound.length(duration) * scale
            if self.cursor is None:
                self.cursor = pts * scale + shift  # the first input's priming stays before zero: the MP4's edit list hides it
            if 2 * self.cursor + length > self.end2:
                self.done = True  # the rest of this input's sound lies past its picture
                return
            out_pts = out_dts = round(self.cursor)
            duration = round(length)
            self.cursor += length
        last = self.last_dts
        if last is not None and out_dts <= last:  # the muxer takes strictly rising dts only
            out_dts = last + 1
            out_pts = max(out_pts, out_dts)
        self.last_dts = out_dts
        packet.stream = self.stream
        if self.restamp:  # else demuxing stamped the packet with these very ticks
            packet.time_base = self.time_base
        packet.pts, packet.dts, packet.duration = out_pts, out_dts, duration
        self.mux(packet)

    def close_clip(self) -> None:
        pass

    def finish(self) -> None:
        pass


class _VideoEncoder:
    """Pictures decoded, fitted into the first input's frame (scaled, letterboxed
    when the shape differs) and encoded as H.264 at the first input's frame rate:
    frame slots come from one grid over the whole output, each filled by the
    picture showing at that moment, so lengths add up without drift."""

    def __init__(self, out: OutputContainer, first: VideoFormat):
        self.out = out
        self.width, self.height = first.width - first.width % 2, first.height - first.height % 2  # yuv420p wants even sides
        self.rate = first.rate or Fraction(30)
        self.stream = cast(VideoStream, out.add_stream(VIDEO_CODEC, rate=self.rate, options=dict(X264_OPTIONS)))
        self.stream.width, self.stream.height, self.stream.pix_fmt = self.width, self.height, PIXEL_FORMAT
        self.time_base = 1 / self.rate
        self.index = 0  # the next frame slot
        self.end_slot = 0
        self.start = self.clip_start = Fraction(0)
        self.graph: av.filter.Graph | None = None
        self.held: VideoFrame | None = None

    def open_clip(self, clip: Clip, start: Fraction, source: InputContainer) -> None:
        stream = source.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        self.start, self.clip_start, self.held = start, clip.start, None
        self.end_slot = round((start + clip.seconds) * self.rate)
        self.graph = _fit_graph(stream, self.width, self.height)

    def packet(self, packet: Packet) -> None:
        for frame in packet.decode():
            if isinstance(frame, VideoFrame):
                self._frame(frame)

    def _frame(self, frame: VideoFrame) -> None:
        assert self.graph is not None
        at = frame.pts * Fraction(frame.time_base) - self.clip_start if frame.pts is not None and frame.time_base else None
        self.graph.vpush(frame)
        fitted = self.graph.vpull()
        if at is None:  # no time: take the pictures as they come
            at = (self.index - self.start * self.rate + 1) / self.rate
        if self.held is None:
            self.held = fitted
        # Slots before this picture's moment (to the nearest slot) show the one held.
        while self.index < self.end_slot and Fraction(self.index) / self.rate - self.start < at - self.time_base / 2:
            self._emit(self.held)
        self.held = fitted

    def close_clip(self) -> None:
        if self.held is None:
            raise av.InvalidDataError(0, "no picture could be decoded")
        while self.index < self.end_slot:
            self._emit(self.held)

    def _emit(self, frame: VideoFrame) -> None:
        frame.pts, frame.time_base = self.index, self.time_base
        frame.pict_type = PictureType.NONE  # the source's frame types must not steer the encoder
        _mux(self.out, self.stream.encode(frame))
        self.index += 1

    def finish(self) -> None:
        _mux(self.out, self.stream.encode(None))


def _fit_graph(stream: VideoStream, width: int, height: int) -> av.filter.Graph:
    """scale to fit, pad to the frame (centred, black), square pixels, yuv420p."""
    graph = av.filter.Graph()
    graph.link_nodes(
        graph.add_buffer(template=stream),
        graph.add("scale", f"{width}:{height}:force_original_aspect_ratio=decrease:force_divisible_by=2"),
        graph.add("pad", f"{width}:{height}:(ow-iw)/2:(oh-ih)/2:black"),
        graph.add("setsar", "1"),
        graph.add("format", PIXEL_FORMAT),
        graph.add("buffersink"),
    ).configure()
    return graph


class _AudioEncoder:
    """Sound decoded, converted to one format and encoded as one AAC track: each
    input fills exactly its picture's span on a sample grid over the whole output,
    its own sound cut or padded to fit, silence where it has none."""

    def __init__(self, out: OutputContainer, rate: int, layout: str):
        self.out = out
        self.rate, self.layout = rate, layout
        self.stream = cast(AudioStream, out.add_stream(AUDIO_CODEC, rate=rate))
        self.stream.layout = layout
        self.format = self.stream.codec_context.format.name  # what the encoder takes (fltp)
        self.queue = av.AudioFifo()  # samples waiting for a whole encoder frame
        self.staged = av.AudioFifo()  # this input's sound, before it is cut to its span
        self.written = 0  # samples queued so far: the grid position
        self.encoded = 0
        self.end = 0  # this input's last sample (exclusive) on the grid
        self.skip = 0  # samples of this input's sound before its picture starts
        self.started = False
        self.clip_start = Fraction(0)
        self.resampler: av.AudioResampler | None = None

    def open_clip(self, clip: Clip, start: Fraction, source: InputContainer) -> None:
        self.end = round((start + clip.seconds) * self.rate)
        self.clip_start, self.started, self.skip = clip.start, False, 0
        self.staged = av.AudioFifo()
        self.resampler = av.AudioResampler(format=self.format, layout=self.layout, rate=self.rate)

    def packet(self, packet: Packet) -> None:
        for frame in packet.decode():
            if isinstance(frame, av.AudioFrame):
                self._frame(frame)

    def _frame(self, frame: av.AudioFrame) -> None:
        assert self.resampler is not None
        if not self.started:  # line the sound up with the picture
            self.started = True
            if frame.pts is not None and frame.time_base:
                lead = round((frame.pts * Fraction(frame.time_base) - self.clip_start) * self.rate)
                if lead > 0:
                    self._silence(lead)
                else:
                    self.skip = -lead
        for converted in self.resampler.resample(frame):
            self._stage(converted)

    def _stage(self, frame: av.AudioFrame) -> None:
        frame.pts = None  # the FIFO checks continuity of timed frames; the grid times them instead
        self.staged.write(frame)
        if self.skip:
            dropped = self.staged.read(min(self.skip, self.staged.samples))
            self.skip -= dropped.samples if dropped is not None else 0
        room = self.end - self.written
        if self.staged.samples and room > 0:
            taken = self.staged.read(min(room, self.staged.samples))
            if taken is not None:
                self._queue(taken)
        if self.written >= self.end:
            self.staged.read()  # past the picture's end: not needed

    def close_clip(self) -> None:
        assert self.resampler is not None
        for converted in self.resampler.resample(None):
            self._stage(converted)
        self._silence(self.end - self.written)

    def _silence(self, samples: int) -> None:
        samples = min(samples, self.end - self.written)
        if samples <= 0:
            return
        frame = av.AudioFrame(format=self.format, layout=self.layout, samples=samples)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate = self.rate
        self._queue(frame)

    def _queue(self, frame: av.AudioFrame) -> None:
        frame.pts = None  # frames read from a FIFO carry its times; the grid is what counts
        self.queue.write(frame)
        self.written += frame.samples
        size = self.stream.codec_context.frame_size or 1024
        while self.queue.samples >= size:
            self._encode(self.queue.read(size))

    def _encode(self, frame: av.AudioFrame | None) -> None:
        if frame is None:
            return
        frame.pts, frame.time_base = self.encoded, Fraction(1, self.rate)
        self.encoded += frame.samples
        _mux(self.out, self.stream.encode(frame))

    def finish(self) -> None:
        if self.queue.samples:
            self._encode(self.queue.read())
        _mux(self.out, self.stream.encode(None))
