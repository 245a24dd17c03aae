"""Every documented limit, checked on requests, with media judged by their bytes."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from r2v_pipeline.catalog import dashscope, freepik
from r2v_pipeline.catalog.check import check_request
from r2v_pipeline.catalog.spec import ModelSpec, Reaction
from r2v_pipeline.catalog.wire import Reference, Request, build_body, read_body
from r2v_pipeline.media.probe import MediaInfo, probe_bytes

WAN27, WAN26, FLASH, FREEPIK = dashscope.WAN27, dashscope.WAN26, dashscope.WAN26_FLASH, freepik.WAN27
ALL = [WAN27, WAN26, FLASH, FREEPIK]
IMG = "https://x.test/a.png"
VID = "https://x.test/a.mp4"


def req(**kw: object) -> Request:
    base = {"prompt": "a scene", "references": [Reference("image", IMG)]}
    base.update(kw)
    return Request(**base)  # type: ignore[arg-type]


def topics(spec: ModelSpec, request: Request, facts: dict[str, MediaInfo] | None = None) -> list[str]:
    return sorted(v.topic for v in check_request(spec, request, facts))


@pytest.mark.parametrize("spec", ALL, ids=lambda s: f"{s.provider}-{s.model}")
def test_a_plain_request_passes(spec: ModelSpec) -> None:
    assert topics(spec, req()) == []


@pytest.mark.parametrize(("spec", "limit"), [(WAN27, 5000), (WAN26, 1500), (FLASH, 1500), (FREEPIK, 5000)])
def test_prompt_length_limits(spec: ModelSpec, limit: int) -> None:
    assert topics(spec, req(prompt="x" * limit)) == []
    (violation,) = check_request(spec, req(prompt="x" * (limit + 1)))
    assert violation.topic == "prompt"
    assert f"at most {limit}" in violation.message


def test_wan26_truncates_long_text_but_wan27_rejects_it() -> None:
    (cut,) = check_request(WAN26, req(prompt="x" * 1501))
    assert cut.reaction is Reaction.TRUNCATE
    (refused,) = check_request(WAN27, req(prompt="x" * 5001))
    assert refused.reaction is Reaction.REJECT


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.model)
def test_negative_prompt_up_to_500(spec: ModelSpec) -> None:
    assert topics(spec, req(settings={"negative_prompt": "n" * 500})) == []
    assert topics(spec, req(settings={"negative_prompt": "n" * 501})) == ["negative_prompt"]


def test_a_prompt_is_required() -> None:
    assert topics(WAN27, req(prompt="  ")) == ["prompt.missing"]


def test_text_of_the_wrong_type_is_refused_even_where_long_text_is_cut() -> None:
    (wrong,) = check_request(WAN26, req(settings={"negative_prompt": 5}))
    assert (wrong.topic, wrong.reaction) == ("negative_prompt.type", Reaction.REJECT)


def test_flash_refuses_a_bad_audio_value_the_other_wan26_ignores() -> None:
    (flash,) = check_request(FLASH, req(settings={"audio": "no"}))
    assert flash.reaction is Reaction.REJECT
    (plain,) = check_request(WAN26, req(settings={"audio": False}))
    assert plain.reaction is Reaction.IGNORE


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.model)
def test_at_most_five_references_and_at_least_one(spec: ModelSpec) -> None:
    five = [Reference("image", f"https://x.test/{i}.png") for i in range(5)]
    assert topics(spec, req(references=five)) == []
    assert "references" in topics(spec, req(references=five + [Reference("image", IMG)]))
    (missing,) = check_request(spec, req(references=[]))
    assert missing.topic == "references.missing"


def test_wan26_takes_three_videos_at_most() -> None:
    videos = [Reference("video", f"https://x.test/{i}.mp4") for i in range(4)]
    assert topics(WAN26, req(references=videos[:3])) == []
    assert topics(WAN26, req(references=videos)) == ["references"]
    assert topics(WAN27, req(references=videos)) == []


def test_first_frame_one_at_most_and_never_alone() -> None:
    assert topics(WAN27, req(first_frames=[IMG])) == []
    assert topics(WAN27, req(first_frames=[IMG, IMG])) == ["first_frame"]
    (alone,) = check_request(WAN27, req(references=[], first_frames=[IMG]))
    assert alone.topic == "references.missing" and "besides the first frame" in alone.message
    assert topics(WAN26, req(first_frames=[IMG])) == ["first_frame"]
    assert topics(FREEPIK, req(first_frames=[IMG])) == []


def test_voices_only_where_the_model_takes_them() -> None:
    voiced = [Reference("image", IMG, "https://x.test/v.mp3")]
    assert topics(WAN27, req(references=voiced)) == []
    assert topics(FREEPIK, req(references=voiced)) == []
    assert topics(WAN26, req(references=voiced)) == ["voice"]
    assert topics(WAN27, req(voice="https://x.test/v.wav")) == []
    assert topics(FREEPIK, req(voice="https://x.test/v.wav")) == ["voice"]


@pytest.mark.parametrize(
    ("spec", "images_only", "with_video"),
    [(WAN27, (2, 15), (2, 10)), (WAN26, (2, 10), (2, 10)), (FLASH, (2, 10), (2, 10)), (FREEPIK, (2, 10), (2, 10))],
)
def test_duration_ranges(spec: ModelSpec, images_only: tuple[int, int], with_video: tuple[int, int]) -> None:
    video = [Reference("video", VID)]
    lo, hi = images_only
    assert topics(spec, req(settings={"duration": lo})) == []
    assert topics(spec, req(settings={"duration": hi})) == []
    assert topics(spec, req(settings={"duration": lo - 1})) == ["duration"]
    assert topics(spec, req(settings={"duration": hi + 1})) == ["duration"]
    assert topics(spec, req(references=video, settings={"duration": with_video[1]})) == []
    assert "duration" in topics(spec, req(references=video, settings={"duration": with_video[1] + 1}))
    assert topics(spec, req(settings={"duration": "5"})) == ["duration"]


def test_resolution_ratio_and_size_lists() -> None:
    assert topics(WAN27, req(settings={"resolution": "720P", "ratio": "3:4"})) == []
    assert topics(WAN27, req(settings={"resolution": "480P"})) == ["resolution"]
    assert topics(WAN27, req(settings={"ratio": "21:9"})) == ["ratio"]
    assert topics(WAN26, req(settings={"size": "1088*832"})) == []
    (bad,) = check_request(WAN26, req(settings={"size": "1280*721"}))
    assert bad.topic == "size" and bad.reaction is Reaction.FAIL  # accepted, then the task fails


def test_silent_video_only_on_flash() -> None:
    assert topics(FLASH, req(settings={"audio": False})) == []
    (ignored,) = check_request(WAN26, req(settings={"audio": False}))
    assert ignored.reaction is Reaction.IGNORE and "wan2.6-r2v-flash" in ignored.message
    assert topics(WAN26, req(settings={"audio": True})) == []
    assert topics(WAN27, req(settings={"audio": False})) == ["audio"]  # not a wan2.7 parameter


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.model)
def test_seed_range(spec: ModelSpec) -> None:
    assert topics(spec, req(settings={"seed": 0})) == []
    assert topics(spec, req(settings={"seed": 2_147_483_647})) == []
    assert topics(spec, req(settings={"seed": 2_147_483_648})) == ["seed"]
    assert topics(spec, req(settings={"seed": -1})) == ["seed"]
    assert topics(spec, req(settings={"seed": True})) == ["seed"]


def test_url_schemes() -> None:
    assert topics(WAN27, req(references=[Reference("image", "oss://dir/a.png")])) == []
    assert topics(WAN27, req(references=[Reference("image", "data:image/png;base64,AAAA")])) == []
    assert topics(WAN27, req(references=[Reference("video", "data:video/mp4;base64,AAAA")])) == ["reference"]
    assert topics(WAN27, req(references=[Reference("image", "ftp://x/a.png")])) == ["reference"]
    assert topics(FREEPIK, req(references=[Reference("image", "oss://dir/a.png")])) == ["reference"]
    assert topics(WAN27, req(references=[Reference("image", "local:a.png")]), None) == ["reference"]
    assert check_request(WAN27, req(references=[Reference("image", "local:a.png")]), None, "local") == []
    (needs_public,) = check_request(FREEPIK, req(references=[Reference("image", "local:a.png")]), None, "local")
    assert "public" in needs_public.message


def test_media_facts_from_bytes(media_bytes: dict[str, bytes]) -> None:
    png, small, video = probe_bytes(media_bytes["png"]), probe_bytes(media_bytes["small_png"]), probe_bytes(media_bytes["video_3s"])
    assert topics(WAN27, req(), {IMG: png}) == []
    (tiny,) = check_request(WAN27, req(), {IMG: small})
    assert "200×256 px" in tiny.message and "240–8000" in tiny.message
    (wrong_kind,) = check_request(WAN27, req(references=[Reference("image", VID)]), {VID: video})
    assert wrong_kind.code == "BadRequest.UnsupportedFileFormat" and "MP4 video" in wrong_kind.message
    (too_big,) = check_request(WAN26, req(), {IMG: replace(png, bytes=10_000_001)})
    assert too_big.code == "BadRequest.TooLarge"
    assert topics(WAN27, req(), {IMG: replace(png, bytes=10_000_001)}) == []
    assert topics(WAN26, req(), {IMG: replace(png, width=5001)}) == ["reference"]
    assert topics(WAN27, req(), {IMG: replace(png, width=5001)}) == []


def test_wan26_video_length_and_kind_from_bytes(media_bytes: dict[str, bytes]) -> None:
    video = probe_bytes(media_bytes["video_3s"])
    url = "oss://uploads/clip"  # no extension: the bytes say it is a video
    assert topics(WAN26, req(references=[Reference("image", url)]), {url: video}) == []
    four = [Reference("image", f"{url}{i}") for i in range(4)]
    assert topics(WAN26, req(references=four), {r.url: video for r in four}) == ["references"]
    assert topics(WAN26, req(references=[Reference("video", url)]), {url: replace(video, seconds=31.0)}) == ["reference"]
    assert topics(WAN27, req(references=[Reference("video", url)]), {url: replace(video, seconds=31.0)}) == []


def test_voice_limits(media_bytes: dict[str, bytes]) -> None:
    voice_url = "https://x.test/v.wav"
    voiced = [Reference("image", IMG, voice_url)]
    assert topics(WAN27, req(references=voiced), {voice_url: probe_bytes(media_bytes["wav_2s"])}) == []
    assert topics(WAN27, req(references=voiced), {voice_url: probe_bytes(media_bytes["mp3_2s"])}) == []
    (long,) = check_request(WAN27, req(references=voiced), {voice_url: probe_bytes(media_bytes["wav_12s"])})
    assert "1–10 s" in long.message
    (not_audio,) = check_request(WAN27, req(references=voiced), {voice_url: probe_bytes(media_bytes["png"])})
    assert not_audio.code == "BadRequest.UnsupportedFileFormat"


requests = st.builds(
    Request,
    prompt=st.text(min_size=1, max_size=40),
    references=st.lists(
        st.builds(
            Reference,
            kind=st.sampled_from(["image", "video"]),
            url=st.sampled_from(["https://a.test/x.png", "https://a.test/y.mp4", "oss://k/z"]),
            voice=st.none() | st.just("https://a.test/v.mp3"),
        ),
        max_size=5,
    ),
    first_frames=st.lists(st.just(IMG), max_size=1),
    settings=st.fixed_dictionaries({}, optional={"duration": st.integers(2, 10), "seed": st.integers(0, 100)}),
)


@given(requests)
def test_read_body_reads_back_what_build_body_writes(request: Request) -> None:
    for spec in (WAN27, FREEPIK):  # the formats that say each reference's kind and voice
        request_for = replace(request, voice=None)
        back = read_body(spec, build_body(spec, request_for))
        assert back.prompt == request_for.prompt
        assert sorted(back.references, key=repr) == sorted(request_for.references, key=repr)
        assert back.first_frames == request_for.first_frames
        assert back.settings == request_for.settings
        assert back.malformed == []
