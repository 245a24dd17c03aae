"""A hostile corpus: files that are not files, media that only looks like media,
numbers that are not numbers, and names templates cannot hold.

Each case must end `r2v validate` and `r2v plan` with exit 2 and one placed
message (file:line:col, naming the field), never a traceback and never a hang:
media cases run the CLI in a subprocess with a timeout, so a hang fails the test.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from r2v_pipeline import cli
from r2v_pipeline.diagnostics import Diagnostics, Position
from r2v_pipeline.manifest.model import Source
from r2v_pipeline.manifest.schema import manifest_schema
from r2v_pipeline.media import synth
from r2v_pipeline.media.probe import MediaKind, NotAFile, TooLarge, file_sha256, probe_bytes, probe_file
from r2v_pipeline.plan import sandbox
from r2v_pipeline.plan.media import MediaFiles, largest_media_bytes

REPO = Path(__file__).resolve().parent.parent
CLI_TIMEOUT_S = 60  # far above a normal run (about a second): only a hang reaches it

PNG = synth.image_bytes(256, 256, "png")
JPEG = synth.image_bytes(320, 240, "jpeg")
MP4 = synth.video_bytes(240, 240, 3.0)
WAV = synth.audio_bytes(2.0, "wav")
MP3 = synth.audio_bytes(2.0, "mp3")


# --- the corpus ------------------------------------------------------------------

Maker = Callable[[Path], str]  # puts the hostile file in a folder; returns the path a manifest names


def _bytes(name: str, data: bytes) -> Maker:
    def make(folder: Path) -> str:
        (folder / name).write_bytes(data)
        return name

    return make


def _symlink_to_dev_zero(folder: Path) -> str:
    os.symlink("/dev/zero", folder / "zero.png")
    return "zero.png"


def _dev_urandom(folder: Path) -> str:
    return "/dev/urandom"


def _fifo(folder: Path) -> str:
    os.mkfifo(folder / "pipe.mp4")
    return "pipe.mp4"


def _directory(folder: Path) -> str:
    (folder / "folder.png").mkdir()
    return "folder.png"


def _socket(folder: Path) -> str:
    path = folder / "s.png"
    if not hasattr(socket, "AF_UNIX") or len(str(path)) > 100:
        pytest.skip("no short enough path for a Unix socket here")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))  # the socket file stays after close
    return "s.png"


def _sparse(size: int) -> Maker:
    def make(folder: Path) -> str:
        with open(folder / "huge.mp4", "wb") as f:
            f.truncate(size)  # sparse: no disk is used
        return "huge.mp4"

    return make


@dataclass(frozen=True)
class MediaCase:
    field: str  # image | video | voice
    make: Maker
    says: str  # a regular expression the message must match


MEDIA_CASES: dict[str, MediaCase] = {
    # files that are not regular files
    "symlink-to-dev-zero": MediaCase("image", _symlink_to_dev_zero, r"links to /dev/zero, which is a character device, not a media file"),
    "dev-urandom": MediaCase("video", _dev_urandom, r"is a character device, not a media file"),
    "fifo": MediaCase("video", _fifo, r"is a FIFO, not a media file"),
    "directory": MediaCase("image", _directory, r"is a folder, not a media file"),
    "socket": MediaCase("image", _socket, r"is a socket, not a media file"),
    "over-every-limit": MediaCase("video", _sparse(150_000_000), r"is 150 MB; no provider takes a media file over 100 MB"),
    # lookalikes
    "png-signature-then-text": MediaCase("image", _bytes("fake.png", b"\x89PNG\r\n\x1a\n" + b"just words, no pixels here"), r"a PNG signature followed by text"),
    "jpeg-header-only": MediaCase("image", _bytes("head.jpg", JPEG[:200]), r"a JPEG file whose picture does not decode"),
    "truncated-png": MediaCase("image", _bytes("cut.png", PNG[: len(PNG) * 6 // 10]), r"a PNG file whose picture does not decode"),
    "truncated-jpeg": MediaCase("image", _bytes("cut.jpg", JPEG[: len(JPEG) * 6 // 10]), r"a JPEG file whose picture does not decode"),
    "text-as-image": MediaCase("image", _bytes("notes.png", b"a shopping list\n- milk\n"), r"text, not an image, video or audio file"),
    "empty-image": MediaCase("image", _bytes("empty.png", b""), r"an empty file"),
    "truncated-mp4": MediaCase("video", _bytes("cut.mp4", MP4[: len(MP4) * 4 // 10]), r"ends at 1\.\d s of its declared 3\.0 s: truncated\?"),
    "mp4-audio-only-as-video": MediaCase("video", _bytes("sound.mp4", synth.audio_bytes(2.0, "mp4")), r"it is a 2\.0 s M4A audio, not a video"),
    "image-as-video": MediaCase("video", _bytes("still.mp4", PNG), r"it is a 256×256 PNG image, not a video"),
    "wav-header-without-samples": MediaCase("voice", _bytes("silent.wav", WAV[: WAV.index(b"data") + 8]), r"a WAV header with no audio after it"),
    "wav-cut-inside-its-header": MediaCase("voice", _bytes("stub.wav", WAV[:44]), r"starts like a WAV but does not read as one"),
    "truncated-wav": MediaCase("voice", _bytes("cut.wav", WAV[: len(WAV) // 3]), r"a WAV file that ends at 0\.\d s of its declared 2\.0 s"),
    "mp3-that-is-text": MediaCase("voice", _bytes("talk.mp3", b"ID3 this is a transcript, not a recording\n" * 4), r"starts like an MP3 but does not read as one"),
    "truncated-mp3": MediaCase("voice", _bytes("cut.mp3", MP3[: len(MP3) // 3]), r"an MP3 file that ends at 0\.\d s of its declared 2\.0 s"),
    "noise-as-voice": MediaCase("voice", _bytes("noise.wav", bytes(range(256)) * 8), r"not an image, video or audio file"),
}

# The pre-existing "wrong kind" message names the file, not the field (tests/test_planner.py pins it).
_FIELD_UNNAMED = {"mp4-audio-only-as-video", "image-as-video"}


def _media_manifest(case: MediaCase, hostile: str) -> str:
    if case.field == "voice":
        entry = f"ref:\n    image: ok.png\n    voice: {hostile}"
    else:
        entry = f"ref:\n    {case.field}: {hostile}"
    return f'series: hostile\ncast:\n  {entry}\nshots:\n  - id: one\n    prompt: "{{{{ ref }}}} waves"\n'


def _position_of(text: str, value: str) -> str:
    """line:col of the first ``: value`` in a manifest."""
    index = text.index(f": {value}") + 2
    line = text.count("\n", 0, index) + 1
    return f"{line}:{index - text.rfind(chr(10), 0, index)}"


# One process runs both commands (a Python start-up costs about a second); with
# R2V_DEBUG an internal error escapes as a traceback instead of exit 3.
_BOTH_COMMANDS = """
import contextlib, io, json, sys
from r2v_pipeline.cli import main
results = {}
for command in ("validate", "plan"):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([command, sys.argv[1]])
    results[command] = [code, err.getvalue()]
