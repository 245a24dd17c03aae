"""The simulator's DashScope side over real HTTP: every error path, reactions, billing,
task shapes, the list, cancel, quotas, uploads and expiry."""

from __future__ import annotations

import base64
import io
import re
from decimal import Decimal
from typing import Any, Callable

import av
import httpx
import pytest

from r2v_pipeline.media import synth
from r2v_pipeline.media.probe import probe_bytes
from r2v_pipeline.sim import Rate, Simulator, account_id
from r2v_pipeline.providers.dashscope import _time
from r2v_pipeline.sim.clock import format_list_time
from r2v_pipeline.sim.config import SimConfig

from .conftest import REMOTE_IMAGE, REMOTE_VIDEO

KEY = "sk-sim-test-key"
OTHER_KEY = "sk-sim-other-key"
REMOTE_PNG = "https://example.com/cast/mia.png"
REMOTE_MP4 = "https://example.com/cast/kai.mp4"
BEIJING_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$")
DAY = 86_400
# The longest a task of the default simulator can take to end: its wait in the queue, then
# up to 300 s of generation (a bare 300 left a task drawn near 300 s running: a rare failure).
LONGEST_GENERATION = SimConfig().pending_seconds + SimConfig().generation_seconds[1]

Client = Callable[..., httpx.Client]


@pytest.fixture
def api(simulator: Simulator, http_client: Client) -> httpx.Client:
    return dashscope_client(simulator, http_client)


@pytest.fixture
def hosted(simulator: Simulator, media_bytes: dict[str, bytes]) -> dict[str, str]:
    """The session's sample media, at URLs the simulator can read."""
    urls = {name: simulator.host_media(data) for name, data in media_bytes.items()}
    urls["text"] = simulator.host_media(b"not a picture at all", "text/plain")
    urls["small_png_inline"] = "data:image/png;base64," + base64.b64encode(media_bytes["small_png"]).decode()
    return urls


def dashscope_client(sim: Simulator, http_client: Client, key: str = KEY, **extra: str) -> httpx.Client:
    return http_client(sim.dashscope_url, {"Authorization": f"Bearer {key}", "X-DashScope-Async": "enable", **extra})


def wan27(*media: dict[str, Any], prompt: str = "Image 1 waves at the camera.", **parameters: Any) -> dict[str, Any]:
    chosen = {"resolution": "720P", "duration": 2, **parameters}
    return {"model": "wan2.7-r2v", "input": {"prompt": prompt, "media": list(media) or [image(REMOTE_PNG)]}, "parameters": chosen}


def wan26(*urls: str, model: str = "wan2.6-r2v", prompt: str = "character1 waves.", **parameters: Any) -> dict[str, Any]:
    chosen = {"size": "1280*720", "duration": 2, **parameters}
    return {"model": model, "input": {"prompt": prompt, "reference_urls": list(urls) or [REMOTE_PNG]}, "parameters": chosen}


def image(url: str, **extra: str) -> dict[str, str]:
    return {"type": "reference_image", "url": url, **extra}


def video(url: str, **extra: str) -> dict[str, str]:
    return {"type": "reference_video", "url": url, **extra}


def submit(api: httpx.Client, body: dict[str, Any], **headers: str) -> str:
    response = api.post("/services/aigc/video-generation/video-synthesis", json=body, headers=headers)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["output"]["task_status"] == "PENDING" and payload["request_id"]
    return payload["output"]["task_id"]


def refused(api: httpx.Client, body: Any, **headers: str) -> tuple[int, dict[str, Any]]:
    response = api.post("/services/aigc/video-generation/video-synthesis", json=body, headers=headers)
    assert response.status_code != 200
    return response.status_code, response.json()


def query(api: httpx.Client, task_id: str) -> dict[str, Any]:
    response = api.get(f"/tasks/{task_id}")
    assert response.status_code == 200, response.text
    return response.json()


def finished(sim: Simulator, api: httpx.Client, task_id: str) -> dict[str, Any]:
    sim.advance(LONGEST_GENERATION)
    return query(api, task_id)


def video_facts(data: bytes) -> tuple[str, int, int, float, bool]:
    info = probe_bytes(data)
    with av.open(io.BytesIO(data)) as container:
        codec = container.streams.video[0].codec_context.name
    assert info.seconds is not None and info.width and info.height
    return codec, info.width, info.height, round(info.seconds, 1), info.has_audio


# --- keys, headers, model ----------------------------------------------------------


def test_a_missing_key_is_401_invalid_api_key(simulator: Simulator, http_client: Client) -> None:
    bare = http_client(simulator.dashscope_url, {"X-DashScope-Async": "enable"})
    response = bare.post("/services/aigc/video-generation/video-synthesis", json=wan27())
    assert response.status_code == 401
    assert response.json()["code"] == "InvalidApiKey" and response.json()["request_id"]
    assert bare.get("/tasks/x").status_code == 401


