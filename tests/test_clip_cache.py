"""Facts of a video's packets kept by content hash: a cut made again reads only the
videos it has not seen, gives what reading them would, and a damaged, misfiled or
missing entry is the same as none."""

from __future__ import annotations

import json
import resource
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from r2v_pipeline import assemble as assembling
from r2v_pipeline.assemble import check_shot, plan_cuts
from r2v_pipeline.diagnostics import Diagnostics
from r2v_pipeline.media import concat
from r2v_pipeline.media.clip_cache import ClipCache, default_folder
from r2v_pipeline.media.concat import AudioFormat, Clip, VideoFormat, read_clip
from r2v_pipeline.media.probe import file_sha256
from r2v_pipeline.media.probe_cache import CACHE_VARIABLE, default_folder as probe_folder
from r2v_pipeline.media.synth import write_video
from r2v_pipeline.plan.planner import Plan, PlanOptions, make_plan
from r2v_pipeline.run.actions import Stores

fractions = st.builds(Fraction, st.integers(-(10**12), 10**12), st.integers(1, 10**9))
optional_bytes = st.none() | st.binary(max_size=64)
names = st.text(max_size=12)
clips = st.builds(
    Clip,
    path=st.just(Path("shot.mp4")),
    label=st.just("shot"),
    video=st.builds(VideoFormat, names, st.integers(0, 8192), st.integers(0, 8192), st.none() | names, st.none() | fractions, optional_bytes),
    start=fractions,
    seconds=fractions,
    starts_on_keyframe=st.booleans(),
    audio=st.none() | st.builds(AudioFormat, names, st.integers(0, 384000), names, st.integers(0, 64), optional_bytes),
    audio_start=fractions,
    audio_end=fractions,
    audio_packet=fractions,
    frames=st.integers(0, 10**7),
    frame_rate=st.floats(0.001, 1000.0, allow_nan=False),
)
SHA = "ab" * 32


@settings(max_examples=200, deadline=None)
@given(clip=clips)
def test_an_entry_gives_back_the_clip_it_was_made_from(clip: Clip, tmp_path_factory: pytest.TempPathFactory) -> None:
    cache = ClipCache(tmp_path_factory.mktemp("clips"))
    cache.put(SHA, clip)
    assert cache.get(SHA, Path("elsewhere/take.mp4"), "take") == replace(clip, path=Path("elsewhere/take.mp4"), label="take")


def test_a_real_video_read_or_remembered_is_the_same_clip(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    write_video(video, 96, 64, 0.5)
    clip = read_clip(video, "v")
    cache = ClipCache(tmp_path / "cache")
    sha = file_sha256(video)
    assert cache.get(sha, video, "v") is None
    cache.put(sha, clip)
    assert cache.get(sha, video, "v") == clip
    assert cache.get("cd" * 32, video, "v") is None  # other bytes


@pytest.mark.parametrize(
    "damage",
    [
        lambda e: "not json",
        lambda e: json.dumps({**e, "sha256": "cd" * 32}),  # filed under another hash
        lambda e: json.dumps({k: v for k, v in e.items() if k != "frames"}),
        lambda e: json.dumps({**e, "frames": "7"}),
        lambda e: json.dumps({**e, "starts_on_keyframe": 1}),
        lambda e: json.dumps({**e, "seconds": "1/0"}),
        lambda e: json.dumps({**e, "video": e["video"][:3]}),
        lambda e: json.dumps({**e, "audio": ["aac", 48000, "mono", 1, "zz"]}),
        lambda e: json.dumps([e]),
    ],
)
def test_a_damaged_entry_is_no_entry(tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    clip = Clip(Path("a.mp4"), "a", VideoFormat("h264", 96, 64, "yuv420p", Fraction(30), b"\x01"), Fraction(0), Fraction(1, 2), True)
    cache = ClipCache(tmp_path)
    cache.put(SHA, clip)
    entry = tmp_path / f"{SHA}.json"
    entry.write_text(damage(json.loads(entry.read_text())))
    assert cache.get(SHA, Path("a.mp4"), "a") is None


def test_the_folder_follows_the_environment_and_the_code(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_VARIABLE, "off")
    assert default_folder() is None
    assert ClipCache(None).get(SHA, Path("a.mp4"), "a") is None
    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path))
    chosen = default_folder()
    assert chosen is not None and chosen.parent == tmp_path / "clips"
    probes = probe_folder()
    assert probes is not None and probes.name != chosen.name  # keyed by other code: the reader, not the prober