print(json.dumps(results))
"""


def _validate_and_plan(folder: Path, manifest: str) -> dict[str, tuple[int, str]]:
    """Both commands in a process of their own, so a hang fails the test at the timeout."""
    env = {**os.environ, "R2V_DEBUG": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _BOTH_COMMANDS, manifest],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return {command: (code, err) for command, (code, err) in json.loads(done.stdout).items()}


@pytest.mark.parametrize("name", list(MEDIA_CASES))
def test_hostile_media_is_refused_at_its_field(name: str, tmp_path: Path) -> None:
    case = MEDIA_CASES[name]
    (tmp_path / "ok.png").write_bytes(PNG)
    hostile = case.make(tmp_path)
    text = _media_manifest(case, hostile)
    (tmp_path / "m.yaml").write_text(text)
    where = f"m.yaml:{_position_of(text, hostile)}: {re.escape(hostile)}: "
    for command, (code, err) in _validate_and_plan(tmp_path, "m.yaml").items():
        assert code == 2, (command, err)
        assert "internal error" not in err
        assert re.search(where + r".*" + case.says, err), err
        if name not in _FIELD_UNNAMED:
            assert f"(cast.ref.{case.field})" in err, err


# --- numbers and names --------------------------------------------------------------

BASE = """\
series: hostile
cast:
  ada: {image: ok.png}