def test_only_listed_keys_are_accepted(start_sim: Callable[..., Simulator], http_client: Client) -> None:
    sim = start_sim(dashscope_keys=frozenset({KEY}))
    assert dashscope_client(sim, http_client, key="sk-wrong").get("/tasks/x").status_code == 401
    assert dashscope_client(sim, http_client, key=KEY).get("/tasks/x").status_code == 200


def test_without_the_async_header_submit_is_403_access_denied(simulator: Simulator, http_client: Client) -> None:
    sync = http_client(simulator.dashscope_url, {"Authorization": f"Bearer {KEY}"})
    response = sync.post("/services/aigc/video-generation/video-synthesis", json=wan27())
    assert response.status_code == 403
    assert response.json()["code"] == "AccessDenied"
    assert response.json()["message"] == "current user api does not support synchronous calls"


def test_an_unknown_model_is_400_model_not_exist(api: httpx.Client) -> None:
    assert refused(api, {**wan27(), "model": "wan9-r2v"}) == (400, {"code": "InvalidParameter", "message": "Model not exist.", "request_id": ANY})


def test_a_body_that_is_not_json_is_400(api: httpx.Client) -> None:
    response = api.post("/services/aigc/video-generation/video-synthesis", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["code"] == "InvalidParameter"


class _Any:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)


ANY = _Any()


def test_the_key_is_checked_before_the_async_header(start_sim: Callable[..., Simulator], http_client: Client) -> None:
    # [guess] the 403's message speaks of the current user, so a caller is identified (its key checked) first
    sim = start_sim(dashscope_keys=frozenset({KEY}))
    sync = http_client(sim.dashscope_url, {"Authorization": "Bearer sk-wrong"})
    response = sync.post("/services/aigc/video-generation/video-synthesis", json=wan27())
    assert (response.status_code, response.json()["code"]) == (401, "InvalidApiKey")


# --- REJECT: every limit of wan2.7 (and some of wan2.6) answers 400 -------------------

WAN27_REJECTS: dict[str, tuple[Callable[[dict[str, str]], dict[str, Any]], str]] = {
    "prompt over 5000 characters": (lambda h: wan27(prompt="Image 1 " + "x" * 5000), "InvalidParameter"),
    "prompt missing": (lambda h: wan27(prompt=""), "InvalidParameter"),
    "negative prompt over 500": (lambda h: _with(wan27(), ("input", "negative_prompt"), "n" * 501), "InvalidParameter"),
    "resolution off the list": (lambda h: wan27(resolution="480P"), "InvalidParameter"),
    "ratio off the list": (lambda h: wan27(ratio="21:9"), "InvalidParameter"),
    "duration above 15": (lambda h: wan27(duration=16), "InvalidParameter"),
    "duration below 2": (lambda h: wan27(duration=1), "InvalidParameter"),
    "duration above 10 with a video": (lambda h: wan27(video(REMOTE_MP4), duration=11), "InvalidParameter"),
    "duration not a whole number": (lambda h: wan27(duration="5"), "InvalidParameter"),
    "seed below 0": (lambda h: wan27(seed=-1), "InvalidParameter"),
    "seed above 2^31-1": (lambda h: wan27(seed=2**31), "InvalidParameter"),
    "prompt_extend not a boolean": (lambda h: wan27(prompt_extend="yes"), "InvalidParameter"),
    "watermark not a boolean": (lambda h: wan27(watermark=1), "InvalidParameter"),
    "six references": (lambda h: wan27(*[image(REMOTE_PNG)] * 6), "InvalidParameter"),
    "two first frames": (lambda h: wan27({"type": "first_frame", "url": REMOTE_PNG}, {"type": "first_frame", "url": REMOTE_PNG}, image(REMOTE_PNG)), "InvalidParameter"),
    "a media item without url": (lambda h: wan27({"type": "reference_image"}), "InvalidParameter"),
    "an unknown media type": (lambda h: wan27({"type": "reference_audio", "url": REMOTE_PNG}), "InvalidParameter"),
    "a URL scheme it cannot fetch": (lambda h: wan27(image("ftp://example.com/a.png")), "InvalidURL"),
    "a video as a data URI": (lambda h: wan27(video("data:video/mp4;base64,AAAA")), "InvalidURL"),
    "an image under 240 px": (lambda h: wan27(image(h["small_png"])), "InvalidParameter"),
    "an inline image under 240 px": (lambda h: wan27(image(h["small_png_inline"])), "InvalidParameter"),
    "an image that is not media": (lambda h: wan27(image(h["text"])), "BadRequest.UnsupportedFileFormat"),
    "a video given as an image": (lambda h: wan27(image(h["video_3s"])), "BadRequest.UnsupportedFileFormat"),
    "a voice over 10 s": (lambda h: wan27(image(h["png"], reference_voice=h["wav_12s"])), "InvalidParameter"),
    "a whole-request voice that is an image": (lambda h: _with(wan27(), ("input", "reference_voice"), h["png"]), "BadRequest.UnsupportedFileFormat"),
}

