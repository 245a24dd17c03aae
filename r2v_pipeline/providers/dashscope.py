"""DashScope (Alibaba Cloud Model Studio): submit, query, list, and the temporary upload flow."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from ..catalog.dashscope import SUBMIT_PATH
from ..catalog.wire import map_strings
from ..media.probe import NotAFile, TooLarge, file_sha256, read_regular
from ..catalog.request import LocalFile, OutgoingRequest
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
    Unsendable,
    UploadCache,
    retry_after,
    transport_trouble,
)
from .http import Client, SubmitReading, json_or_none

BEIJING = timezone(timedelta(hours=8))  # DashScope writes its times in Beijing time
LIST_PAGE = 100
WATCH_PAGES = 1  # a watch cycle is one query; tasks beyond its page are asked on their own
UPLOAD_MARGIN = 6 * 3600.0  # reuse an upload only while it has this long to live
UPLOAD_LIFE = 48 * 3600.0
EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "bmp": ".bmp", "webp": ".webp", "mp4": ".mp4", "mov": ".mov", "wav": ".wav", "mp3": ".mp3"}
MIME = {"png": "image/png", "jpeg": "image/jpeg", "bmp": "image/bmp", "webp": "image/webp", "mp4": "video/mp4", "mov": "video/quicktime", "wav": "audio/wav", "mp3": "audio/mpeg"}

_STATES = {"PENDING": "pending", "RUNNING": "running", "SUCCEEDED": "succeeded", "FAILED": "failed", "CANCELED": "canceled", "UNKNOWN": "unknown"}


class DashScope(Client):
    name = "dashscope"

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        workspace: str | None = None,
        uploads: UploadCache | None = None,
        time: ProviderTime = ProviderTime(),
        client: httpx.AsyncClient | None = None,
    ):
        super().__init__(base_url, key, time, client)
        self._uploads = uploads
        # Sent with API calls only: the upload host is not DashScope and gets no key.
        self._auth = {"Authorization": f"Bearer {key}"}
        if workspace:
            self._auth["X-DashScope-WorkSpace"] = workspace

    # --- requests -------------------------------------------------------------

    async def prepare(self, request: OutgoingRequest, fresh_uploads: bool = False) -> Prepared:
        """``fresh_uploads``: upload again even what the cache says is alive (the provider
        forgot it: a task failed because it could not read it)."""
        urls: dict[str, str] = {}
        reused: list[str] = []
        for url, file in request.files.items():
            transport = request.transports.get(url)
            if transport == "inline":
                urls[url] = _data_uri(file)
            elif transport == "upload":
                _unchanged(file)
                cached = None if fresh_uploads else self._cached(file, request.model)
                urls[url] = cached or await self._upload(file, request.model)
                if cached:
                    reused.append(file.info.sha256)
        body = map_strings(request.body, lambda s: urls.get(s, s))
        headers = {**request.headers, **({"X-DashScope-OssResourceResolve": "enable"} if "oss://" in json.dumps(body) else {})}
        return Prepared(body, headers, tuple(reused))

    async def submit(self, request: Prepared) -> SubmitOutcome:
        headers = {**request.headers, **self._auth, "X-DashScope-Async": "enable"}  # a manifest's headers never replace these
        return await self._post_submit(self.base_url + SUBMIT_PATH, request.body, headers, SUBMIT_READING)

    async def status(self, task_id: str) -> TaskStatus:
        data = await self._get(f"/tasks/{task_id}")
        output = data.get("output")
        state = _STATES.get(str(output.get("task_status"))) if isinstance(output, dict) else None
        if state is None or not isinstance(output, dict):  # only an explicit UNKNOWN means the task is gone
            raise Transient(self._clean(f"an answer without a known task status: {str(data)[:200]}"))
        return TaskStatus(
            state=state,  # type: ignore[arg-type]
            video_url=output.get("video_url"),
            usage=data.get("usage"),
            code=output.get("code"),
            message=output.get("message"),
            submitted=_time(output.get("submit_time")),
            started=_time(output.get("scheduled_time")),
            ended=_time(output.get("end_time")),
            prompt=output.get("orig_prompt"),
            **_billed(data.get("usage")),
        )

    async def candidates(self, model: str, since: float, until: float) -> list[str] | None:
        return [task.task_id for task in await self._list(since, until, model)]

    async def recent_tasks(self, since: float, until: float) -> list[ListedTask] | None:
        return await self._list(since, until)

    async def list_states(self, since: float, until: float) -> dict[str, TaskState] | None:
        # No status filter: it takes one status [sdk], and ended and in-flight tasks are
        # both wanted; a filtered list would leave a task's absence unexplained.
        return {task.task_id: task.state for task in await self._list(since, until, pages=WATCH_PAGES)}

    async def _list(self, since: float, until: float, model: str | None = None, pages: int | None = None) -> list[ListedTask]:
        """The account's tasks created in a window, every page (at most ``pages``: the
        tasks on pages not read are missing from the answer). Relied on from the list
        [sdk][capture]: the start_time/end_time window (YYYYMMDDhhmmss, Beijing time
        [guess]), page_no/page_size with total_page, and each item's task_id, status,
        model_name and gmt_create (epoch ms). Not relied on: anything that names the
        request (the list has no prompt)."""
        found: list[ListedTask] = []
        page = 1
        while True:
            query = {"start_time": _list_time(since), "end_time": _list_time(until), "page_no": str(page), "page_size": str(LIST_PAGE)}
            if model is not None:
                query["model_name"] = model
            data = await self._get("/tasks", query)
            for item in data.get("data") or []:
                if isinstance(item, dict) and isinstance(item.get("task_id"), str):
                    state = _STATES.get(str(item.get("status")), "unknown")
                    created = item.get("gmt_create")
                    seconds = created / 1000 if isinstance(created, (int, float)) else None  # epoch ms [capture]
                    found.append(ListedTask(item["task_id"], state, str(item.get("model_name") or ""), seconds))  # type: ignore[arg-type]
            if page >= int(data.get("total_page") or 1) or page == pages:
                return found
            page += 1

    # --- the temporary upload flow -------------------------------------------------

    def _cached(self, file: LocalFile, model: str) -> str | None:
        if self._uploads is None:
            return None
        return self._uploads.upload(file.info.sha256, self.account, model, self.time.now() + UPLOAD_MARGIN)

    async def _upload(self, file: LocalFile, model: str) -> str:
        sha = file.info.sha256
        policy = (await self._get("/uploads", {"action": "getPolicy", "model": model})).get("data") or {}
        missing = [f for f in ("upload_dir", "upload_host", "oss_access_key_id", "signature", "policy") if not policy.get(f)]
        if missing:
            raise Transient(f"the upload policy lacks {', '.join(missing)}")
        # Named by content and real format: a provider may judge a file's kind by its name.
        key = f"{policy['upload_dir']}/{sha[:16]}{EXTENSIONS.get(file.info.format, '')}"
        form = {
            "OSSAccessKeyId": policy["oss_access_key_id"],
            "Signature": policy["signature"],
            "policy": policy["policy"],
            "key": key,
            "x-oss-object-acl": policy.get("x_oss_object_acl", "private"),
            "x-oss-forbid-overwrite": policy.get("x_oss_forbid_overwrite", "true"),
            "success_action_status": "200",
            "x-oss-content-type": MIME.get(file.info.format, "application/octet-stream"),
        }
        try:
            data = _planned_bytes(file)  # read under the probe's guard: what was planned is what is sent
            response = await self._http.post(policy["upload_host"], data=form, files={"file": (file.path.name, data)})
        except httpx.HTTPError as error:
            raise transport_trouble(error, f"upload of {file.shown}: ") from None
        if response.status_code != 200:
            if response.status_code == 429 or response.status_code >= 500:
                raise Transient(f"upload of {file.shown}: HTTP {response.status_code}")
            raise ProviderError("UploadFailed", self._clean(f"upload of {file.shown}: HTTP {response.status_code} {response.text[:200]}"))
        url = f"oss://{key}"
        if self._uploads is not None:
            self._uploads.remember_upload(sha, self.account, model, url, self.time.now() + UPLOAD_LIFE)
        return url

    async def _get(self, path: str, query: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            response = await self._http.get(self.base_url + path, params=query, headers=self._auth)
        except httpx.HTTPError as error:
            raise transport_trouble(error) from None
        data = json_or_none(response)
        if response.status_code == 200 and isinstance(data, dict):
            return data
        code, message = self._error(data, response)
        if response.status_code == 429 or response.status_code >= 500 or response.status_code == 200:
            raise Transient(f"{code}: {message}", retry_after(response), throttled=response.status_code == 429)
        raise ProviderError(code, message)

    def _error(self, data: Any, response: httpx.Response) -> tuple[str, str]:
        if isinstance(data, dict) and data.get("code"):
            return str(data["code"]), self._clean(str(data.get("message", "")))
        return f"HTTP{response.status_code}", self._clean(response.text[:200])


SUBMIT_READING = SubmitReading(
    task_id=lambda data: (data.get("output") or {}).get("task_id"),
    own_error="code",
    final_codes=("Throttling.AllocationQuota",),  # the quota is spent: no retry helps within a run
)


def connect(c: Connection) -> DashScope:
    """The registry's client factory."""
    return DashScope(c.base_url, c.key, workspace=c.workspace, uploads=c.uploads, time=c.time, client=c.client)


