"""What the provider clients share: an HTTP client, account ids, API keys."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import ssl
from dataclasses import dataclass
from typing import Any, Callable

import httpx

from .. import __version__
from ..catalog import registry
from .base import (
    ProviderTime,
    Refused,
    Submitted,
    SubmitOutcome,
    Unknown,
    busy_or_unknown,
    classify_transport_error,
    redact,
    retry_after,
)

# Submits and queries are small; a slow answer is the provider's queue, not the network.
TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=60.0, pool=60.0)


class Client:
    """What every provider client holds: where it talks, as which account (never
    showing the key), on which clock, over which connection pool."""

    name = ""

    def __init__(self, base_url: str, key: str, time: ProviderTime, client: httpx.AsyncClient | None):
        self.base_url = base_url.rstrip("/")
        self.account = account_id(self.name, self.base_url, key)
        self.time = time
        self._key = key
        self._http = client or new_client()

    def __repr__(self) -> str:  # never show the key
        return f"{type(self).__name__}({self.base_url!r}, account={self.account})"

    async def aclose(self) -> None:
        await self._http.aclose()

    def _clean(self, text: str) -> str:
        """Provider and proxy messages are stored and shown: never with the key in them."""
        return redact(text, self._key)

    def _error(self, data: Any, response: httpx.Response) -> tuple[str, str]:
        """The code and message of an answer that is not a success (each provider words them)."""
        raise NotImplementedError

    async def _post_submit(self, url: str, body: dict[str, Any], headers: dict[str, str], reading: SubmitReading) -> SubmitOutcome:
        """Send a new task's request and say what is known about money (see base.py)."""
        try:
            response = await self._http.post(url, json=body, headers=headers)
        except httpx.HTTPError as error:
            return classify_transport_error(error)
        data = json_or_none(response)
        if response.status_code == 200:
            task_id = reading.task_id(data) if isinstance(data, dict) else None
            if isinstance(task_id, str) and task_id:
                return Submitted(task_id)
            return Unknown(self._clean(f"HTTP 200 without a task id: {response.text[:200]}"))
        code, message = self._error(data, response)
        if response.status_code == 429 or response.status_code >= 500:
            if code in reading.final_codes:
                return Refused(code, message, response.status_code)
            # The provider's own error body says no task was made; a bare gateway error does not.
            said = code if isinstance(data, dict) and data.get(reading.own_error) else None
            return busy_or_unknown(response.status_code, said, message, retry_after(response))
        return Refused(code, message, response.status_code)


@dataclass(frozen=True)
class SubmitReading:
    """How one provider's answer to a submit is read."""

    task_id: Callable[[dict[str, Any]], Any]  # where a 200 answer carries the task id
    own_error: str  # the field that marks an error body as the provider's own, not a gateway's
    final_codes: tuple[str, ...] = ()  # 429/5xx codes no retry within the run helps: refused


# Videos are large and come from a storage host, not the API: longer reads, redirects followed.
DOWNLOAD_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every client of the process. httpx builds one per client unless
    given one, reading the whole CA bundle each time (about 30 ms here): a run has a client
    per account and one for downloads. SSL_CERT_FILE / SSL_CERT_DIR are honoured, as httpx does."""
    return httpx.create_ssl_context(trust_env=True)


def new_client(headers: dict[str, str] | None = None, *, local: bool = False) -> httpx.AsyncClient:
    """``local``: a simulator on loopback, never reached through a proxy from the environment."""
    return httpx.AsyncClient(
        timeout=TIMEOUT,
        headers={"User-Agent": f"r2v-pipeline/{__version__}", **(headers or {})},
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        follow_redirects=False,
        trust_env=not local,
        verify=tls_context(),
    )


def download_client(*, local: bool = False) -> httpx.AsyncClient:
    """The client videos are fetched with; ``local`` as for ``new_client``."""
    return httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT, follow_redirects=True, trust_env=not local, verify=tls_context())


def account_id(provider: str, base_url: str, key: str) -> str:
    """Who quotas count against, without the key: a short hash of provider, endpoint and key."""
    digest = hashlib.sha256(f"{provider}\n{base_url}\n{key}".encode()).hexdigest()
    return f"{provider}-{digest[:12]}"


class MissingKey(Exception):
    def __init__(self, provider: str, variable: str | None = None, whose: str | None = None):
        self.variable = variable or registry.table(provider).key_variable
        super().__init__(f"{whose or provider} needs an API key in the environment variable {self.variable}")


def api_key(provider: str) -> str:
    """The provider's key, from the environment only."""
    key = os.environ.get(registry.table(provider).key_variable, "").strip()
    if not key:
        raise MissingKey(provider)
    return key


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