WAN26_REJECTS: dict[str, tuple[Callable[[dict[str, str]], dict[str, Any]], str]] = {
    "duration above 10": (lambda h: wan26(duration=11), "InvalidParameter"),
    "shot_type off the list": (lambda h: wan26(shot_type="wide"), "InvalidParameter"),
    "four videos": (lambda h: wan26(*[REMOTE_MP4] * 4), "InvalidParameter"),
    "a sound file as a reference": (lambda h: wan26(h["png"], h["wav_12s"]), "BadRequest.UnsupportedFileFormat"),
    "seed below 0": (lambda h: wan26(model="wan2.6-r2v-flash", seed=-1), "InvalidParameter"),
    "a negative prompt that is not text cannot be truncated": (lambda h: _with(wan26(), ("input", "negative_prompt"), 7), "InvalidParameter"),
}


def _with(body: dict[str, Any], path: tuple[str, str], value: Any) -> dict[str, Any]:
    body[path[0]][path[1]] = value
    return body


@pytest.mark.parametrize("case", sorted(WAN27_REJECTS))
def test_wan27_rejects_each_limit_at_submit(case: str, api: httpx.Client, hosted: dict[str, str], simulator: Simulator) -> None:
    make, code = WAN27_REJECTS[case]
    status, payload = refused(api, make(hosted))
    assert (status, payload["code"]) == (400, code), payload
    assert payload["message"] and payload["request_id"]
    assert simulator.ledger.tasks() == []  # nothing was created


@pytest.mark.parametrize("case", sorted(WAN26_REJECTS))
def test_wan26_rejects_its_limits_at_submit(case: str, api: httpx.Client, hosted: dict[str, str]) -> None:
    make, code = WAN26_REJECTS[case]
    status, payload = refused(api, make(hosted))
    assert (status, payload["code"]) == (400, code), payload


# --- FAIL, IGNORE, TRUNCATE -----------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        wan26(size="1000*1000"),  # a size off the list fails later [capture]
        {"model": "wan2.7-r2v", "input": {"prompt": "A quiet street."}, "parameters": {"duration": 2}},  # no media
        {"model": "wan2.6-r2v", "input": {"prompt": "A quiet street."}},  # no reference_urls
    ],
    ids=["wan26 size off the list", "wan27 without media", "wan26 without references"],
)
def test_fail_reactions_accept_then_fail_the_task_unbilled(body: dict[str, Any], api: httpx.Client, simulator: Simulator) -> None:
    task_id = submit(api, body)
    output = finished(simulator, api, task_id)["output"]  # it fails once it leaves the queue
    assert output["task_status"] == "FAILED"
    assert output["code"] == "InvalidParameter" and output["message"]
    assert "usage" not in query(api, task_id)
    assert simulator.ledger.billed_seconds() == 0


def test_ignored_audio_false_on_wan26_r2v_still_has_sound(api: httpx.Client, simulator: Simulator, http_client: Client) -> None:
    task_id = submit(api, wan26(audio=False))
    answer = finished(simulator, api, task_id)
    assert answer["output"]["task_status"] == "SUCCEEDED"
    assert answer["usage"]["audio"] is True
    assert simulator.ledger.task(task_id).adjusted == ("audio ignored",)  # type: ignore[union-attr]
    data = http_client().get(answer["output"]["video_url"]).content
    assert video_facts(data) == ("h264", 1280, 720, 2.0, True)


def test_flash_honours_audio_false_with_a_silent_video(api: httpx.Client, simulator: Simulator, http_client: Client) -> None:
    answer = finished(simulator, api, submit(api, wan26(model="wan2.6-r2v-flash", audio=False)))
    assert answer["usage"]["audio"] is False
    assert video_facts(http_client().get(answer["output"]["video_url"]).content)[-1] is False


def test_wan26_truncates_an_over_long_prompt_and_bills_in_full(api: httpx.Client, simulator: Simulator) -> None:
    prompt = "character1 " + "walks on " * 200  # 1811 characters; wan2.6 keeps 1500
    task_id = submit(api, wan26(prompt=prompt))
    answer = finished(simulator, api, task_id)
    assert answer["output"]["task_status"] == "SUCCEEDED"
    assert answer["output"]["orig_prompt"] == prompt[:1500]
    assert simulator.ledger.task(task_id).adjusted == ("prompt truncated",)  # type: ignore[union-attr]
    assert answer["usage"]["duration"] == 2.0  # output seconds; no reference video


# --- media the simulator cannot download, and kinds from the media -------------------------

EXTENSIONLESS = [f"https://cdn.test/clip-{n}" for n in range(1, 5)]  # videos whose URLs do not say so


def test_an_undeclared_remote_url_fails_the_task_as_undownloadable(api: httpx.Client, simulator: Simulator) -> None:
    # the simulator has no network; it was told nothing of this file, so it could not be downloaded [doc]
    output = finished(simulator, api, submit(api, wan27(video("https://cdn.test/never-told.mp4"))))["output"]
    assert (output["task_status"], output["code"]) == ("FAILED", "InvalidParameter.DataInspection")
    assert "POST /_sim/facts" in output["message"]
    assert simulator.ledger.billed_seconds() == 0