def _unchanged(file: LocalFile) -> None:
    """The file is still the one planned (its content decides the fingerprint)."""
    try:
        same = file_sha256(file.path, max_bytes=file.info.bytes) == file.info.sha256
    except (NotAFile, TooLarge):
        same = False
    if not same:
        raise Unsendable(f"{file.shown} changed since the plan; plan again (r2v run does) so its fingerprint is right")


def _planned_bytes(file: LocalFile) -> bytes:
    """The file's bytes, if it is still the regular file of the planned size and content
    (a file swapped since the plan, even for a device, is refused, not read forever)."""
    try:
        data = read_regular(file.path, file.info.bytes)
    except (NotAFile, TooLarge):
        data = b""
    if hashlib.sha256(data).hexdigest() != file.info.sha256:
        raise Unsendable(f"{file.shown} changed since the plan; plan again (r2v run does) so its fingerprint is right")
    return data


def _data_uri(file: LocalFile) -> str:
    data = _planned_bytes(file)
    mime = MIME.get(file.info.format, "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _billed(usage: Any) -> dict[str, Any]:
    """What a succeeded task billed, from its usage. The documents disagree on what
    ``duration`` holds (seed 000: the output's length; a capture: input + output), so the
    billed figure is input_video_duration + output_video_duration [doc][capture], and
    ``duration`` is checked against either reading."""
    if not isinstance(usage, dict):
        return {}
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    parts, total = (usage.get("input_video_duration"), usage.get("output_video_duration")), usage.get("duration")
    if number(parts[0]) and number(parts[1]):
        billed = float(parts[0]) + float(parts[1])
        odd = number(total) and float(total) not in (billed, float(parts[1]))
        note = f"usage.duration {total} is neither input + output ({billed:g}) nor the output ({parts[1]})" if odd else None
        return {"billed": billed, "billing_note": note}
    if number(total):
        return {"billed": float(total), "billing_note": "usage gave only duration, read as the billed total"}
    return {}


def _time(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=BEIJING).timestamp()
        except ValueError:
            continue
    return None


def _list_time(t: float) -> str:
    return datetime.fromtimestamp(t, BEIJING).strftime("%Y%m%d%H%M%S")
