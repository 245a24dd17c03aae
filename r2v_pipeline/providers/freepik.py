"""Freepik's hosted WAN 2.7 reference-to-video API."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from ..catalog.freepik import ENDPOINT
from ..catalog.request import OutgoingRequest
from .base import (
    Connection,
    ListedTask,
    Prepared,
    ProviderError,
    ProviderTime,
    SubmitOutcome,
    TaskState,
    TaskStatus,
    Transient,
    retry_after,
    transport_trouble,
)
from .http import Client, SubmitReading, json_or_none

LIST_PAGE = 100  # [guess] the largest page Freepik serves
_STATES: dict[str, TaskState] = {"CREATED": "pending", "IN_PROGRESS": "running", "COMPLETED": "succeeded", "FAILED": "failed"}
# The renamed host serves the same endpoints and takes the key in its own header [doc].
RENAMED_HOST = "api.magnific.com"


def key_header(base_url: str) -> str:
    """The header that carries the key at ``base_url``."""
    return "x-magnific-api-key" if urlsplit(base_url).hostname == RENAMED_HOST else "x-freepik-api-key"


class Freepik(Client):
    name = "freepik"

    def __init__(self, base_url: str, key: str, *, time: ProviderTime = ProviderTime(), client: httpx.AsyncClient | None = None):
        super().__init__(base_url, key, time, client)
        self._auth = {key_header(base_url): key}

    async def prepare(self, request: OutgoingRequest, fresh_uploads: bool = False) -> Prepared:
        # The planner only lets public URLs through to Freepik: nothing is uploaded.
        return Prepared(request.body, dict(request.headers))

    async def submit(self, request: Prepared) -> SubmitOutcome:
        headers = {**request.headers, **self._auth}
        return await self._post_submit(self.base_url + ENDPOINT, request.body, headers, SUBMIT_READING)

    async def status(self, task_id: str) -> TaskStatus:
        try:
            response = await self._http.get(f"{self.base_url}{ENDPOINT}/{task_id}", headers=self._auth)
        except httpx.HTTPError as error:
            raise transport_trouble(error) from None
        data = json_or_none(response)
        if response.status_code == 404 and isinstance(data, dict):  # [guess] Freepik's "no such task"
            return TaskStatus("unknown")
        if response.status_code != 200 or not isinstance(data, dict):
            code, message = self._error(data, response)
            if response.status_code in (200, 404, 429) or response.status_code >= 500:
                raise Transient(f"{code}: {message}", retry_after(response), throttled=response.status_code == 429)
            raise ProviderError(code, message)
        task = data.get("data")
        state = _STATES.get(str(task.get("status"))) if isinstance(task, dict) else None
        if task is None or state is None:
            raise Transient(self._clean(f"an answer without a known task status: {str(data)[:200]}"))
        generated = task.get("generated") or []
        return TaskStatus(
            state=state,  # type: ignore[arg-type]
            video_url=generated[0] if generated else None,
            code="Failed" if state == "failed" else None,
            message="Freepik reports the task FAILED (it gives no reason)" if state == "failed" else None,
        )

    async def candidates(self, model: str, since: float, until: float) -> list[str] | None:
        # Freepik's task list gives neither times nor prompts: an ambiguous submit
        # cannot be matched to a task, only reported.
        return None

    async def recent_tasks(self, since: float, until: float) -> list[ListedTask] | None:
        # Nor can a task it made for a lost ledger be told from another: its task
        # detail gives the video's URL only, not the request.
        return None

    async def list_states(self, since: float, until: float) -> dict[str, TaskState] | None:
        """The newest page of the key's tasks. Relied on: ``page``/``page_size`` and each
        item's ``task_id`` and ``status`` [doc]; that the newest come first and a page may
        hold 100 [guess]. The list gives no times, so the window is not sent: a task older
        than the page is missing from it, and asked on its own."""
        try:
            response = await self._http.get(f"{self.base_url}{ENDPOINT}", params={"page": "1", "page_size": str(LIST_PAGE)}, headers=self._auth)
        except httpx.HTTPError as error:
            raise transport_trouble(error) from None
        data = json_or_none(response)
        items = data.get("data") if isinstance(data, dict) else None
        if response.status_code != 200 or not isinstance(items, list):
            code, message = self._error(data, response)
            raise Transient(f"{code}: {message}", retry_after(response), throttled=response.status_code == 429)
        return {
            item["task_id"]: _STATES.get(str(item.get("status")), "unknown")  # type: ignore[misc]
            for item in items
            if isinstance(item, dict) and isinstance(item.get("task_id"), str)
        }

    def _error(self, data: Any, response: httpx.Response) -> tuple[str, str]:
        code, message = _error(data, response)
        return code, self._clean(message)


SUBMIT_READING = SubmitReading(task_id=lambda data: (data.get("data") or {}).get("task_id"), own_error="message")


def connect(c: Connection) -> Freepik:
    """The registry's client factory (Freepik has no workspaces, and nothing is uploaded)."""
    return Freepik(c.base_url, c.key, time=c.time, client=c.client)


def _error(data: Any, response: httpx.Response) -> tuple[str, str]:
    if isinstance(data, dict):
        message = str(data.get("message", ""))
        params = data.get("invalid_params")
        if isinstance(params, list) and params:
            details = "; ".join(f"{p.get('name')}: {p.get('reason')}" for p in params if isinstance(p, dict))
            return "invalid_params", f"{message} {details}".strip()
        if message:
            return f"HTTP{response.status_code}", message
    return f"HTTP{response.status_code}", response.text[:200]