def test_wan26_counts_and_bills_videos_by_their_media_not_their_urls(start_sim: Callable[..., Simulator], http_client: Client) -> None:
    declared = {url: {**REMOTE_VIDEO, "seconds": 6.0} for url in EXTENSIONLESS}
    declared["https://cdn.test/poster.mp4"] = REMOTE_IMAGE  # a picture, whatever its name says
    sim = start_sim(remote_media=declared)
    api = dashscope_client(sim, http_client)
    status, payload = refused(api, wan26(*EXTENSIONLESS))  # four videos: wan2.6 takes three
    assert (status, payload["code"]) == (400, "InvalidParameter")
    answer = finished(sim, api, submit(api, wan26(EXTENSIONLESS[0], "https://cdn.test/poster.mp4", duration=3)))
    assert answer["usage"]["input_video_duration"] == 2.5  # two references share the cap; the picture bills nothing


def test_facts_are_declared_over_http_and_judged_like_downloaded_bytes(api: httpx.Client, simulator: Simulator, http_client: Client) -> None:
    sim_api = http_client(simulator.base_url)
    small = {"kind": "image", "format": "png", "bytes": 9_000, "width": 200, "height": 256}
    assert sim_api.post("/_sim/facts", json={"https://cdn.test/small.png": small}).json() == {"declared": 1}
    status, payload = refused(api, wan27(image("https://cdn.test/small.png")))
    assert (status, payload["code"]) == (400, "InvalidParameter")  # under 240 px, as if its bytes had been read
    for bad in ({"data:image/png;base64,AAAA": small}, {"https://cdn.test/a.png": {**small, "kind": "hologram"}}, {"https://cdn.test/a.png": {"kind": "image"}}, []):
        answer = sim_api.post("/_sim/facts", json=bad)
        assert answer.status_code == 400 and answer.json()["message"], bad


def test_a_data_uri_that_does_not_decode_is_refused_at_submit(api: httpx.Client, simulator: Simulator) -> None:
    # inline bytes come with the request, so the submit itself is refused: a PNG signature and text are no picture
    lookalike = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nnot a picture").decode()
    status, payload = refused(api, wan27(image(lookalike)))
    assert (status, payload["code"]) == (400, "BadRequest.UnsupportedFileFormat")
    assert simulator.ledger.tasks() == []


# --- moderation ------------------------------------------------------------------------


def test_input_moderation_refuses_at_submit(api: httpx.Client, simulator: Simulator) -> None:
    status, payload = refused(api, wan27(prompt=f"Image 1 holds a {simulator.config.moderation_reject_word.lower()} sign."))
    assert (status, payload["code"]) == (400, "DataInspectionFailed")


def test_output_moderation_fails_the_task_unbilled(api: httpx.Client, simulator: Simulator) -> None:
    task_id = submit(api, wan27(prompt=f"Image 1 paints {simulator.config.moderation_fail_word}."))
    output = finished(simulator, api, task_id)["output"]
    assert (output["task_status"], output["code"]) == ("FAILED", "DataInspectionFailed")
    assert simulator.ledger.billed_seconds() == 0


# --- billing from real reference durations --------------------------------------------


def test_wan27_bills_each_video_up_to_its_share_of_five_seconds(api: httpx.Client, hosted: dict[str, str], simulator: Simulator) -> None:
    # two videos share the 5 s cap (2.5 s each): 3 s counts 2.5, 2 s counts 2; the image is free
    body = wan27(video(hosted["video_3s"]), video(hosted["video_2s_silent"]), image(hosted["png"]), duration=5)
    answer = finished(simulator, api, submit(api, body))
    assert answer.get("usage") == {
        "duration": 9.5,
        "ratio": "16:9",
        "input_video_duration": 4.5,
        "output_video_duration": 5,
        "video_count": 1,
        "SR": 720,
        "audio": True,
    }, answer
    assert simulator.ledger.billed_seconds(account_id(KEY)) == Decimal("9.5")


def test_wan26_splits_the_cap_over_all_references_and_reads_kinds_from_bytes(api: httpx.Client, hosted: dict[str, str], simulator: Simulator) -> None:
    # three references share the cap (1.65 s each); the hosted URL has no .mp4 suffix, its bytes say video
    answer = finished(simulator, api, submit(api, wan26(hosted["video_3s"], hosted["png"], hosted["jpeg"], duration=5)))
    assert answer["usage"]["size"] == "1280*720" and "ratio" not in answer["usage"]
    assert (answer["usage"]["input_video_duration"], answer["usage"]["duration"]) == (1.65, 6.65)


def test_a_remote_video_bills_the_length_declared_for_it(start_sim: Callable[..., Simulator], http_client: Client) -> None:
    sim = start_sim(remote_media={REMOTE_MP4: {**REMOTE_VIDEO, "seconds": 2.0}})
    api = dashscope_client(sim, http_client)
    answer = finished(sim, api, submit(api, wan27(video(REMOTE_MP4), duration=3)))
    assert (answer["usage"]["input_video_duration"], answer["usage"]["duration"]) == (2, 5.0)


# --- task shapes, results ----------------------------------------------------------------