shots:
  - id: one
    prompt: "{{ ada }} waves"
"""

# extra YAML appended to BASE -> (field as messages name it, what the message says)
NUMBER_CASES: dict[str, tuple[str, str, str]] = {
    "budget-seconds-nan": ("budget: {seconds: .nan}", "budget.seconds", "NaN"),
    "budget-seconds-negative": ("budget: {seconds: -5}", "budget.seconds", "must be above 0"),
    "budget-seconds-minus-inf": ("budget: {seconds: -.inf}", "budget.seconds", "minus infinity"),
    "budget-money-inf": ("budget: {money: .inf}", "budget.money", "infinity"),
    "budget-money-overflow": ("budget: {money: 1.0e+400}", "budget.money", "infinity"),
    "budget-seconds-huge": ("budget: {seconds: 100000000000000000000000000000000}", "budget.seconds", "must be at most"),
    "price-nan": ("prices: {currency: USD, dashscope: {wan2.7-r2v: {1080P: .nan}}}", "prices.dashscope.wan2.7-r2v.1080P", "NaN"),
    "price-inf": ("prices: {currency: USD, dashscope: {wan2.7-r2v: {1080P: .inf}}}", "prices.dashscope.wan2.7-r2v.1080P", "infinity"),
    "price-negative": ("prices: {currency: USD, dashscope: {wan2.7-r2v: {720P: -0.1}}}", "prices.dashscope.wan2.7-r2v.720P", "at least 0"),
    "price-too-large-for-money": ("prices: {currency: USD, dashscope: {wan2.7-r2v: {1080P: 1.0e+30}}}", "prices.dashscope.wan2.7-r2v.1080P", "at most"),
    "split-price-nan": (
        "prices: {currency: USD, dashscope: {wan2.6-r2v-flash: {720P: {audio: .nan, silent: 0.1}}}}",
        "prices.dashscope.wan2.6-r2v-flash.720P.audio",
        "NaN",
    ),
    "quota-nan": ("provider: {quota: {submits_per_second: .nan}}", "provider.quota.submits_per_second", "NaN"),
    "quota-inf": ("provider: {quota: {queries_per_second: .inf}}", "provider.quota.queries_per_second", "infinity"),
    "quota-negative": ("provider: {quota: {in_progress: -1}}", "provider.quota.in_progress", "at least 1"),
}

CAST_DURATION = """\
series: hostile
cast:
  far: {{video: "https://cdn.test/far.mp4", duration: {value}}}
shots:
  - id: one
    prompt: "{{{{ far }}}} waves"
