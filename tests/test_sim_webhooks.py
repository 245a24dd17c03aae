"""Webhook signatures (sign/verify) and at-least-once delivery to a loopback receiver."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from r2v_pipeline.sim import Simulator, sign_webhook, verify_webhook

SECRET = "whsec-test"
PATH = "/v1/ai/reference-to-video/wan-2-7"


def signed(secret: str, body: bytes, webhook_id: str = "msg_1", at: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    return {"webhook-id": webhook_id, "webhook-timestamp": timestamp, "webhook-signature": sign_webhook(secret, webhook_id, timestamp, body)}


@given(secret=st.text(min_size=1), webhook_id=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1), body=st.binary())
def test_what_is_signed_verifies(secret: str, webhook_id: str, body: bytes) -> None:
    assert verify_webhook(secret, signed(secret, body, webhook_id), body)


@given(body=st.binary(min_size=1), flip=st.integers(min_value=0))
def test_a_tampered_body_does_not_verify(body: bytes, flip: int) -> None:
    headers = signed(SECRET, body)
    i = flip % len(body)
    tampered = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]
    assert not verify_webhook(SECRET, headers, tampered)


def test_verification_rules() -> None:
    body = b'{"status":"COMPLETED"}'
    good = signed(SECRET, body)
    assert not verify_webhook("another secret", good, body)
    assert verify_webhook(SECRET, {k.upper(): v for k, v in good.items()}, body.decode())  # header case, str body
    other = sign_webhook("old secret", "msg_1", good["webhook-timestamp"], body)
    assert verify_webhook(SECRET, {**good, "webhook-signature": f"{other} {good['webhook-signature']}"}, body)  # any pair
    assert not verify_webhook(SECRET, {**good, "webhook-signature": "v2," + good["webhook-signature"][3:]}, body)
    assert not verify_webhook(SECRET, {k: v for k, v in good.items() if k != "webhook-id"}, body)
    assert not verify_webhook(SECRET, signed(SECRET, body, at=time.time() - 301), body)  # older than 5 minutes
    assert verify_webhook(SECRET, signed(SECRET, body, at=1000), body, now=1200)
    assert not verify_webhook(SECRET, {**good, "webhook-timestamp": "soon"}, body)


class Receiver:
    """A loopback HTTP server that answers 500 to the first delivery of each webhook id."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes, int]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    seen = any(h["webhook-id"] == headers["webhook-id"] for h, _, _ in receiver.received)
                    status = 200 if seen else 500
                    receiver.received.append((headers, body, status))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    thread = threading.Thread(target=found.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()


def eventually(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.01)


def test_each_status_change_is_signed_and_retried_until_delivered(
    start_sim: Callable[..., Simulator], http_client: Callable[..., httpx.Client], receiver: Receiver
) -> None:
    sim = start_sim(webhook_secret=SECRET)
    api = http_client(sim.freepik_url, {"x-freepik-api-key": "fpk"})
    payload = {"prompt": "Image 1 waves.", "image_urls": [{"url": "https://example.com/a.png"}], "resolution": "720P", "duration": 2, "webhook_url": receiver.url}
    task_id = api.post(PATH, json=payload).json()["data"]["task_id"]
    sim.advance(sim.config.pending_seconds)  # the task leaves the queue

    eventually(lambda: len(sim.ledger.webhooks(task_id)) == 1)  # IN_PROGRESS, refused once
    sim.advance(5)  # the first retry is due 5 s later
    eventually(lambda: len(sim.ledger.webhooks(task_id)) == 2)
    sim.advance(300)  # the task completes
    eventually(lambda: len(sim.ledger.webhooks(task_id)) == 3)
    sim.advance(5)
    eventually(lambda: len(sim.ledger.webhooks(task_id)) == 4)

    attempts = [(w.event, w.attempt, w.status, w.delivered) for w in sim.ledger.webhooks(task_id)]
    assert attempts == [("IN_PROGRESS", 1, 500, False), ("IN_PROGRESS", 2, 200, True), ("COMPLETED", 1, 500, False), ("COMPLETED", 2, 200, True)]
    ids = [headers["webhook-id"] for headers, _, _ in receiver.received]
    assert ids[0] == ids[1] != ids[2] == ids[3]  # a retry keeps its id, so receivers can dedupe
    for headers, body, _ in receiver.received:
        assert verify_webhook(SECRET, headers, body)
    final = json.loads(receiver.received[-1][1])
    assert final == api.get(f"{PATH}/{task_id}").json()["data"]  # the body is the GET's data object
    assert final["status"] == "COMPLETED" and final["generated"]


def test_a_non_loopback_webhook_is_recorded_not_sent(simulator: Simulator, http_client: Callable[..., httpx.Client]) -> None:
    api = http_client(simulator.freepik_url, {"x-freepik-api-key": "fpk"})
    payload = {"prompt": "Image 1.", "image_urls": [{"url": "https://example.com/a.png"}], "webhook_url": "https://hooks.example.com/r2v"}
    task_id = api.post(PATH, json=payload).json()["data"]["task_id"]
    simulator.advance(simulator.config.pending_seconds)
    eventually(lambda: bool(simulator.ledger.webhooks(task_id)))
    (entry,) = simulator.ledger.webhooks(task_id)
    assert (entry.delivered, entry.attempt, entry.status) == (False, 0, None)
    assert "loopback" in (entry.error or "")


def test_a_fault_scoped_to_webhooks_loses_attempts(start_sim: Callable[..., Simulator], http_client: Callable[..., httpx.Client], receiver: Receiver) -> None:
    sim = start_sim(faults="drop_before_body=1@webhook", webhook_retry_seconds=(1.0,))
    api = http_client(sim.freepik_url, {"x-freepik-api-key": "fpk"})
    payload = {"prompt": "Image 1.", "image_urls": [{"url": "https://example.com/a.png"}], "webhook_url": receiver.url}
    task_id = api.post(PATH, json=payload).json()["data"]["task_id"]
    sim.advance(sim.config.pending_seconds)
    eventually(lambda: len(sim.ledger.webhooks(task_id)) == 1)
    sim.advance(1)
    eventually(lambda: len(sim.ledger.webhooks(task_id)) == 2)
    assert [(w.delivered, w.fault) for w in sim.ledger.webhooks(task_id)] == [(False, "drop_before_body")] * 2
    assert receiver.received == []
