"""The simulator's parts: the HTTP/1.1 core, the clock, rate windows, the ledger's
fingerprints, the task book; and starting and stopping."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal
from typing import Callable, Iterator

import anyio
import anyio.lowlevel
import httpx
import pytest

from r2v_pipeline.catalog import dashscope, freepik
from r2v_pipeline.catalog.billing import Billed
from r2v_pipeline.catalog.wire import read_body
from r2v_pipeline.sim import Rate, SimConfig, Simulator, account_id, start_simulator
from r2v_pipeline.sim.clock import (
    SimClock,
    beijing_time,
    epoch_ms,
    format_list_time,
    parse_list_time,
)
from r2v_pipeline.sim.ledger import content_fingerprint
from r2v_pipeline.sim.quota import RateBook
from r2v_pipeline.sim.server import HttpRequest, HttpResponse, listen, serve
from r2v_pipeline.sim.tasks import Output, Task, TaskBook


@contextmanager
def core(handler: Callable[[HttpRequest], HttpResponse | None]) -> Iterator[int]:
    """The bare HTTP core on a loopback port, answering with ``handler``."""

    async def run(*, task_status: anyio.abc.TaskStatus[int]) -> None:
        listener, port = await listen("127.0.0.1", 0)
        task_status.started(port)

        async def answer(request: HttpRequest) -> HttpResponse | None:
            return handler(request)

        await serve(listener, answer, max_body=1024, idle=5.0)

    with anyio.from_thread.start_blocking_portal() as portal:
        future, port = portal.start_task(run)
        try:
            yield port
        finally:
            future.cancel()


def raw_exchange(port: int, data: bytes, expect_responses: int) -> bytes:
    """Send raw bytes on one connection; read until ``expect_responses`` answers came or it closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(data)
        received = b""
        while received.count(b"HTTP/1.1 ") < expect_responses or not received.endswith(b"ok"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def echo(request: HttpRequest) -> HttpResponse:
    return HttpResponse(200, b"ok", "text/plain", [("x-path", request.path), ("x-body", str(len(request.body)))])


def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    with core(echo) as port:
        two = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b?q=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        received = raw_exchange(port, two, 2)
    assert received.count(b"HTTP/1.1 200") == 2
    assert b"x-path: /a" in received and b"x-path: /b" in received


def test_concurrent_connections_are_served() -> None:
    with core(echo) as port, ThreadPoolExecutor(16) as pool:
        def one(n: int) -> int:
            return httpx.post(f"http://127.0.0.1:{port}/n{n}", content=b"x" * n, trust_env=False).status_code

        assert set(pool.map(one, range(32))) == {200}


def test_a_malformed_request_gets_400_and_a_large_body_413() -> None:
    with core(echo) as port:
        assert raw_exchange(port, b"NOT HTTP\r\n\r\n", 1).startswith(b"HTTP/1.1 400")
        assert httpx.post(f"http://127.0.0.1:{port}/", content=b"x" * 2048, trust_env=False).status_code == 413


def test_no_answer_closes_and_a_cut_body_stops_half_way() -> None:
    with core(lambda request: None if request.path == "/drop" else HttpResponse(200, b"0123456789", cut_at=5)) as port:
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(f"http://127.0.0.1:{port}/drop", trust_env=False)
        received = raw_exchange(port, b"GET /cut HTTP/1.1\r\nHost: x\r\n\r\n", 1)
    assert b"content-length: 10" in received and received.endswith(b"\r\n\r\n01234")


def test_the_simulator_serves_until_stopped_and_frees_its_port() -> None:
    with start_simulator(SimConfig(seed=1)) as sim:
        assert httpx.get(sim.base_url + "/_sim/health", trust_env=False).json()["status"] == "ok"
        assert sim.dashscope_url == sim.base_url + "/api/v1" and sim.freepik_url == sim.base_url
        port = sim.port
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_unknown_paths_answer_in_their_family_shape(simulator: Simulator, http_client: Callable[..., httpx.Client]) -> None:
    client = http_client(simulator.base_url)
    assert client.get("/api/v1/nothing").json()["code"] == "NotFound"
    assert client.get("/v1/ai/nothing").json() == {"message": "Not found"}
    missing = client.get("/results/nothing")
    assert missing.status_code == 404 and "<Code>NoSuchKey</Code>" in missing.text


def test_introspection_over_http(simulator: Simulator, http_client: Callable[..., httpx.Client]) -> None:
    client = http_client(simulator.base_url)
    before = simulator.now()
    assert client.post("/_sim/advance", params={"seconds": 3600}).status_code == 200
    assert simulator.now() - before >= 3600
    assert client.post("/_sim/advance", params={"seconds": -1}).status_code == 400
    url = client.post("/_sim/media", content=b"hello").json()["url"]
    assert client.get(url).content == b"hello"
    assert set(client.get("/_sim/ledger").json()) == {"requests", "tasks", "webhooks", "duplicates", "billed_seconds"}
    assert client.get("/_sim/health").json()["peak_in_flight"] == 0


# --- the clock ---------------------------------------------------------------------------


def test_times_come_in_the_documented_formats() -> None:
    moment = datetime(2025, 12, 15, 16, 25, 59, 869000, tzinfo=timezone.utc).timestamp()
    assert beijing_time(moment) == "2025-12-16 00:25:59.869"  # UTC+8
    assert epoch_ms(moment) == 1765815959869
    assert format_list_time(moment) == "20251216002559"
    assert parse_list_time("20251216002559") == int(moment)
    with pytest.raises(ValueError):
        parse_list_time("2025-12-16")


def test_the_clock_scales_and_advances() -> None:
    clock = SimClock(scale=1e9, origin=1000.0)  # time all but stands still
    assert 1000.0 <= clock.now() < 1000.001
    clock.advance(60)
    assert 1060.0 <= clock.now() < 1060.001
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_a_sleeper_wakes_when_time_is_advanced_past_it() -> None:
    async def scenario() -> float:
        clock = SimClock(scale=1e9)
        woke = anyio.Event()
        target = clock.now() + 100

        async def sleeper() -> None:
            await clock.sleep_until(target)
            woke.set()

        async with anyio.create_task_group() as group:
            group.start_soon(sleeper)
            await anyio.lowlevel.checkpoint()
            clock.advance(100)
            with anyio.fail_after(5):
                await woke.wait()
        return clock.now() - target

    assert anyio.run(scenario) >= 0


# --- rate windows ---------------------------------------------------------------------------


def test_a_window_admits_its_count_then_refuses_until_the_oldest_leaves() -> None:
    now = [0.0]
    book = RateBook(lambda: now[0])
    rates = (Rate(5, 1.0),)
    assert [book.admit("a", rates) for _ in range(6)] == [True] * 5 + [False]
    assert book.admit("b", rates)  # another key has its own window
    now[0] = 0.5
    assert not book.admit("a", rates)  # refusals do not count, but the window is still full
    now[0] = 1.0
    assert book.admit("a", rates)


def test_every_rate_of_a_key_must_have_room() -> None:
    now = [0.0]
    book = RateBook(lambda: now[0])
    rates = (Rate(3, 1.0), Rate(4, 10.0))
    admitted = []
    for step in range(8):
        now[0] = step * 0.5
        admitted.append(book.admit("k", rates))
    assert admitted == [True, True, True, True, False, False, False, False]


# --- fingerprints and the ledger -------------------------------------------------------------


def test_account_ids_are_short_stable_hashes() -> None:
    assert account_id("sk-secret") == account_id("sk-secret") != account_id("sk-other")
    assert "secret" not in account_id("sk-secret") and len(account_id("sk-secret")) == len("acct-") + 12


def test_a_fingerprint_follows_content_not_keys() -> None:
    def body(url: str) -> dict[str, object]:
        return {"model": "wan2.7-r2v", "input": {"prompt": "Video 1 waves.", "media": [{"type": "reference_video", "url": url}]}}

    spec = dashscope.WAN27
    first = content_fingerprint(spec, read_body(spec, body("oss://dir/a.mp4")), {"oss://dir/a.mp4": "aa"})
    renamed = content_fingerprint(spec, read_body(spec, body("oss://dir/b.mp4")), {"oss://dir/b.mp4": "aa"})
    changed = content_fingerprint(spec, read_body(spec, body("oss://dir/b.mp4")), {"oss://dir/b.mp4": "bb"})
    assert first == renamed != changed
    extra = body("oss://dir/a.mp4")
    extra["input"]["extend_prompt"] = True  # type: ignore[index]
    assert content_fingerprint(spec, read_body(spec, extra), {"oss://dir/a.mp4": "aa"}) == first  # SDK additions do not count


def test_where_a_webhook_goes_is_not_part_of_the_fingerprint() -> None:
    spec = freepik.WAN27
    base = {"prompt": "Image 1.", "image_urls": [{"url": "https://example.com/a.png"}]}
    hooked = {**base, "webhook_url": "http://127.0.0.1:1/hook"}
    assert content_fingerprint(spec, read_body(spec, base), {}) == content_fingerprint(spec, read_body(spec, hooked), {})


# --- the task book ------------------------------------------------------------------------------


def make_task(n: int, account: str = "acct-a", seconds: float = 100.0) -> Task:
    return Task(
        task_id=f"t{n}", provider="dashscope", account=account, model="wan2.7-r2v", request_id="r", prompt="p",
        output=Output(1280, 720, 2, True, "720P", "16:9"), billed=Billed(Decimal(2), Decimal(0)), fingerprint="f",
        submitted=0.0, generation_seconds=seconds,
    )  # fmt: skip


def test_the_task_book_runs_a_long_advance_in_deadline_order() -> None:
    clock = SimClock(scale=1e9, origin=0.0)
    book = TaskBook(clock, {"dashscope": 2})
    changes: list[tuple[str, str, float | None]] = []
    book.on_change = lambda task: changes.append((task.task_id, task.status, task.started))
    for n, seconds in enumerate([100, 30, 50, 10]):
        book.add(make_task(n, seconds=seconds))
    book.add(make_task(9, account="acct-b"))  # another account, another set of slots
    clock.advance(1000)
    book.settle(clock.now())
    ended = {t.task_id: (t.started, t.ended) for t in book.all()}
    # two slots: t0 [0,100], t1 [0,30], t2 [30,80], t3 [80,90]
    assert ended == {"t0": (0.0, 100.0), "t1": (0.0, 30.0), "t2": (30.0, 80.0), "t3": (80.0, 90.0), "t9": (0.0, 100.0)}
    assert (book.in_flight, book.peak_in_flight) == (0, 5)
    assert [c[:2] for c in changes if c[0] == "t3"] == [("t3", "PENDING"), ("t3", "RUNNING"), ("t3", "SUCCEEDED")]
