"""Fetching a finished video: streamed, resumed, verified; the video store takes it from there.

A video is paid for once it exists; its URL dies after 24 hours. So the
download retries generously, picks up where a cut connection left off (when
the server takes a Range), and only a verified MP4 with a video stream is
handed on (``store.put`` renames it into the store atomically).
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

import httpx

from ..catalog.media_info import MediaInfo
from ..media.mp4_layout import video_info
from .pacing import Backoff

CHUNK = 1 << 16


class Expired(Exception):
    """The result URL no longer serves the video."""


class BadVideo(Exception):
    """What was served is not a playable video."""


class DownloadFailed(Exception):
    """Every attempt failed; the URL may still work later (it lives 24 hours)."""


class DiskTrouble(Exception):
    """This machine cannot keep the video now (disk full, no permission, read-only):
    retrying will not help; the task stays paid and fetchable for a later run."""


# OS errors that are the machine's, not the network's.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR})


@dataclass(frozen=True)
class Fetched:
    """A downloaded video, still under its partial name, and what checking found in it."""

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
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DiskTrouble(f"{error.strerror or error}: {dest.parent}") from None
    # A partial file is the task's own: one left by another task for the same shot
    # (an edit, a --force) must never be resumed into this one.
    part = dest.with_name(f".{dest.name}.{re.sub(r'[^A-Za-z0-9-]', '_', task)}.part")
    for leftover in partials(dest):
        if leftover != part:
            leftover.unlink(missing_ok=True)
    last: Exception | None = None
    sha256: str | None = None
    for attempt in range(backoff.attempts):
        try:
            sha256 = await _fetch_once(client, url, part)
            if sha256 is not None:
                break
            last = OSError("the connection closed before the whole video arrived")
        except Expired:
            part.unlink(missing_ok=True)
            raise
        except OSError as error:
            if error.errno in DISK_ERRNOS:
                part.unlink(missing_ok=True)  # a part that cannot grow only holds the space others need
                raise DiskTrouble(f"{error.strerror or error} writing {part.name}") from None
            last = error
        except (httpx.HTTPError, _Retry) as error:
            last = error
        if attempt + 1 < backoff.attempts:
            await sleep(backoff.delay(attempt, getattr(last, "retry_after", None), rng))
    else:
        raise DownloadFailed(f"{backoff.attempts} attempts; the last: {last}")
    # Hashed as it arrived; whole by its MP4 index (a file cut short points past its end), no packet read.
    info = video_info(part, sha256)
    if info.kind != "video" or info.format not in ("mp4", "mov") or not info.has_video:
        part.unlink(missing_ok=True)
        raise BadVideo(f"the provider served {info.describe()}, not an MP4 video")
    return Fetched(part, info)


def partials(dest: Path) -> list[Path]:
    """The partial downloads beside ``dest`` (``.<name>.<task>.part``), any task's. A plain
    listing: a glob would compile a pattern for every video's name."""
    prefix, found = f".{dest.name}.", []
    try:
        with os.scandir(dest.parent) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith(prefix) and name.endswith(".part") and len(name) >= len(prefix) + len(".part"):
                    found.append(dest.parent / name)
    except (FileNotFoundError, NotADirectoryError):
        pass
    return found


class _Retry(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


async def _fetch_once(client: httpx.AsyncClient, url: str, part: Path) -> str | None:
    """One attempt; the SHA-256 of the whole file when the whole body arrived, else None."""
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
        digest = hashlib.sha256()
        with open(part, "r+b" if resumed else "wb") as out:
            if resumed:  # the bytes kept from earlier attempts, read once
                while len(chunk := out.read(CHUNK)) > 0:
                    digest.update(chunk)
            async for chunk in response.aiter_bytes(CHUNK):
                out.write(chunk)
                digest.update(chunk)
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
    return digest.hexdigest() if expected is None or size == expected else None


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