def test_task_bodies_through_the_life_cycle(start_sim: Callable[..., Simulator], http_client: Client) -> None:
    sim = start_sim(max_running=1)
    api = dashscope_client(sim, http_client)
    first, second = submit(api, wan27()), submit(api, wan27(prompt="Image 1 sits."))
    assert query(api, first)["output"]["task_status"] == "PENDING"  # waiting in the provider's queue
    sim.advance(sim.config.pending_seconds)
    running, pending = query(api, first), query(api, second)
    assert set(pending["output"]) == {"task_id", "task_status", "submit_time"} and pending["output"]["task_status"] == "PENDING"
    assert set(running["output"]) == {"task_id", "task_status", "submit_time", "scheduled_time"}
    assert BEIJING_TIME.match(running["output"]["scheduled_time"])
    done = finished(sim, api, first)
    assert set(done["output"]) == {"task_id", "task_status", "submit_time", "scheduled_time", "end_time", "orig_prompt", "video_url"}
    assert done["output"]["orig_prompt"] == "Image 1 waves at the camera." and done["request_id"]
    assert all(BEIJING_TIME.match(done["output"][k]) for k in ("submit_time", "scheduled_time", "end_time"))
    assert query(api, second)["output"]["scheduled_time"] == done["output"]["end_time"]  # the slot passed on at once


def test_unknown_and_foreign_tasks_are_unknown(api: httpx.Client, simulator: Simulator, http_client: Client) -> None:
    task_id = submit(api, wan27())
    other = dashscope_client(simulator, http_client, key=OTHER_KEY)
    assert query(other, task_id) == {"request_id": ANY, "output": {"task_id": task_id, "task_status": "UNKNOWN"}}
    assert query(api, "1111")["output"] == {"task_id": "1111", "task_status": "UNKNOWN"}


def test_the_result_is_a_real_mp4_of_the_requested_frame_and_length(api: httpx.Client, simulator: Simulator, http_client: Client) -> None:
    answer = finished(simulator, api, submit(api, wan27(ratio="9:16", duration=3)))
    url = answer["output"]["video_url"]
    assert url.startswith(f"{simulator.base_url}/results/") and "Expires=" in url and "Signature=" in url
    response = http_client().get(url)
    assert response.headers["content-type"] == "video/mp4"
    assert video_facts(response.content) == ("h264", 720, 1280, 3.0, True)
    part = http_client().get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == response.content[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(response.content)}"


def test_a_first_frame_decides_the_ratio(api: httpx.Client, simulator: Simulator) -> None:
    portrait = simulator.host_media(synth.image_bytes(480, 860, "png"))
    body = wan27({"type": "first_frame", "url": portrait}, image(REMOTE_PNG), ratio="16:9")
    answer = finished(simulator, api, submit(api, body))
    assert answer["usage"]["ratio"] == "9:16"


def test_results_expire_after_24_hours_with_the_oss_xml_error(api: httpx.Client, simulator: Simulator, http_client: Client) -> None:
    url = finished(simulator, api, submit(api, wan27()))["output"]["video_url"]
    assert http_client().get(url).status_code == 200
    simulator.advance(DAY + 1)
    response = http_client().get(url)
    assert response.status_code == 403
    assert "<Code>AccessDenied</Code>" in response.text and "<Message>Request has expired.</Message>" in response.text
    tampered = http_client().get(url.replace("Signature=", "Signature=x"))
    assert tampered.status_code == 403 and "SignatureDoesNotMatch" in tampered.text


def test_tasks_older_than_24_hours_are_unknown(api: httpx.Client, simulator: Simulator) -> None:
    task_id = submit(api, wan27())
    simulator.advance(DAY + 1)
    assert query(api, task_id)["output"]["task_status"] == "UNKNOWN"
    assert api.get("/tasks").json()["total"] == 0


# --- the task list -----------------------------------------------------------------------


def test_the_task_list_filters_pages_and_carries_what_reconciliation_needs(api: httpx.Client, simulator: Simulator) -> None:
    done = submit(api, wan27(prompt="Image 1 one."))
    simulator.advance(LONGEST_GENERATION)
    failed = submit(api, wan26(size="1000*1000"))
    running = submit(api, wan27(prompt="Image 1 three."))
    simulator.advance(simulator.config.pending_seconds)  # both leave the queue: one fails, one runs
    listing = api.get("/tasks").json()
    assert (listing["total"], listing["total_page"], listing["page_no"], listing["page_size"]) == (3, 1, 1, 10)
    assert "output" not in listing and listing["request_id"]
    assert [item["task_id"] for item in listing["data"]] == [running, failed, done]  # newest first
    item = listing["data"][2]
    # exactly the fields api-notes shows: no prompt, so nothing a client could match a request by [sdk][capture]
    assert set(item) == {"task_id", "status", "model_name", "request_id", "gmt_create", "start_time", "end_time", "region"}
    assert item["status"] == "SUCCEEDED" and isinstance(item["gmt_create"], int)
    assert item["end_time"] > item["start_time"] >= item["gmt_create"] > 1_600_000_000_000  # epoch ms
    assert [i["task_id"] for i in api.get("/tasks", params={"model_name": "wan2.6-r2v"}).json()["data"]] == [failed]
    assert [i["task_id"] for i in api.get("/tasks", params={"status": "RUNNING"}).json()["data"]] == [running]
    page = api.get("/tasks", params={"page_size": 2, "page_no": 2}).json()
    assert (page["total_page"], [i["task_id"] for i in page["data"]]) == (2, [done])
    later = format_list_time(simulator.now() + 3600)
    assert api.get("/tasks", params={"start_time": later, "end_time": later}).json()["total"] == 0
    window = api.get("/tasks", params={"start_time": format_list_time(simulator.now() - 3600), "end_time": format_list_time(simulator.now())})
    assert window.json()["total"] == 3
    assert api.get("/tasks", params={"start_time": "yesterday"}).status_code == 400


