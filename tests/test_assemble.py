"""r2v assemble: an episode's current videos, in manifest order and with the picked
takes, joined into one MP4 with a sidecar; missing or stale shots stop it cold."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import av
import opentimelineio as otio
import pytest

from r2v_pipeline.cli import main
from r2v_pipeline.diagnostics import Diagnostics
from r2v_pipeline.media.probe import file_sha256, probe_file
from r2v_pipeline.media.synth import audio_bytes, write_video
from r2v_pipeline.plan.planner import PlannedShot, PlanOptions, make_plan

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("R2V_TEST_ARTIFACTS", REPO / "test-artifacts"))
Write = Callable[[str, str | bytes], Path]
Media = Callable[[str, str], Path]


def assemble(*argv: str) -> int:
    """``r2v assemble ARGV``."""
    return main(["assemble", *argv])


def play(path: Path) -> tuple[int, float, float]:
    """Decode a file to its end: (pictures, seconds of picture, seconds of sound)."""
    pictures, picture_end, samples, rate = 0, 0.0, 0, 1
    with av.open(str(path)) as container:
        for frame in container.decode(*container.streams):
            if isinstance(frame, av.VideoFrame):
                assert frame.time is not None and frame.time >= picture_end  # times only rise
                pictures, picture_end = pictures + 1, frame.time
            elif isinstance(frame, av.AudioFrame):
                samples, rate = samples + frame.samples, frame.sample_rate
        step = 1 / float(container.streams.video[0].average_rate or 30)
    return pictures, picture_end + step, samples / rate


# --- the example series on the simulator ------------------------------------------


def test_the_simulated_example_episode_becomes_one_playable_cut(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    shutil.copytree(REPO / "manifests" / "lighthouse", tmp_path / "lighthouse")
    episode = str(tmp_path / "lighthouse" / "ep01-the-storm.yaml")
    where = ["--out", str(tmp_path / "out"), "--state", str(tmp_path / "state")]
    assert main(["run", "--simulate", "--time-scale", "0.005", "--log-format", "plain", *where, episode]) == 0
    capsys.readouterr()

    assert assemble("--simulated", *where, episode) == 0
    out = tmp_path / "out" / "simulated" / "lighthouse"
    cut = out / "ep01.mp4"
    chosen = [out / "ep01" / f"{name}.mp4" for name in ("cold-open", "arrival", "storm-boards", "gull-visit", "night-watch-take1")]
    lengths = [probe_file(p).seconds or 0.0 for p in chosen]
    total = sum(lengths)
    assert total == pytest.approx(33.0)  # 5 + 8 + 10 + 5 + 5 s

    stdout = capsys.readouterr().out.strip()
    # night-watch (wan2.6-r2v-flash, audio: false) is silent: the sound is re-made, the picture copied.
    assert stdout.startswith(f"lighthouse/ep01: {cut}, 33.0 s, 5 shots, video copied, audio re-encoded (night-watch#take1 has no sound")
    assert len(stdout.splitlines()) == 1

    info = probe_file(cut)
    assert (info.kind, info.format, info.has_video, info.has_audio) == ("video", "mp4", True, True)
    assert info.seconds == pytest.approx(total, abs=len(chosen) / 30)
    pictures, picture_seconds, sound_seconds = play(cut)
    assert pictures == round(total * 30)
    assert picture_seconds == pytest.approx(total, abs=len(chosen) / 30)
    assert sound_seconds == pytest.approx(total, abs=len(chosen) / 30)

    sidecar = json.loads((out / "ep01.json").read_text())
    assert [(s["shot"], s["take"], s["file"]) for s in sidecar["shots"]] == [
        ("cold-open", None, "ep01/cold-open.mp4"),
        ("arrival", None, "ep01/arrival.mp4"),
        ("storm-boards", None, "ep01/storm-boards.mp4"),
        ("gull-visit", None, "ep01/gull-visit.mp4"),
        ("night-watch", 1, "ep01/night-watch-take1.mp4"),
    ]
    assert [s["sha256"] for s in sidecar["shots"]] == [file_sha256(p) for p in chosen]
    assert [s["seconds"] for s in sidecar["shots"]] == pytest.approx(lengths)
    assert sidecar["method"]["video"] == "copy" and sidecar["method"]["audio"] == "re-encode"
    assert sidecar["video"]["sha256"] == file_sha256(cut)


# --- a small episode whose videos the test makes -----------------------------------


@pytest.fixture
def episode(write: Write, media: Media) -> Path:
    media("m/mia.png", "png")
    write(
        "series.yaml",
        """
        series: show
        defaults: {model: wan2.7-r2v, resolution: 720P, ratio: "16:9", prompt_extend: false}
        cast:
          mia: {image: m/mia.png}
        output: {dir: out, state: state}
        """,
    )
    return write("ep1.yaml", EPISODE)


EPISODE = """\
extends: series.yaml
episode: ep1
shots:
  - {id: one, prompt: "{{ mia }} waves"}
  - {id: two, takes: 3, pick: 2, prompt: "{{ mia }} runs"}
  - {id: three, prompt: "{{ mia }} sleeps"}