"""

NAME_CASES: dict[str, tuple[str, str, str]] = {
    "cast-dunder-class": (BASE.replace("  ada:", "  __class__:").replace("{{ ada }}", "{{ __class__ }}"), 'cast key "__class__"', "must not start with '_'"),
    "cast-underscore": (BASE.replace("  ada:", "  _ada:").replace("{{ ada }}", "{{ _ada }}"), 'cast key "_ada"', "must not start with '_'"),
    "var-dunder-init": (BASE + "vars: {__init__: 1}\n", 'vars key "__init__"', "must not start with '_'"),
    "shot-var-underscore": (BASE.replace('waves"', 'waves"\n    vars: {_mood: calm}'), 'shots[one].vars key "_mood"', "must not start with '_'"),
    "shot-id-underscore": (BASE.replace("id: one", "id: _one"), 'shots[_one].id "_one"', "must be letters, digits"),
    "cast-named-loop": (BASE.replace("  ada:", "  loop:").replace("{{ ada }}", "{{ loop }}"), 'cast key "loop"', "reserved in templates"),
    "cast-named-none": (BASE.replace("  ada:", '  "none":').replace("{{ ada }}", "{{ none }}"), 'cast key "none"', "reserved in templates"),
    "var-named-range": (BASE + "vars: {range: 3}\n", 'vars key "range"', "reserved in templates"),
}


def _cli_in_process(folder: Path, command: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main([command, "m.yaml"])
    return code, capsys.readouterr().err


def _assert_refused(folder: Path, text: str, field: str, says: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    (folder / "ok.png").write_bytes(PNG)
    (folder / "m.yaml").write_text(text)
    monkeypatch.chdir(folder)
    for command in ("validate", "plan"):
        code, err = _cli_in_process(folder, command, capsys)
        assert code == 2, (command, err)
        assert "Traceback" not in err and "internal error" not in err
        assert re.search(rf"m\.yaml:\d+:\d+: {re.escape(field)}.*{re.escape(says)}", err), err


@pytest.mark.parametrize("name", list(NUMBER_CASES))
def test_numbers_that_are_not_money_or_seconds_are_refused(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    extra, field, says = NUMBER_CASES[name]
    _assert_refused(tmp_path, BASE + extra + "\n", field, says, capsys, monkeypatch)


@pytest.mark.parametrize(("value", "says"), [(".nan", "NaN"), (".inf", "infinity"), ("-2", "above 0"), ("1.0e+30", "at most")])
def test_a_stated_video_length_must_be_a_real_length(value: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    _assert_refused(tmp_path, CAST_DURATION.format(value=value), "cast.far.duration", says, capsys, monkeypatch)


@pytest.mark.parametrize("name", list(NAME_CASES))
def test_names_templates_cannot_hold_are_refused(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    text, field, says = NAME_CASES[name]
    _assert_refused(tmp_path, text, field, says, capsys, monkeypatch)


def test_reserved_names_cover_what_the_template_code_sets_aside() -> None:
    """sandbox.py drops these from the names a template reads; a cast member so named
    would silently never be sent."""
    reserved = set(manifest_schema()["$defs"]["name"]["allOf"][1]["not"]["enum"])
    assert sandbox._GLOBALS | sandbox._BUILTIN_NAMES <= reserved


def test_non_finite_numbers_anywhere_are_refused_once(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    text = BASE + "vars: {x: .nan}\nprices: {currency: USD, dashscope: {wan2.7-r2v: {1080P: .inf}}}\n"
    _assert_refused(tmp_path, text, "vars.x", "NaN", capsys, monkeypatch)
    code, err = _cli_in_process(tmp_path, "validate", capsys)
    assert err.count("must be finite") == 2 and "at most" not in err  # no second message for the same value


# --- what stays accepted --------------------------------------------------------------


def test_a_symlink_to_a_real_file_is_fine(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "real.png").write_bytes(PNG)
    os.symlink("real.png", tmp_path / "ok.png")
    (tmp_path / "m.yaml").write_text(BASE)
    monkeypatch.chdir(tmp_path)
    assert _cli_in_process(tmp_path, "validate", capsys) == (0, "")


@pytest.mark.parametrize(
    ("data", "describe"),
    [
        (PNG, "a 256×256 PNG image"),
        (JPEG, "a 320×240 JPEG image"),
        (synth.image_bytes(320, 240, "webp"), "a 320×240 WEBP image"),
        (synth.image_bytes(320, 240, "bmp"), "a 320×240 BMP image"),
        (MP4, "a 3.0 s MP4 video"),
        (synth.video_bytes(160, 160, 1.0, container="mov"), "a 1.0 s MOV video"),
        (synth.video_bytes(160, 160, 2.0, audio=False), "a 2.0 s MP4 video"),
        (WAV, "a 2.0 s WAV audio"),
        (MP3, "a 2.0 s MP3 audio"),
    ],
)
def test_real_media_is_still_what_it_was(data: bytes, describe: str) -> None:
    assert probe_bytes(data).describe() == describe


def test_the_example_series_media_probes_as_before() -> None:
    seen = {p.name: probe_file(p, max_bytes=largest_media_bytes()).describe() for p in sorted((REPO / "manifests/lighthouse/media").iterdir())}
    assert seen == {
        "ada-voice.wav": "a 1.5 s WAV audio",
        "ada.png": "a 320×400 PNG image",
        "gull.webp": "a 320×320 WEBP image",
        "harbour-dawn.png": "a 480×270 PNG image",
        "lamp-room.jpg": "a 480×270 JPEG image",
        "milo-voice.mp3": "a 2.0 s MP3 audio",
        "milo.mp4": "a 3.0 s MP4 video",
        "storm-board.png": "a 480×480 PNG image",
    }


# --- the probe's own bounds -----------------------------------------------------------


def test_the_read_stops_at_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(MP4)
    with pytest.raises(TooLarge) as raised:
        probe_file(path, max_bytes=len(MP4) - 1)
    assert (raised.value.size, raised.value.limit) == (len(MP4), len(MP4) - 1)
    assert probe_file(path, max_bytes=len(MP4)).kind == "video"


def test_the_largest_limit_is_what_providers_take() -> None:
    assert largest_media_bytes() == 100_000_000


def test_a_fifo_is_never_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.wav")
    with pytest.raises(NotAFile, match="is a FIFO"):
        probe_file(tmp_path / "pipe.wav")
    with pytest.raises(NotAFile, match="is a FIFO"):
        file_sha256(tmp_path / "pipe.wav")


def test_a_picture_too_large_to_decode_safely_is_refused_without_decoding() -> None:
    """A decompression bomb: 12000×12000 grey pixels in a few hundred kilobytes."""
    info = probe_bytes(_grey_png(12000, 12000))
    assert info.kind is None and info.problem is not None and "megapixels" in info.problem


def _grey_png(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    pack = zlib.compressobj(9)
    rows = b"".join(pack.compress(b"\0" * (width + 1)) for _ in range(height)) + pack.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


# --- random bytes ------------------------------------------------------------------------

# Real files and real signatures, so that random tails reach the demuxers and decoders.
_SEEDS = [PNG, JPEG, MP4, WAV, MP3]
_HEADS = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"ID3\x04\x00", b"\x00\x00\x00\x18ftypisom", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBPVP8 "]

_random = st.builds(lambda head, tail: head + tail, st.sampled_from(_HEADS), st.binary(max_size=4096))
_mutated = st.builds(
    lambda seed, cut, edits: _mutate(seed, cut, edits),
    st.sampled_from(_SEEDS),
    st.floats(0.0, 1.0),
    st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=8),
)


def _mutate(seed: bytes, cut: float, edits: list[tuple[float, int]]) -> bytes:
    data = bytearray(seed[: max(1, int(len(seed) * cut))])
    for where, value in edits:
        data[min(len(data) - 1, int(len(data) * where))] = value
    return bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=_random | _mutated, expect=st.sampled_from(["image", "video", "audio"]))
def test_random_bytes_are_refused_or_accepted_never_a_crash(data: bytes, expect: MediaKind, tmp_path: Path) -> None:
    path = tmp_path / "random.bin"
    path.write_bytes(data)
    diagnostics = Diagnostics()
    source = Source("random.bin", Position("m.yaml", 3, 12), tmp_path, "cast.x.image")
    started = time.monotonic()
    file = MediaFiles(diagnostics).local(source, expect)
    assert time.monotonic() - started < 5.0  # [guess] generous; a small file takes milliseconds
    if file is None:
        (error,) = diagnostics.errors
        assert error.position == Position("m.yaml", 3, 12) and error.message.startswith("random.bin: ")
    else:
        assert file.info.kind == expect and not diagnostics.errors