# --- cancel ------------------------------------------------------------------------------


def test_only_pending_tasks_can_be_canceled_and_they_give_up_their_turn(start_sim: Callable[..., Simulator], http_client: Client) -> None:
    sim = start_sim(max_running=1, generation_seconds=(100, 100))
    api = dashscope_client(sim, http_client)
    running, pending, last = (submit(api, wan27(prompt=f"Image 1 number {n}.")) for n in range(3))
    sim.advance(sim.config.pending_seconds)  # the first takes the slot; the others wait for it
    response = api.post(f"/tasks/{pending}/cancel")
    assert response.status_code == 200 and set(response.json()) == {"request_id"}
    assert query(api, pending)["output"]["task_status"] == "CANCELED"
    for task_id in (running, pending, "no-such-task"):
        refusal = api.post(f"/tasks/{task_id}/cancel")
        assert refusal.status_code == 400
        assert refusal.json()["code"] == "UnsupportedOperation"
        assert refusal.json()["message"] == "Failed to cancel the task, please confirm if the task is in PENDING status."
    sim.advance(100)
    assert query(api, last)["output"]["task_status"] == "RUNNING"


def test_a_new_task_waits_pending_and_can_be_canceled_before_it_starts(api: httpx.Client, simulator: Simulator) -> None:
    task_id = submit(api, wan27())  # every slot is free, yet the provider queues it a moment [guess]
    assert simulator.config.pending_seconds > 0 and query(api, task_id)["output"]["task_status"] == "PENDING"
    assert api.post(f"/tasks/{task_id}/cancel").status_code == 200
    simulator.advance(LONGEST_GENERATION)
    assert query(api, task_id)["output"]["task_status"] == "CANCELED"
    started = submit(api, wan27(prompt="Image 1 stays."))
    simulator.advance(simulator.config.pending_seconds)
    assert query(api, started)["output"]["task_status"] == "RUNNING"
    assert api.post(f"/tasks/{started}/cancel").json()["code"] == "UnsupportedOperation"


# --- quotas ------------------------------------------------------------------------------


def test_five_submissions_a_second_per_account(api: httpx.Client, simulator: Simulator, http_client: Client) -> None:
    for n in range(5):
        submit(api, wan27(prompt=f"Image 1 take {n}."))
    status, payload = refused(api, wan27(prompt="Image 1 one too many."))
    assert (status, payload["code"]) == (429, "Throttling.RateQuota")
    submit(dashscope_client(simulator, http_client, key=OTHER_KEY), wan27())  # another account has its own quota
    simulator.advance(1.0)
    submit(api, wan27(prompt="Image 1 after a second."))


def test_twenty_task_queries_a_second_across_get_list_and_cancel(api: httpx.Client, simulator: Simulator) -> None:
    calls = (lambda: api.get("/tasks/x"), lambda: api.get("/tasks"), lambda: api.post("/tasks/x/cancel"))
    for n in range(20):
        assert calls[n % 3]().status_code in (200, 400)
    throttled = api.get("/tasks/x")
    assert throttled.status_code == 429 and throttled.json()["code"] == "Throttling.RateQuota"
    simulator.advance(1.0)
    assert api.get("/tasks/x").status_code == 200


def test_five_tasks_in_progress_the_rest_wait_and_start_first_in_first_out(start_sim: Callable[..., Simulator], http_client: Client) -> None:
    sim = start_sim(submit_rate=(Rate(100, 1.0),), generation_seconds=(100, 100))
    api = dashscope_client(sim, http_client)
    ids = [submit(api, wan27(prompt=f"Image 1 number {n}.")) for n in range(7)]
    sim.advance(sim.config.pending_seconds)
    assert [query(api, t)["output"]["task_status"] for t in ids] == ["RUNNING"] * 5 + ["PENDING"] * 2
    sim.advance(100)
    states = [query(api, t)["output"] for t in ids]
    assert [s["task_status"] for s in states] == ["SUCCEEDED"] * 5 + ["RUNNING"] * 2
    assert states[5]["scheduled_time"] == states[0]["end_time"] and states[6]["scheduled_time"] == states[1]["end_time"]