"""


def planned(path: Path) -> list[PlannedShot]:
    diagnostics = Diagnostics()
    plan = make_plan([path], PlanOptions(), diagnostics)
    assert not diagnostics.errors
    return plan.shots


def make_videos(path: Path, seconds: dict[str, float], **options: object) -> dict[str, Path]:
    """Write each planned video named in ``seconds`` (by file stem) and its sidecar, as ``r2v run`` would."""
    made = {}
    for shot in planned(path):
        stem = shot.output.stem
        if stem in seconds:
            shot.output.parent.mkdir(parents=True, exist_ok=True)
            size = options.get(stem, (96, 64))
            audio = options.get(f"{stem}:audio", True)
            write_video(shot.output, *size, seconds[stem], audio=audio)  # type: ignore[misc, arg-type]
            shot.output.with_suffix(".json").write_text(json.dumps({"fingerprint": shot.fingerprint, "key": shot.key}))
            made[stem] = shot.output
    return made


ALL = {"one": 0.5, "two-take1": 0.3, "two-take2": 0.6, "two-take3": 0.4, "three": 0.5}


def test_pick_chooses_the_take_and_shared_formats_are_copied(episode: Path, capsys: pytest.CaptureFixture[str]) -> None:
    videos = make_videos(episode, ALL)
    assert assemble(str(episode)) == 0
    cut = episode.parent / "out" / "show" / "ep1.mp4"
    assert capsys.readouterr().out == f"show/ep1: {cut}, 1.6 s, 3 shots, copied (all share one format); for editors: ep1.otio, ep1.xml, ep1.edl\n"
    assert probe_file(cut).seconds == pytest.approx(0.5 + 0.6 + 0.5, abs=3 / 30)  # take 2 is the 0.6 s one
    sidecar = json.loads(cut.with_suffix(".json").read_text())
    assert [(s["shot"], s["take"], s["file"]) for s in sidecar["shots"]] == [("one", None, "ep1/one.mp4"), ("two", 2, "ep1/two-take2.mp4"), ("three", None, "ep1/three.mp4")]
    assert sidecar["shots"][1]["sha256"] == file_sha256(videos["two-take2"])
    assert sidecar["method"] == {"video": "copy", "audio": "copy", "reasons": []}


def test_without_pick_the_first_take_goes_in(episode: Path, capsys: pytest.CaptureFixture[str]) -> None:
    episode.write_text(EPISODE.replace(" pick: 2,", ""))
    make_videos(episode, ALL)
    out = episode.parent / "elsewhere" / "cut.mp4"
    assert assemble("-o", str(out), str(episode)) == 0
    assert capsys.readouterr().out.startswith(f"show/ep1: {out}, 1.3 s, 3 shots, copied")
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert [s["take"] for s in sidecar["shots"]] == [None, 1, None]
    assert (out.parent / sidecar["shots"][1]["file"]).resolve() == (episode.parent / "out" / "show" / "ep1" / "two-take1.mp4").resolve()
    assert not (episode.parent / "out" / "show" / "ep1.mp4").exists()


def test_shots_of_other_sizes_or_without_sound_are_re_encoded(episode: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_videos(episode, ALL, **{"two-take2": (64, 64), "three:audio": False})
    assert assemble(str(episode)) == 0
    line = capsys.readouterr().out
    assert ", 3 shots, re-encoded (two#take2 is h264 64×64 yuv420p 30 fps, one h264 96×64 yuv420p 30 fps; three has no sound, so silence fills its span)" in line
    cut = episode.parent / "out" / "show" / "ep1.mp4"
    info = probe_file(cut)
    assert (info.width, info.height, info.has_audio) == (96, 64, True)
    pictures, picture_seconds, sound_seconds = play(cut)
    assert pictures == 48 and picture_seconds == pytest.approx(1.6)
    assert sound_seconds == pytest.approx(1.6, abs=1024 / 48000)
    assert json.loads(cut.with_suffix(".json").read_text())["method"]["video"] == "re-encode"


def test_a_missing_shot_is_named_with_its_path_and_nothing_is_written(episode: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_videos(episode, {k: v for k, v in ALL.items() if k != "two-take2"})  # take 2, the picked one, was never made
    before = sorted((episode.parent / "out").rglob("*"))
    assert assemble(str(episode)) == 1
    captured = capsys.readouterr()
    expected = episode.parent / "out" / "show" / "ep1" / "two-take2.mp4"
    assert captured.err.splitlines() == [
        "r2v: cannot assemble show/ep1: 1 of 3 shots not ready; nothing was written",
        f"  two#take2: missing: expected {expected}",
        f"r2v: run `r2v run {episode}` first",
    ]
    assert captured.out == ""
    assert sorted((episode.parent / "out").rglob("*")) == before  # no cut, no sidecar, no partial file


def test_a_stale_shot_stops_the_cut_and_leaves_the_last_one_alone(episode: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_videos(episode, ALL)
    assert assemble(str(episode)) == 0
    cut = episode.parent / "out" / "show" / "ep1.mp4"
    last = (cut.read_bytes(), cut.with_suffix(".json").read_text())
    capsys.readouterr()

    episode.write_text(EPISODE.replace("{{ mia }} sleeps", "{{ mia }} sleeps soundly"))  # the video is of the old prompt
    assert assemble("--out", str(episode.parent / "out"), str(episode)) == 1
    err = capsys.readouterr().err
    assert "r2v: cannot assemble show/ep1: 1 of 3 shots not ready; nothing was written" in err
    assert f"  three: stale: {cut.parent / 'ep1' / 'three.mp4'} is from an earlier version of the shot" in err
    assert f"r2v run --out {episode.parent / 'out'} {episode}` first" in err
    assert (cut.read_bytes(), cut.with_suffix(".json").read_text()) == last


def test_a_video_without_its_sidecar_is_not_trusted(episode: Path, capsys: pytest.CaptureFixture[str]) -> None:
    videos = make_videos(episode, ALL)
    videos["one"].with_suffix(".json").unlink()
    assert assemble(str(episode)) == 1
    assert "  one: unknown version: " in capsys.readouterr().err
    assert not (episode.parent / "out" / "show" / "ep1.mp4").exists()


def test_a_shot_file_that_is_no_video_says_what_it_is_and_nothing_is_written(episode: Path, capsys: pytest.CaptureFixture[str]) -> None:
    videos = make_videos(episode, ALL)
    videos["three"].write_bytes(audio_bytes(1.0, "mp3"))  # its sidecar still names this version
    assert assemble(str(episode)) == 1
    err = capsys.readouterr().err
    assert "  three: not a video: " in err and "is a 1.0 s MP3 audio" in err
    assert not (episode.parent / "out" / "show" / "ep1.mp4").exists()


def test_simulated_looks_in_the_simulated_folder(episode: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_videos(episode, ALL)  # real-run videos only
    assert assemble("--simulated", str(episode)) == 1
    assert f"expected {episode.parent / 'out' / 'simulated' / 'show' / 'ep1' / 'one.mp4'}" in capsys.readouterr().err


def test_an_invalid_manifest_prints_the_problems_and_exits_2(episode: Path, capsys: pytest.CaptureFixture[str]) -> None:
    episode.write_text(EPISODE.replace("pick: 2", "pick: 4"))
    assert assemble(str(episode)) == 2
    err = capsys.readouterr().err
    assert f"{episode.name}:5:" in err and "pick 4: the shot has 3 takes" in err
    assert not (episode.parent / "out").exists()


def test_o_takes_one_episode(episode: Path, write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    other = write("ep2.yaml", EPISODE.replace("episode: ep1", "episode: ep2"))
    assert assemble("-o", "cut.mp4", str(episode), str(other)) == 2
    assert "-o names one file" in capsys.readouterr().err


# --- the cut for editors: OTIO, FCP 7 XML, CMX 3600 EDL ------------------------------


def read_timeline(path: Path) -> otio.schema.Timeline:
    return otio.adapters.read_from_file(str(path), rate=30) if path.suffix == ".edl" else otio.adapters.read_from_file(str(path))


def test_the_example_episode_reads_back_in_each_editors_format(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    shutil.copytree(REPO / "manifests" / "lighthouse", tmp_path / "lighthouse")
    episode = tmp_path / "lighthouse" / "ep01-the-storm.yaml"
    (tmp_path / "lighthouse" / "ep01-the-storm.selects.yaml").write_text("shots:\n  night-watch:\n    pick: 2\n    rejected: [1]\n")
    where = ["--out", str(tmp_path / "out"), "--state", str(tmp_path / "state")]
    assert main(["run", "--simulate", "--time-scale", "0.005", "--log-format", "plain", *where, str(episode)]) == 0
    assert assemble("--simulated", *where, str(episode)) == 0
    assert "for editors: ep01.otio, ep01.xml, ep01.edl" in capsys.readouterr().out
    folder = tmp_path / "out" / "simulated" / "lighthouse"
    order = ["cold-open", "arrival", "storm-boards", "gull-visit", "night-watch"]
    files = {"cold-open": "ep01/cold-open.mp4", "arrival": "ep01/arrival.mp4", "storm-boards": "ep01/storm-boards.mp4",
             "gull-visit": "ep01/gull-visit.mp4", "night-watch": "ep01/night-watch-take2.mp4"}  # fmt: skip
    # Real lengths in frames, decoded from the videos themselves.
    frames = {name: play(folder / path)[0] for name, path in files.items()}
    assert frames == {"cold-open": 150, "arrival": 240, "storm-boards": 300, "gull-visit": 150, "night-watch": 150}
    plan = make_plan([episode], PlanOptions(namespace="simulated", output_dir=tmp_path / "out", state_dir=tmp_path / "state"), Diagnostics())
    fingerprints = {(s.shot, s.take or 1): s.fingerprint for s in plan.shots}

    for ending in (".otio", ".xml", ".edl"):
        timeline = read_timeline(folder / f"ep01{ending}")
        main_track = timeline.video_tracks()[0]
        clips = list(main_track.find_clips())
        assert [c.name for c in clips] == order, ending
        assert [c.source_range.duration for c in clips] == [otio.opentime.RationalTime(frames[n], 30) for n in order], ending
        assert [c.media_reference.target_url for c in clips] == [files[n] for n in order], ending
        assert main_track.duration() == otio.opentime.RationalTime(990, 30)  # 33 s
        for clip in clips:  # relative to the timeline's folder: the paths resolve to the videos
            assert (folder / clip.media_reference.target_url).is_file()

    timeline = read_timeline(folder / "ep01.otio")
    clips = {c.name: c for c in timeline.video_tracks()[0].find_clips()}
    assert clips["night-watch"].metadata["r2v"]["fingerprint"] == fingerprints[("night-watch", 2)]
    assert clips["arrival"].metadata["r2v"]["fingerprint"] == fingerprints[("arrival", 1)]
    (alternate,) = clips["night-watch"].metadata["r2v"]["alternates"]
    assert (alternate["file"], alternate["take"], alternate["review"]) == ("ep01/night-watch-take1.mp4", 1, "rejected")
    assert alternate["fingerprint"] == fingerprints[("night-watch", 1)]
    # The other take waits on a disabled track, at its shot's place.
    alternates = timeline.video_tracks()[1]
    assert alternates.enabled is False
    (other,) = alternates.find_clips()
    assert other.media_reference.target_url == "ep01/night-watch-take1.mp4"
    assert alternates.range_of_child(other).start_time == otio.opentime.RationalTime(840, 30)
    xml = (folder / "ep01.xml").read_text()
    assert xml.count("<enabled>FALSE</enabled>") == 1  # FCP shows the picked takes, the alternates' track off
    assert len(read_timeline(folder / "ep01.edl").video_tracks()) == 1  # CMX 3600: one video track
    sidecar = json.loads((folder / "ep01.json").read_text())
    assert sidecar["timelines"] == ["ep01.otio", "ep01.xml", "ep01.edl"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for ending in (".otio", ".xml", ".edl"):  # for a person (or an editing program) to open
        shutil.copy(folder / f"ep01{ending}", ARTIFACTS / f"example-ep01{ending}")


def test_takes_not_picked_ride_along_as_alternates(episode: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_videos(episode, ALL)
    assert assemble(str(episode)) == 0
    timeline = read_timeline(episode.parent / "out" / "show" / "ep1.otio")
    tracks = timeline.video_tracks()
    assert [t.enabled for t in tracks] == [True, False, False]  # take 2 picked; takes 1 and 3 beside it
    assert [c.media_reference.target_url for c in tracks[0].find_clips()] == ["ep1/one.mp4", "ep1/two-take2.mp4", "ep1/three.mp4"]
    assert [c.media_reference.target_url for t in tracks[1:] for c in t.find_clips()] == ["ep1/two-take1.mp4", "ep1/two-take3.mp4"]
    # An alternate longer than the picked take is trimmed to its slot: the tracks stay in step.
    assert len({t.duration().to_frames() for t in tracks}) == 1


def test_timelines_made_by_the_helper_process_are_those_made_here(episode: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from r2v_pipeline import helper_process

    make_videos(episode, ALL)
    out = episode.parent / "out" / "show"
    texts = {}
    for cores in (2, 1):  # a helper process, then none (the timelines made in this process)
        with monkeypatch.context() as patch:
            patch.setattr(helper_process, "_cores", lambda cores=cores: cores)
            if cores == 2:  # the helper answers: nothing falls back to this process
                patch.setattr(helper_process.Helper, "run_here", lambda *_: pytest.fail("made here, not by the helper"))
            assert assemble(str(episode)) == 0
        texts[cores] = {name: (out / name).read_text() for name in ("ep1.otio", "ep1.xml", "ep1.edl")}
    assert texts[2] == texts[1]
    assert "ep1/two-take3.mp4" in texts[2]["ep1.otio"]  # the alternates too


def test_the_command_leaves_opentimelineio_to_its_helper(episode: Path) -> None:
    """The cut's process never imports OTIO when a helper process makes the timelines."""
    import subprocess
    import sys

    make_videos(episode, ALL)
    script = (
        "import sys\n"
        "from r2v_pipeline import helper_process\n"
        "helper_process._cores = lambda: 2\n"
        "from r2v_pipeline.cli import main\n"
        f"code = main(['assemble', {str(episode)!r}])\n"
        "print('otio' if 'opentimelineio' in sys.modules else 'no otio', code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines()[-1] == "no otio 0", done.stderr
    assert (episode.parent / "out" / "show" / "ep1.edl").read_text().startswith("TITLE: show ep1")


def test_alternates_at_other_frame_rates_keep_their_shots_place(tmp_path: Path) -> None:
    from r2v_pipeline.media.timeline import Clip, Slot, build_timeline

    def clip(name: str, frames: int, rate: float) -> Clip:
        return Clip(name, tmp_path / f"{name}-{frames}.mp4", frames, rate)

    slots = [
        Slot(clip("a", 150, 30), (clip("a", 200, 24),)),  # 8.33 s at 24 fps: trimmed to a's 5 s, 120 frames
        Slot(clip("b", 90, 30), (clip("b", 48, 24),)),  # 2 s of b's 3 s: a 1 s gap follows
        Slot(clip("c", 60, 30)),
    ]
    timeline = build_timeline("t", slots, tmp_path)
    main_track, alternates = timeline.video_tracks()
    assert main_track.duration() == otio.opentime.RationalTime(300, 30)
    assert alternates.duration().rescaled_to(30) == otio.opentime.RationalTime(300, 30)
    a, b, gap = list(alternates)[:3]
    assert a.source_range.duration == otio.opentime.RationalTime(120, 24)
    assert b.source_range.duration == otio.opentime.RationalTime(48, 24)
    assert isinstance(gap, otio.schema.Gap) and gap.duration().rescaled_to(30).value == 30
    assert alternates.range_of_child(b).start_time.rescaled_to(30).value == 150