def made_episode(write, media, lengths: tuple[float, ...]) -> Plan:  # type: ignore[no-untyped-def]
    """An episode whose shots' current videos are on disk, of these lengths."""
    media("m/mia.png", "png")
    write("series.yaml", "series: show\ndefaults: {model: wan2.7-r2v, resolution: 720P, ratio: '16:9', prompt_extend: false}\ncast: {mia: {image: m/mia.png}}\noutput: {dir: out, state: state}\n")
    shots = "".join(f"  - {{id: shot{n}, prompt: '{{{{ mia }}}} waves {n}'}}\n" for n in range(len(lengths)))
    episode = write("ep1.yaml", f"extends: series.yaml\nepisode: ep1\nshots:\n{shots}")
    diagnostics = Diagnostics()
    plan = make_plan([episode], PlanOptions(), diagnostics)
    assert not diagnostics.errors
    for shot, seconds in zip(plan.shots, lengths):
        shot.output.parent.mkdir(parents=True, exist_ok=True)
        write_video(shot.output, 96, 64, seconds)
        shot.output.with_suffix(".json").write_text(json.dumps({"fingerprint": shot.fingerprint, "key": shot.key}))
    return plan


def test_a_cut_planned_again_reads_only_new_videos_and_sees_the_same(write, media, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path / "cache"))
    plan = made_episode(write, media, (0.5, 0.4))
    first = plan_cuts(plan)[0]
    assert [p.problem for p in first.parts] == [None, None]

    read: list[Path] = []
    real = concat.read_clip

    def counting(path: Path, label: str | None = None, keep: bool = False) -> Clip:
        read.append(path)
        return real(path, label, keep=keep)

    monkeypatch.setattr("r2v_pipeline.assemble.read_clip", counting)
    again = plan_cuts(plan)[0]
    assert read == [] and again.parts == first.parts  # remembered: the same clips, nothing read
    write_video(plan.shots[1].output, 96, 64, 0.7)  # a shot remade: its bytes are new
    third = plan_cuts(plan)[0]
    assert read == [plan.shots[1].output]
    assert third.parts[1].clip == real(plan.shots[1].output, third.parts[1].label)
    assert third.parts[0] == first.parts[0]

    monkeypatch.setenv(CACHE_VARIABLE, "off")  # no cache: every video read
    assert check_shot(plan.shots[0], Stores()).clip == first.parts[0].clip
    read.clear()
    plan_cuts(plan)
    assert read == [s.output for s in plan.shots]


def test_videos_read_for_a_cut_keep_their_packets_while_there_is_room(write, media, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(CACHE_VARIABLE, "off")  # every video read
    plan = made_episode(write, media, (0.5, 0.4, 0.3))
    sizes = [s.output.stat().st_size for s in plan.shots]
    monkeypatch.setattr(assembling, "KEEP_PACKETS_BYTES", sizes[0] + sizes[1])
    assert [p.clip is not None and p.clip.kept is not None for p in plan_cuts(plan)[0].parts] == [True, True, False]
    monkeypatch.setattr(assembling, "KEEP_PACKETS_FILES", 1)
    kept = plan_cuts(plan)[0]
    assert [p.clip is not None and p.clip.kept is not None for p in kept.parts] == [True, False, False]
    with monkeypatch.context() as patch:  # room for every byte, but a process allowed 4 open files keeps one
        patch.setattr(assembling, "KEEP_PACKETS_BYTES", sum(sizes))
        patch.setattr(assembling, "KEEP_PACKETS_FILES", 256)
        patch.setattr(resource, "getrlimit", lambda which: (4, 4096) if which == resource.RLIMIT_NOFILE else (-1, -1))
        assert [p.clip is not None and p.clip.kept is not None for p in plan_cuts(plan)[0].parts] == [True, False, False]
    monkeypatch.setattr(assembling, "KEEP_PACKETS_BYTES", 0)
    read = plan_cuts(plan)[0]
    assert all(p.clip is not None and p.clip.kept is None for p in read.parts) and read.parts == kept.parts
    cuts = [replace(cut, output=tmp_path / f"{name}.mp4") for cut, name in ((kept, "kept"), (read, "read"))]
    assert [assembling.assemble(c).info.sha256 for c in cuts] == [file_sha256(tmp_path / "read.mp4")] * 2  # one file, however read


def test_a_folder_that_cannot_be_written_is_no_cache(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    cache = ClipCache(blocked / "clips")
    clip = Clip(Path("a.mp4"), "a", VideoFormat("h264", 96, 64, "yuv420p", Fraction(30), None), Fraction(0), Fraction(1), True)
    cache.put(SHA, clip)  # says nothing: the cache is a convenience
    assert cache.get(SHA, Path("a.mp4"), "a") is None