def test_one_slot_serves_its_queue_in_order(start_sim: Callable[..., Simulator], http_client: Client) -> None:
    sim = start_sim(max_running=1, generation_seconds=(100, 100))
    api = dashscope_client(sim, http_client)
    ids = [submit(api, wan27(prompt=f"Image 1 number {n}.")) for n in range(3)]
    sim.advance(sim.config.pending_seconds)
    seen = []
    for _ in range(3):
        seen.append([query(api, t)["output"]["task_status"][0] for t in ids])
        sim.advance(100)
    assert seen == [["R", "P", "P"], ["S", "R", "P"], ["S", "S", "R"]]


def test_the_keys_of_one_account_share_its_quotas_and_tasks(start_sim: Callable[..., Simulator], http_client: Client) -> None:
    sim = start_sim(accounts={KEY: "studio", OTHER_KEY: "studio"}, max_running=1, pending_seconds=0.0, generation_seconds=(100, 100))
    one, two = dashscope_client(sim, http_client), dashscope_client(sim, http_client, key=OTHER_KEY)
    first, second = submit(one, wan27()), submit(two, wan27(prompt="Image 1 bows."))
    assert [query(two, t)["output"]["task_status"] for t in (first, second)] == ["RUNNING", "PENDING"]  # one slot for both keys
    for n in range(3):
        submit((one, two)[n % 2], wan27(prompt=f"Image 1 take {n}."))
    status, payload = refused(two, wan27(prompt="Image 1 a sixth in a second."))
    assert (status, payload["code"]) == (429, "Throttling.RateQuota")  # five submits a second for the account
    alone = dashscope_client(sim, http_client, key="sk-a-third-key")
    submit(alone, wan27(prompt="Image 1 elsewhere."))  # an unlisted key is an account of its own
    assert {t.account for t in sim.ledger.tasks()} == {"acct-studio", account_id("sk-a-third-key")}


def test_a_billing_offset_makes_usage_bill_more_input_seconds(start_sim: Callable[..., Simulator], http_client: Client) -> None:
    sim = start_sim(billing_offset_seconds=1.5)  # a test switch: a provider billing other than its rules
    api = dashscope_client(sim, http_client)
    usage = finished(sim, api, submit(api, wan27(video(REMOTE_MP4), duration=3)))["usage"]
    assert (usage["input_video_duration"], usage["output_video_duration"], usage["duration"]) == (6.5, 3, 9.5)
    assert sim.ledger.billed_seconds() == Decimal("9.5")


# --- uploads ------------------------------------------------------------------------------


def upload(api: httpx.Client, http_client: Client, data: bytes, name: str, model: str = "wan2.7-r2v") -> str:
    response = api.get("/uploads", params={"action": "getPolicy", "model": model})
    assert response.status_code == 200, response.text
    policy = response.json()["data"]
    form = {
        "OSSAccessKeyId": policy["oss_access_key_id"],
        "Signature": policy["signature"],
        "policy": policy["policy"],
        "key": f"{policy['upload_dir']}/{name}",
        "x-oss-object-acl": policy["x_oss_object_acl"],
        "x-oss-forbid-overwrite": policy["x_oss_forbid_overwrite"],
        "success_action_status": "200",
        "x-oss-content-type": "video/mp4",
    }
    stored = http_client().post(policy["upload_host"], data=form, files={"file": (name, data, "video/mp4")})
    assert stored.status_code == 200, stored.text
    return f"oss://{form['key']}"


def test_the_upload_policy_has_the_documented_fields(api: httpx.Client, simulator: Simulator) -> None:
    payload = api.get("/uploads", params={"action": "getPolicy", "model": "wan2.7-r2v"}).json()
    assert set(payload["data"]) == {
        "policy", "signature", "upload_dir", "upload_host", "expire_in_seconds", "max_file_size_mb",
        "oss_access_key_id", "x_oss_object_acl", "x_oss_forbid_overwrite",
    }  # fmt: skip
    assert payload["data"]["upload_host"].startswith(simulator.base_url)
    assert (payload["data"]["expire_in_seconds"], payload["data"]["x_oss_forbid_overwrite"]) == (300, "true")
    assert api.get("/uploads", params={"action": "getPolicy", "model": "nope"}).status_code == 400


def test_an_uploaded_video_is_read_and_billed_by_its_real_length(api: httpx.Client, http_client: Client, simulator: Simulator, media_bytes: dict[str, bytes]) -> None:
    key = upload(api, http_client, media_bytes["video_3s"], "kai.mp4")
    answer = finished(simulator, api, submit(api, wan27(video(key)), **{"X-DashScope-OssResourceResolve": "enable"}))
    assert answer["output"]["task_status"] == "SUCCEEDED"
    assert answer["usage"]["input_video_duration"] == 3


