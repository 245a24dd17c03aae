"""Result videos: real H.264 MP4 files made once per (width, height, seconds, audio),
served at signed URLs that expire 24 hours (scaled) after the task ends."""

from __future__ import annotations

import atexit
import base64
import hashlib
import hmac
import logging
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping
from urllib.parse import quote

import anyio

from .replies import Refusal, oss_error
from .server import HttpRequest, HttpResponse
from .tasks import SUCCEEDED, Output, Task

if TYPE_CHECKING:
    from .state import Call, SimState, Spawn

log = logging.getLogger("r2v_pipeline.sim")

VideoKey = tuple[int, int, int, bool]  # width, height, seconds, audio
_process_folder: Path | None = None


def default_cache_dir() -> Path:
    """One temporary folder per process, so simulators started one after another share videos."""
    global _process_folder
    if _process_folder is None:
        _process_folder = Path(tempfile.mkdtemp(prefix="r2v-sim-videos-"))
        atexit.register(shutil.rmtree, _process_folder, True)
    return _process_folder


def video_key(output: Output) -> VideoKey:
    return (output.width, output.height, output.seconds, output.audio)


@dataclass
class _Slot:
    """A result being made once for everyone waiting on it."""

    ready: anyio.Event
    data: bytes | None = None
    error: BaseException | None = None


class VideoCache:
    """Encodes each video once, in a worker thread, and keeps its bytes."""

    def __init__(self, folder: Path, spawn: Spawn):
        self.folder = folder
        self._spawn = spawn
        self._slots: dict[VideoKey, _Slot] = {}
        self._limiter = anyio.CapacityLimiter(2)  # encoding is CPU-bound: the machine has 2 cores

    def prefetch(self, key: VideoKey) -> None:
        self._slot(key)

    async def get(self, key: VideoKey) -> bytes:
        slot = self._slot(key)
        await slot.ready.wait()
        if slot.data is None:
            raise RuntimeError(f"could not make the video {key}") from slot.error
        return slot.data

    def _slot(self, key: VideoKey) -> _Slot:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(anyio.Event())
            self._spawn(lambda: self._make(key, slot))
        return slot

    async def _make(self, key: VideoKey, slot: _Slot) -> None:
        try:
            # Abandoned on shutdown so stopping never waits for an encode.
            slot.data = await anyio.to_thread.run_sync(_load_or_encode, self.folder, key, abandon_on_cancel=True, limiter=self._limiter)
        except Exception as err:
            log.exception("encoding the result video %s failed", key)
            slot.error = err
            del self._slots[key]  # the next request tries again
        finally:
            slot.ready.set()


def _load_or_encode(folder: Path, key: VideoKey) -> bytes:
    from ..media.synth import write_video  # PyAV is loaded on first use

    width, height, seconds, audio = key
    path = folder / f"{width}x{height}-{seconds}s-{'sound' if audio else 'silent'}.mp4"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{path.name}.{uuid.uuid4().hex}.part"
        write_video(partial, width, height, seconds, audio=audio)
        os.replace(partial, path)  # atomic: another process may read the folder too
    return path.read_bytes()


# --- signed URLs ------------------------------------------------------------


def result_url(state: SimState, task: Task) -> str:
    assert task.ended is not None
    expires = int(task.ended + state.config.result_ttl)
    return f"{state.base_url}/results/{task.task_id}.mp4?Expires={expires}&Signature={quote(_signature(state.secret, task.task_id, expires))}"


def _signature(secret: bytes, task_id: str, expires: int) -> str:
    mac = hmac.new(secret, f"{task_id}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode()


async def result_bytes(state: SimState, task_id: str, query: Mapping[str, str]) -> bytes | Refusal:
    """The video behind a result URL, or why it is refused."""
    expires = query.get("Expires", "")
    if not expires.isdigit() or not hmac.compare_digest(query.get("Signature", ""), _signature(state.secret, task_id, int(expires))):
        return Refusal(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
    if state.clock.now() > int(expires):
        return Refusal(403, "AccessDenied", "Request has expired.")  # [doc]
    task = state.tasks.get(task_id)
    if task is None or task.status != SUCCEEDED:
        return Refusal(404, "NoSuchKey", "The specified key does not exist.")
    return await state.videos.get(video_key(task.output))


# --- route --------------------------------------------------------------------

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


async def download(state: SimState, req: HttpRequest, call: Call, params: Mapping[str, str]) -> HttpResponse:
    call.task_id = params["task_id"]
    task = state.tasks.get(params["task_id"])
    call.account = task.account if task else None
    data = await result_bytes(state, params["task_id"], req.query)
    if isinstance(data, Refusal):
        return oss_error(data.status, data.code, data.message, call.request_id)
    headers = [("accept-ranges", "bytes"), ("etag", f'"{hashlib.md5(data).hexdigest()}"'), ("x-oss-request-id", call.request_id)]
    wanted = _RANGE.match(req.header("range").strip())
    if wanted is None:  # no range, or several: the whole file, as HTTP allows
        return HttpResponse(200, data, "video/mp4", headers)
    span = _byte_range(wanted, len(data))
    if span is None:
        return HttpResponse(416, b"", None, [*headers, ("content-range", f"bytes */{len(data)}")])
    first, last = span
    return HttpResponse(206, data[first : last + 1], "video/mp4", [*headers, ("content-range", f"bytes {first}-{last}/{len(data)}")])


def _byte_range(match: re.Match[str], size: int) -> tuple[int, int] | None:
    """A ``bytes=`` range as (first, last) inclusive; None when it cannot be satisfied."""
    start, end = match.groups()
    if size == 0 or not (start or end):
        return None
    if not start:  # the last N bytes
        if not end or int(end) == 0:
            return None
        return max(0, size - int(end)), size - 1
    first = int(start)
    last = min(int(end), size - 1) if end else size - 1
    return (first, last) if first <= last else None
