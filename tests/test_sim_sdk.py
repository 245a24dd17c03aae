"""The official dashscope SDK, pointed at the simulator, works unchanged: the seed
documents' examples, async_call / fetch / wait / cancel / list, and its own upload."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path
from typing import Any, Callable, Iterator

import av
import dashscope
import httpx
import pytest
from dashscope import VideoSynthesis

from r2v_pipeline.media import synth
from r2v_pipeline.media.probe import probe_bytes
from r2v_pipeline.sim import Simulator
from r2v_pipeline.sim.command import read_media_facts

from .conftest import REMOTE_MEDIA

SEED_REQUESTS = Path(__file__).parent / "data" / "seed_requests"
# What the seed examples' remote files hold, declared to the simulator (it has no network).
SEED_MEDIA = Path(__file__).parent.parent / "manifests" / "seeds" / "simulator" / "media-facts.yaml"
API_KEY = "sk-sdk-example"
SDK_ADDED = ("extend_prompt", "function")  # input fields the SDK adds to every body [sdk]


@pytest.fixture
def sdk_sim(start_sim: Callable[..., Simulator], monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulator]:
    """A simulator fast enough for the SDK's own polling (1 s, 1 s, 2 s, …): a generation takes 0.12 s."""
    sim = start_sim(time_scale=0.002, generation_seconds=(60, 60), remote_media={**REMOTE_MEDIA, **read_media_facts(SEED_MEDIA)})
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    previous = dashscope.base_http_api_url
    dashscope.base_http_api_url = sim.dashscope_url
    yield sim
    dashscope.base_http_api_url = previous


def seed_request(name: str) -> dict[str, Any]:
    return json.loads((SEED_REQUESTS / f"{name}.json").read_text())


# The seed examples' keyword arguments, as written there; media and prompt come from the
# expected bodies, which hold the examples' values once.
EXAMPLES: dict[str, dict[str, Any]] = {
    "wan27_three_references": {"resolution": "720P", "ratio": "16:9", "duration": 10, "prompt_extend": False, "watermark": True},
    "wan27_first_frame": {"resolution": "720P", "duration": 10, "prompt_extend": False, "watermark": True},
    "wan27_storyboard": {"resolution": "720P", "ratio": "16:9", "duration": 10, "prompt_extend": False, "watermark": True},
}


def run_example(name: str) -> Any:
    """One seed example's call, unchanged but for the base URL (set by the fixture) and the key."""
    example = seed_request(name)
    return VideoSynthesis.call(
        api_key=API_KEY,
        model="wan2.7-r2v",
        media=example["input"]["media"],
        prompt=example["input"]["prompt"],
        **EXAMPLES[name],
    )


def received_body(sim: Simulator, prompt: str) -> dict[str, Any]:
    (entry,) = [e for e in sim.ledger.requests(kind="submit") if e.body["input"]["prompt"] == prompt]
    body = json.loads(json.dumps(entry.body))
    assert set(SDK_ADDED) <= set(body["input"])  # the SDK did add them; the simulator tolerated them
    for name in SDK_ADDED:
        del body["input"][name]
    return body


def test_the_seed_examples_succeed_with_real_videos_and_exact_bodies(sdk_sim: Simulator) -> None:
    with ThreadPoolExecutor(len(EXAMPLES)) as pool:
        answers = dict(zip(EXAMPLES, pool.map(run_example, EXAMPLES)))
    for name, rsp in answers.items():
        assert rsp.status_code == HTTPStatus.OK, (name, rsp)
        assert rsp.output.task_status == "SUCCEEDED"
        data = httpx.get(rsp.output.video_url, trust_env=False).content
        info = probe_bytes(data)
        with av.open(io.BytesIO(data)) as container:
            codec = container.streams.video[0].codec_context.name
        # every one is 720P 16:9: the first frame is declared 1280x720
        assert (info.format, codec, info.width, info.height, round(info.seconds or 0)) == ("mp4", "h264", 1280, 720, 10), name
        assert rsp.usage.output_video_duration == 10 and rsp.usage.SR == 720
        expected = seed_request(name)
        assert received_body(sdk_sim, expected["input"]["prompt"]) == expected, name


def test_async_call_fetch_cancel_list_and_wait(start_sim: Callable[..., Simulator], monkeypatch: pytest.MonkeyPatch) -> None:
    sim = start_sim(max_running=1)  # time stands still until advanced: the second task stays PENDING
    monkeypatch.setattr(dashscope, "base_http_api_url", sim.dashscope_url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    media = [{"type": "reference_image", "url": "https://example.com/mia.png"}]
    first = VideoSynthesis.async_call(api_key=API_KEY, model="wan2.7-r2v", media=media, prompt="reference image waves", duration=2, resolution="720P")
    second = VideoSynthesis.async_call(api_key=API_KEY, model="wan2.7-r2v", media=media, prompt="reference image bows", duration=2, resolution="720P")
    sim.advance(sim.config.pending_seconds)  # out of the provider's queue: the first takes the slot
    assert first.status_code == HTTPStatus.OK and first.output.task_status == "PENDING"
    assert VideoSynthesis.fetch(first, api_key=API_KEY).output.task_status == "RUNNING"
    assert VideoSynthesis.fetch(second, api_key=API_KEY).output.task_status == "PENDING"

    assert VideoSynthesis.cancel(second, api_key=API_KEY).status_code == HTTPStatus.OK
    assert VideoSynthesis.fetch(second, api_key=API_KEY).output.task_status == "CANCELED"
    refused = VideoSynthesis.cancel(first, api_key=API_KEY)
    assert (refused.status_code, refused.code) == (400, "UnsupportedOperation")

    listing = VideoSynthesis.list(api_key=API_KEY, model_name="wan2.7-r2v", page_size=5)
    assert listing.status_code == HTTPStatus.OK
    assert {item["task_id"]: item["status"] for item in listing.output["data"]} == {
        first.output.task_id: "RUNNING",
        second.output.task_id: "CANCELED",
    }
    sim.advance(300)
    done = VideoSynthesis.wait(first, api_key=API_KEY)
    assert done.output.task_status == "SUCCEEDED" and done.usage.duration == 2.0


def test_the_sdk_uploads_a_local_file_and_the_task_reads_it(sdk_sim: Simulator, tmp_path: Path) -> None:
    clip = tmp_path / "kai.mp4"
    synth.write_video(clip, 320, 240, 3.0)
    media = [{"type": "reference_video", "url": f"file://{clip}"}]
    rsp = VideoSynthesis.call(api_key=API_KEY, model="wan2.7-r2v", media=media, prompt="reference video waves", duration=2, resolution="720P")
    assert rsp.status_code == HTTPStatus.OK and rsp.output.task_status == "SUCCEEDED", rsp
    assert rsp.usage.input_video_duration == 3  # the real length of the uploaded file
    (upload,) = sdk_sim.ledger.requests(kind="upload")
    assert upload.status == 200
    (submitted,) = sdk_sim.ledger.requests(kind="submit")
    assert submitted.body["input"]["media"][0]["url"].startswith("oss://dashscope-instant/")
    assert submitted.headers["x-dashscope-ossresourceresolve"] == "enable"
