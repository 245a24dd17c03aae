"""The simulator's Freepik side: the data envelope, statuses, errors, paging, rate limits."""

from __future__ import annotations

from typing import Any, Callable

import httpx
import pytest

from r2v_pipeline.media import synth
from r2v_pipeline.media.probe import probe_bytes
from r2v_pipeline.sim import Rate, Simulator

PATH = "/v1/ai/reference-to-video/wan-2-7"
KEY = "fpk-sim-test"
REMOTE_PNG = "https://example.com/mia.png"

Client = Callable[..., httpx.Client]


@pytest.fixture
def api(simulator: Simulator, http_client: Client) -> httpx.Client:
    return http_client(simulator.freepik_url, {"x-freepik-api-key": KEY})


def body(**fields: Any) -> dict[str, Any]:
    return {"prompt": "Image 1 waves.", "image_urls": [{"url": REMOTE_PNG}], "resolution": "720P", "duration": 2, **fields}


def create(api: httpx.Client, payload: dict[str, Any]) -> str:
    response = api.post(PATH, json=payload)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["status"], data["generated"]) == ("CREATED", [])
    return data["task_id"]


def test_a_task_goes_created_in_progress_completed_with_a_real_video(api: httpx.Client, simulator: Simulator, http_client: Client) -> None:
    task_id = create(api, body(aspect_ratio="1:1"))
    assert api.get(f"{PATH}/{task_id}").json() == {"data": {"generated": [], "task_id": task_id, "status": "CREATED"}}
    simulator.advance(simulator.config.pending_seconds)  # out of the queue
    assert api.get(f"{PATH}/{task_id}").json() == {"data": {"generated": [], "task_id": task_id, "status": "IN_PROGRESS"}}
    simulator.advance(300)
    data = api.get(f"{PATH}/{task_id}").json()["data"]
    assert data["status"] == "COMPLETED" and len(data["generated"]) == 1
    info = probe_bytes(http_client().get(data["generated"][0]).content)
    assert (info.format, info.width, info.height, round(info.seconds or 0)) == ("mp4", 960, 960, 2)


def test_a_start_image_decides_the_ratio(api: httpx.Client, simulator: Simulator) -> None:
    portrait = simulator.host_media(synth.image_bytes(300, 400, "png"))
    task_id = create(api, body(start_image_url=portrait, aspect_ratio="16:9"))
    simulator.advance(300)
    info = probe_bytes(httpx.get(api.get(f"{PATH}/{task_id}").json()["data"]["generated"][0], trust_env=False).content)
    assert (info.width, info.height) == (832, 1088)  # 3:4 at 720P


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        ({"image_urls": []}, ["image_urls"]),
        ({"image_urls": [{"url": REMOTE_PNG}] * 6}, ["image_urls"]),  # over 5 in all and over 5 images: named once
        ({"duration": 11, "aspect_ratio": "2:1"}, ["aspect_ratio", "duration"]),
        ({"duration": 11, "video_urls": [{"url": "https://example.com/cast/kai.mp4"}]}, ["duration"]),  # two rules broken, one parameter
        ({"prompt": "x" * 5001}, ["prompt"]),
        ({"resolution": "4K"}, ["resolution"]),
        ({"webhook_url": "ftp://example.com/hook"}, ["webhook_url"]),
        ({"image_urls": [{"url": "oss://bucket/a.png"}]}, ["image_urls[0].url"]),
    ],
)
def test_invalid_requests_name_each_parameter(api: httpx.Client, fields: dict[str, Any], names: list[str]) -> None:
    response = api.post(PATH, json=body(**fields))
    assert response.status_code == 400
    payload = response.json()
    assert payload["message"] == "Your request parameters didn't validate."
    assert sorted(p["name"] for p in payload["invalid_params"]) == names
    assert all(p["reason"] for p in payload["invalid_params"])


def test_a_missing_or_unknown_key_is_401(start_sim: Callable[..., Simulator], http_client: Client) -> None:
    sim = start_sim(freepik_keys=frozenset({KEY}))
    for headers in ({}, {"x-freepik-api-key": "fpk-wrong"}):
        response = http_client(sim.freepik_url, headers).post(PATH, json=body())
        assert (response.status_code, response.json()) == (401, {"message": "Invalid API key"})
    assert http_client(sim.freepik_url, {"x-magnific-api-key": KEY}).get(PATH).status_code == 200


def test_the_list_pages_newest_first(api: httpx.Client, simulator: Simulator) -> None:
    ids = [create(api, body(prompt=f"Image 1 number {n}.")) for n in range(3)]
    simulator.advance(simulator.config.pending_seconds)
    first = api.get(PATH, params={"page": 1, "page_size": 2}).json()["data"]
    second = api.get(PATH, params={"page": 2, "page_size": 2}).json()["data"]
    assert [t["task_id"] for t in first + second] == ids[::-1]
    assert {t["status"] for t in first} == {"IN_PROGRESS"}
    assert api.get(PATH, params={"page": 0}).status_code == 400


def test_another_accounts_task_is_not_found(api: httpx.Client, simulator: Simulator, http_client: Client) -> None:
    task_id = create(api, body())
    other = http_client(simulator.freepik_url, {"x-freepik-api-key": "fpk-other"})
    assert other.get(f"{PATH}/{task_id}").status_code == 404
    assert other.get(PATH).json() == {"data": []}


def test_moderation_refuses_input_and_fails_output(api: httpx.Client, simulator: Simulator) -> None:
    refused = api.post(PATH, json=body(prompt=f"Image 1 {simulator.config.moderation_reject_word}"))
    assert refused.status_code == 400 and refused.json()["invalid_params"][0]["name"] == "prompt"
    task_id = create(api, body(prompt=f"Image 1 {simulator.config.moderation_fail_word}"))
    simulator.advance(300)
    assert api.get(f"{PATH}/{task_id}").json()["data"] == {"generated": [], "task_id": task_id, "status": "FAILED"}


def test_the_rate_limit_answers_429(start_sim: Callable[..., Simulator], http_client: Client) -> None:
    sim = start_sim(freepik_rate=(Rate(3, 5.0),))
    api = http_client(sim.freepik_url, {"x-freepik-api-key": KEY})
    assert [api.get(PATH).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert set(api.get(PATH).json()) == {"message"}
    sim.advance(5.0)
    assert api.get(PATH).status_code == 200


def test_an_injected_503_has_the_documented_body(start_sim: Callable[..., Simulator], http_client: Client) -> None:
    sim = start_sim(faults="error503=1@freepik")
    response = http_client(sim.freepik_url, {"x-freepik-api-key": KEY}).post(PATH, json=body())
    assert (response.status_code, response.json()) == (503, {"message": "Service Unavailable. Please try again later."})
    assert sim.ledger.tasks() == []
