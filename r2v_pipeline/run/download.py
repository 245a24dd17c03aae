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


@dataclass(frozen=True)
class Fetched:
    path: Path
    info: MediaInfo


async def fetch_video(
    client: httpx.AsyncClient,
    url: str,
    dest: Path,
    *,
    backoff: Backoff,
    sleep: Callable[[float], Awaitable[None]],
    rng: random.Random | None = None,
) -> Fetched:
    """Download ``url`` to a partial file beside ``dest`` and verify it; raises Expired or BadVideo,
    or the last transport error once the attempts are spent. Does not rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.part")
    last: Exception | None = None
    for attempt in range(backoff.attempts):
        try:
            if await _fetch_once(client, url, part):
                break
            last = OSError("the connection closed before the whole video arrived")
        except (httpx.TransportError, _Retry) as error:
            last = error
        if attempt + 1 < backoff.attempts:
            await sleep(backoff.delay(attempt, getattr(last, "retry_after", None), rng))
    else:
        raise last or OSError("download failed")
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
        expected = _expected_size(response, offset if resumed else 0)
        with open(part, "ab" if resumed else "wb") as out:
            async for chunk in response.aiter_bytes(CHUNK):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
    return expected is None or size == expected


def _expected_size(response: httpx.Response, offset: int) -> int | None:
    length = response.headers.get("content-length")
    return offset + int(length) if length and length.isdigit() else None


def _short(text: str) -> str:
    return " ".join(text.split())[:160]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def place(fetched: Fetched, dest: Path, fingerprint: str, sidecar: dict[str, Any]) -> str:
    """Move a verified download to ``dest`` (moving aside a different video already
    there) and write its provenance sidecar; returns the video's sha256."""
    sha = sha256_of(fetched.path)
    existing = sidecar_path(dest)
    if dest.exists():
        previous = _read_json(existing).get("fingerprint") if existing.exists() else None
        if previous != fingerprint:
            aside = dest.parent / "superseded" / f"{dest.stem}-{(previous or sha256_of(dest))[:12]}{dest.suffix}"
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
