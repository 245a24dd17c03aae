"""Fetching a finished video: streamed, resumed, verified, then renamed into place.

A video is paid for once it exists; its URL dies after 24 hours. So the
download retries generously, picks up where a cut connection left off (when
the server takes a Range), and only a verified MP4 with a video stream lands
at the output path, by an atomic rename. A different video already at that
path is moved aside into ``superseded/``, never deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

import httpx

from ..media.probe import MediaInfo, probe_file
from .pacing import Backoff

CHUNK = 1 << 16


class Expired(Exception):
    """The result URL no longer serves the video."""


class BadVideo(Exception):
    """What was served is not a playable video."""


class DownloadFailed(Exception):
    """Every attempt failed; the URL may still work later (it lives 24 hours)."""


@dataclass(frozen=True)
class Fetched:
    path: Path
    info: MediaInfo


async def fetch_video(
    client: httpx.AsyncClient,
    url: str,
    dest: Path,
    *,
    task: str,
    backoff: Backoff,
    sleep: Callable[[float], Awaitable[None]],
    rng: random.Random | None = None,
) -> Fetched:
    """Download ``url`` (task ``task``'s video) to a partial file beside ``dest`` and verify
    it. Raises Expired, BadVideo, or DownloadFailed once the attempts are spent. Does not rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    # A partial file is the task's own: one left by another task for the same shot
    # (an edit, a --force) must never be resumed into this one.
    part = dest.with_name(f".{dest.name}.{re.sub(r'[^A-Za-z0-9-]', '_', task)}.part")
    for leftover in dest.parent.glob(f".{dest.name}.*.part"):
        if leftover != part:
            leftover.unlink(missing_ok=True)
    last: Exception | None = None
    for attempt in range(backoff.attempts):
        try:
            if await _fetch_once(client, url, part):
                break
            last = OSError("the connection closed before the whole video arrived")
        except Expired:
            part.unlink(missing_ok=True)
            raise
        except (httpx.HTTPError, _Retry, OSError) as error:
            last = error
        if attempt + 1 < backoff.attempts:
            await sleep(backoff.delay(attempt, getattr(last, "retry_after", None), rng))
    else:
        raise DownloadFailed(f"{backoff.attempts} attempts; the last: {last}")
    info = probe_file(part)
    if info.kind != "video" or info.format not in ("mp4", "mov") or not info.has_video:
        part.unlink(missing_ok=True)
        raise BadVideo(f"the provider served {info.describe()}, not an MP4 video")
    return Fetched(part, info)


class _Retry(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


async def _fetch_once(client: httpx.AsyncClient, url: str, part: Path) -> bool:
    """One attempt; True when the whole body arrived."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    async with client.stream("GET", url, headers=headers) as response:
        if response.status_code in (403, 404, 410):
            body = (await response.aread()).decode("utf-8", "replace")
            raise Expired(f"HTTP {response.status_code}: {_short(body)}")
        if response.status_code == 416:  # we hold more than there is: start over
            part.unlink(missing_ok=True)
            raise _Retry("range not satisfiable")
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retry(f"HTTP {response.status_code}")
        if response.status_code not in (200, 206):
            raise _Retry(f"HTTP {response.status_code}")
        resumed = response.status_code == 206 and offset > 0
        if resumed and _range_start(response) != offset:  # not the bytes we asked for: start over
            part.unlink(missing_ok=True)
            raise _Retry(f"the server resumed at {_range_start(response)}, not at {offset}")
        expected = _expected_size(response, offset if resumed else 0)
        with open(part, "ab" if resumed else "wb") as out:
            async for chunk in response.aiter_bytes(CHUNK):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
    return expected is None or size == expected


def _expected_size(response: httpx.Response, offset: int) -> int | None:
    total = response.headers.get("content-range", "").rpartition("/")[2]
    if total.isdigit():
        return int(total)
    length = response.headers.get("content-length")
    return offset + int(length) if length and length.isdigit() else None


def _range_start(response: httpx.Response) -> int | None:
    """Where a 206's bytes start: 'bytes 1000-1999/2000' → 1000."""
    match = re.match(r"bytes (\d+)-", response.headers.get("content-range", ""))
    return int(match.group(1)) if match else None


def _short(text: str) -> str:
    return " ".join(text.split())[:160]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def place(fetched: Fetched, dest: Path, sidecar: dict[str, Any]) -> str:
    """Move a verified download to ``dest`` (moving aside a different video already
    there, or the same bytes made by another request: a paid video and its
    provenance are never deleted) and write its provenance sidecar; returns the
    video's sha256."""
    sha = sha256_of(fetched.path)
    existing = sidecar_path(dest)
    if dest.exists():
        previous = sha256_of(dest)
        if previous != sha or _read_json(existing).get("fingerprint") != sidecar.get("fingerprint"):
            aside = dest.parent / "superseded" / f"{dest.stem}-{previous[:12]}{dest.suffix}"
            aside.parent.mkdir(exist_ok=True)
            os.replace(dest, aside)
            if existing.exists():
                os.replace(existing, sidecar_path(aside))
    os.replace(fetched.path, dest)
    write_json(existing, {**sidecar, "video": {**sidecar.get("video", {}), "sha256": sha}})
    _fsync_dir(dest.parent)
    return sha


def sidecar_path(video: Path) -> Path:
    return video.with_suffix(".json")


def recorded_fingerprint(video: Path) -> str | None:
    """The request a video on disk was made for, as its sidecar records it."""
    value = _read_json(sidecar_path(video)).get("fingerprint")
    return value if isinstance(value, str) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
