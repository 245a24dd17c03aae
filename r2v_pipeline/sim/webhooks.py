"""Freepik-style signed webhooks: signing, verifying, and at-least-once delivery.

Signature [doc]: ``webhook-signature: v1,<base64(HMAC-SHA256(secret, f"{id}.{timestamp}.{body}"))>``,
the HMAC keyed with the secret's UTF-8 bytes; the header may hold several
space-separated ``version,signature`` pairs and is valid if any matches.
Deliveries go to loopback hosts only (there is no network); any other URL is
recorded in the ledger as not delivered.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import urlsplit

import anyio

from .clock import SimClock
from .config import SimConfig, is_loopback_host
from .faults import FaultBook
from .ledger import Ledger, WebhookEntry

if TYPE_CHECKING:
    import httpx

    from .state import Spawn

log = logging.getLogger("r2v_pipeline.sim")

TOLERANCE_SECONDS = 300.0  # [guess] undocumented: ±5 minutes, the usual choice


def sign_webhook(secret: str, webhook_id: str, timestamp: str | int, body: bytes) -> str:
    """The ``webhook-signature`` value for one delivery."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).digest()).decode()


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    now: float | None = None,
    tolerance: float = TOLERANCE_SECONDS,
) -> bool:
    """Whether a delivery is authentic and fresh: a matching v1 signature among the
    header's pairs and a timestamp within ``tolerance`` seconds of ``now`` (default: the wall clock)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    webhook_id, timestamp, signatures = (lowered.get(k, "") for k in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (webhook_id and timestamp and signatures):
        return False
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    raw = body.encode("utf-8") if isinstance(body, str) else body
    expected = sign_webhook(secret, webhook_id, timestamp, raw).partition(",")[2]
    for pair in signatures.split():
        version, _, signature = pair.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected.encode()):
            return True
    return False


def webhook_id(task_id: str, event: str) -> str:
    """One id per (task, status change); retries keep it so receivers can dedupe."""
    return "msg_" + hashlib.sha256(f"{task_id}|{event}".encode()).hexdigest()[:24]


class WebhookSender:
    def __init__(
        self,
        config: SimConfig,
        clock: SimClock,
        ledger: Ledger,
        faults: FaultBook,
        spawn: Spawn,
    ):
        self._config = config
        self._clock = clock
        self._ledger = ledger
        self._faults = faults
        self._spawn = spawn
        self._client: httpx.AsyncClient | None = None

    def announce(self, task_id: str, url: str, event: str, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        self._spawn(lambda: self._deliver(task_id, url, event, body))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def _deliver(self, task_id: str, url: str, event: str, body: bytes) -> None:
        wid = webhook_id(task_id, event)
        host = urlsplit(url).hostname or ""
        if not is_loopback_host(host):
            self._record(task_id, wid, url, event, 0, delivered=False, error="not a loopback host: not delivered (no network)")
            return
        waits = (0.0, *self._config.webhook_retry_seconds)
        for attempt, wait in enumerate(waits, start=1):
            if wait:
                await self._clock.sleep(wait)
            decision = self._faults.decide("freepik", "webhook", wid)
            if decision.delay:
                await anyio.sleep(decision.delay)
            if decision.effect is not None:
                self._record(task_id, wid, url, event, attempt, delivered=False, error="lost to an injected fault", fault=decision.fault)
                continue
            status, error = await self._post(url, wid, body)
            delivered = status is not None and 200 <= status < 300
            self._record(task_id, wid, url, event, attempt, delivered=delivered, status=status, error=error, fault=decision.fault)
            if delivered:
                return
        log.warning("webhook %s for task %s not delivered after %d attempts", wid, task_id, len(waits))

    async def _post(self, url: str, wid: str, body: bytes) -> tuple[int | None, str | None]:
        import httpx  # loaded on the first delivery: most runs send none

        if self._client is None:
            # trust_env=False: a proxy from the environment must never see loopback traffic
            self._client = httpx.AsyncClient(trust_env=False, timeout=self._config.webhook_timeout)
        timestamp = str(int(time.time()))  # the receiver checks freshness on its own (wall) clock
        headers = {
            "content-type": "application/json",
            "webhook-id": wid,
            "webhook-timestamp": timestamp,
            "webhook-signature": sign_webhook(self._config.webhook_secret, wid, timestamp, body),
        }
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as err:
            return None, f"{type(err).__name__}: {err}"
        return response.status_code, None

    def _record(self, task_id: str, wid: str, url: str, event: str, attempt: int, **fields: Any) -> None:
        self._ledger.record_webhook(WebhookEntry(self._clock.now(), task_id, wid, url, event, attempt, **fields))