@pytest.mark.parametrize("problem", ["no resolve header", "never uploaded", "another account", "another model", "expired"])
def test_an_oss_file_that_cannot_be_read_fails_the_task(
    problem: str, api: httpx.Client, http_client: Client, simulator: Simulator, media_bytes: dict[str, bytes]
) -> None:
    uploader = dashscope_client(simulator, http_client, key=OTHER_KEY) if problem == "another account" else api
    key = upload(uploader, http_client, media_bytes["video_3s"], "kai.mp4", model="wan2.6-r2v" if problem == "another model" else "wan2.7-r2v")
    if problem == "never uploaded":
        key += ".missing"
    if problem == "expired":
        simulator.advance(2 * DAY + 1)
    headers = {} if problem == "no resolve header" else {"X-DashScope-OssResourceResolve": "enable"}
    output = finished(simulator, api, submit(api, wan27(video(key)), **headers))["output"]
    assert (output["task_status"], output["code"]) == ("FAILED", "InvalidParameter.DataInspection")


def test_the_oss_post_checks_its_form(api: httpx.Client, http_client: Client, simulator: Simulator, media_bytes: dict[str, bytes]) -> None:
    policy = api.get("/uploads", params={"action": "getPolicy", "model": "wan2.7-r2v"}).json()["data"]
    form = {
        "OSSAccessKeyId": policy["oss_access_key_id"], "Signature": policy["signature"], "policy": policy["policy"],
        "key": f"{policy['upload_dir']}/a.png", "x-oss-forbid-overwrite": "true", "success_action_status": "200",
    }  # fmt: skip
    post = http_client().post
    files = {"file": ("a.png", media_bytes["png"], "image/png")}
    missing = post(policy["upload_host"], data={k: v for k, v in form.items() if k != "Signature"}, files=files)
    assert missing.status_code == 400 and "<Code>InvalidArgument</Code>" in missing.text
    outside = post(policy["upload_host"], data={**form, "key": "elsewhere/a.png"}, files=files)
    assert outside.status_code == 403
    assert post(policy["upload_host"], data=form, files=files).status_code == 200
    plain = post(policy["upload_host"], data={**form, "key": f"{policy['upload_dir']}/c.png", "success_action_status": "204"}, files=files)
    assert (plain.status_code, plain.content) == (204, b"")  # OSS's default; only 200 satisfies the SDK
    again = post(policy["upload_host"], data=form, files=files)
    assert again.status_code == 409 and "FileAlreadyExists" in again.text
    simulator.advance(301)
    late = post(policy["upload_host"], data={**form, "key": f"{policy['upload_dir']}/b.png"}, files=files)
    assert late.status_code == 403 and "Policy expired" in late.text


# --- the ledger --------------------------------------------------------------------------------


def test_the_same_shot_under_new_oss_keys_counts_as_a_duplicate(api: httpx.Client, http_client: Client, simulator: Simulator, media_bytes: dict[str, bytes]) -> None:
    resolve = {"X-DashScope-OssResourceResolve": "enable"}
    first = submit(api, wan27(video(upload(api, http_client, media_bytes["video_3s"], "a.mp4"))), **resolve)
    second = submit(api, wan27(video(upload(api, http_client, media_bytes["video_3s"], "b.mp4"))), **resolve)
    submit(api, wan27(video(upload(api, http_client, media_bytes["video_2s_silent"], "c.mp4"))), **resolve)
    assert list(simulator.ledger.duplicate_submissions().values()) == [[first, second]]


def test_the_ledger_names_accounts_by_hash_and_never_holds_a_key(api: httpx.Client, simulator: Simulator, http_client: Client) -> None:
    submit(api, wan27())
    dump = http_client(simulator.base_url).get("/_sim/ledger")
    assert dump.status_code == 200 and KEY not in dump.text
    (entry,) = simulator.ledger.requests(kind="submit")
    assert entry.account == account_id(KEY) and "authorization" not in entry.headers
    assert entry.body["parameters"] == {"resolution": "720P", "duration": 2}


def test_a_handler_bug_answers_500_without_a_traceback(api: httpx.Client, simulator: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    task_id = submit(api, wan27())
    simulator.advance(LONGEST_GENERATION)
    from r2v_pipeline.sim import dashscope

    monkeypatch.setattr(dashscope, "usage", lambda task: 1 / 0)
    response = api.get(f"/tasks/{task_id}")
    assert response.status_code == 500
    assert response.json()["code"] == "InternalError" and "Traceback" not in response.text


def test_generation_time_can_follow_the_prompt_so_two_clients_get_the_same(start_sim: Callable[..., Simulator], http_client: Client) -> None:
    sim = start_sim(generation_by="prompt")
    ours, theirs = dashscope_client(sim, http_client), dashscope_client(sim, http_client, key=OTHER_KEY)
    same = [submit(api, wan27(prompt="Image 1 takes a bow.")) for api in (ours, theirs)]
    other = submit(ours, wan27(prompt="Image 1 takes another bow."))
    sim.advance(LONGEST_GENERATION + sim.config.pending_seconds + 1)
    outputs = [query(api, t)["output"] for api, t in ((ours, same[0]), (theirs, same[1]), (ours, other))]
    seconds = [_time(o["end_time"]) - _time(o["scheduled_time"]) for o in outputs]  # type: ignore[operator]
    assert seconds[0] == pytest.approx(seconds[1], abs=0.002) and abs(seconds[0] - seconds[2]) > 0.01
