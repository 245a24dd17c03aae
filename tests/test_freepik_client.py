"""The Freepik client: the same endpoints on the renamed host take the key in its own header."""

from __future__ import annotations

import anyio
import httpx
import pytest

from r2v_pipeline.providers.base import Prepared, Submitted, Transient
from r2v_pipeline.providers.freepik import Freepik

KEY = "fpk-client-test"


@pytest.mark.parametrize(
    ("base_url", "header"),
    [("https://api.magnific.com", "x-magnific-api-key"), ("https://api.freepik.com", "x-freepik-api-key"), ("http://127.0.0.1:8765", "x-freepik-api-key")],
)
def test_the_key_goes_in_the_header_of_the_host(base_url: str, header: str) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            return httpx.Response(200, json={"data": {"generated": [], "task_id": "t-1", "status": "CREATED"}})
        return httpx.Response(200, json={"data": {"generated": [], "task_id": "t-1", "status": "IN_PROGRESS"}})

    async def exchange() -> None:
        client = Freepik(base_url, KEY, client=httpx.AsyncClient(transport=httpx.MockTransport(answer)))
        try:
            assert await client.submit(Prepared({"prompt": "Image 1 waves.", "image_urls": [{"url": "https://cdn.test/a.png"}]})) == Submitted("t-1")
            assert (await client.status("t-1")).state == "running"
        finally:
            await client.aclose()

    anyio.run(exchange)
    assert [(r.url.host, r.headers.get(header)) for r in seen] == [(httpx.URL(base_url).host, KEY)] * 2
    other = ({"x-freepik-api-key", "x-magnific-api-key"} - {header}).pop()
    assert all(other not in r.headers for r in seen)  # one header, never both


def test_the_task_list_gives_each_task_state_and_a_bad_answer_is_transient() -> None:
    answers = iter([
        httpx.Response(200, json={"data": [{"task_id": "t-1", "status": "COMPLETED"}, {"task_id": "t-2", "status": "IN_PROGRESS"}, {"status": "CREATED"}]}),
        httpx.Response(503, json={"message": "Service Unavailable. Please try again later."}),
    ])
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(answers)

    async def exchange() -> None:
        client = Freepik("https://api.freepik.com", KEY, client=httpx.AsyncClient(transport=httpx.MockTransport(answer)))
        try:
            assert await client.list_states(0.0, 1.0) == {"t-1": "succeeded", "t-2": "running"}
            with pytest.raises(Transient):
                await client.list_states(0.0, 1.0)
        finally:
            await client.aclose()

    anyio.run(exchange)
    assert seen[0].url.params["page"] == "1" and seen[0].method == "GET"
