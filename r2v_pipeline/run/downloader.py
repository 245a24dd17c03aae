"""Keeping a paid video: fetch and verify it (download.py), put it in the store, link it in place.

Downloads retry generously; a video only lands once verified, and a different
video at its path is moved aside, never deleted (store.py). A machine that
cannot keep a video (disk full, no permission) stalls the shot, never fails
it: the task stays succeeded and the next run fetches it.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import httpx

from .. import __version__
from ..catalog.billing import as_number
from ..manifest.load import display_name
from ..catalog.media_info import MediaInfo
from ..providers.base import Provider
from .actions import Stores
from .download import BadVideo, DiskTrouble, DownloadFailed, Expired, fetch_video, partials
from .ledger_store import ShotRecord
from .states import Action, ShotStatus
from .work import Job, RunContext, Stalled, Work


class Downloader:
    def __init__(self, run: RunContext, client: httpx.AsyncClient, stores: Stores, currency: str | None, environment: list[str]):
        self._run = run
        self._client = client
        self._stores = stores
        self._currency = currency
        self._environment = environment  # what this machine could not do (disk full, permissions): exits.ENVIRONMENT

    def _disk_trouble(self, why: str) -> Stalled:
        """This machine cannot keep a paid video now: the run says so; the task stays
        succeeded, so the next run fetches it."""
        message = f"cannot keep the video on this machine: {why}"
        self._environment.append(message)
        return Stalled(message)

    async def download(self, job: Job, provider: Provider) -> None:
        record = self._run.ledger.get(job.fingerprint)
        assert record is not None and record.result_url
        backoff = self._run.options.download_backoff.scaled(provider.time.scale)
        for leftover in partials(job.output):  # beside the output: before the store
            leftover.unlink(missing_ok=True)
        try:
            fetched = await fetch_video(
                self._client, record.result_url, job.store.object_path(job.fingerprint), task=record.task_id or job.fingerprint,
                backoff=backoff, sleep=anyio.sleep, rng=self._run.rng,
            )
        except Expired as error:
            self._run.ledger.expired(job.fingerprint, f"the result URL no longer serves the video ({error})")
            self._run.log.event(job.key, "expired", message=str(error))
            return
        except (BadVideo, DownloadFailed) as error:
            # The task is paid for and its URL lives 24 hours: keep it to be fetched again.
            raise Stalled(f"download: {error}") from None
        except DiskTrouble as error:
            raise self._disk_trouble(str(error)) from None
        try:
            stored = job.store.put(job.fingerprint, fetched.path, _provenance(job, record, fetched.info, self._currency), fetched.info.sha256)
            if job.shot is None:  # an earlier version of the shot: a link in superseded/
                placed = job.store.superseded_view(job.fingerprint, job.output)
            else:
                job.store.materialise(job.fingerprint, job.output, {"key": job.key})
                placed = job.output
        except OSError as error:
            fetched.path.unlink(missing_ok=True)
            raise self._disk_trouble(f"{error.strerror or error}: {error.filename or job.output}") from None
        self._run.ledger.downloaded(job.fingerprint, str(placed.resolve()), stored.sha256 or "", fetched.info.bytes)
        self._run.log.event(job.key, "downloaded", path=display_name(placed))

    def place(self, w: Work) -> tuple[ShotStatus, str]:
        """Put a paid video in place from the store: a shot whose request's video is
        stored ("reuse"), or one asking the very same request as another shot ("copy").
        What became of it, and why."""
        shot = w.shot
        try:
            store = self._stores.of(shot)
            if store.find(shot.fingerprint) is None:
                return ShotStatus.FAILED, f"the shot it shares a video with ({w.source.key if w.source else '?'}) has no video"
            store.materialise(shot.fingerprint, shot.output, {"key": shot.key})
        except OSError as error:
            return ShotStatus.FAILED, f"placing the stored video failed: {error.strerror or error}"
        status = ShotStatus.COPIED if w.action is Action.COPY else ShotStatus.REUSED
        self._run.log.event(shot.key, status.value, path=display_name(shot.output))
        return status, w.reason


def _provenance(job: Job, record: ShotRecord, info: MediaInfo, currency: str | None) -> dict[str, Any]:
    """What the store keeps of a video: the request (local files by path and hash, no
    secrets), the task and the run that paid for it, what was billed, when, and the
    file itself. An orphan's request is no longer planned: the ledger remembers it."""
    shot = job.shot
    recorded = record.request_data or {}
    return {
        "r2v_version": __version__,
        "key": job.key,
        "fingerprint": job.fingerprint,
        "provider": job.provider,
        "model": job.model,
        "task_id": record.task_id,
        "paid_by_run": record.submitted_by,
        "request": shot.body if shot else recorded.get("body"),
        "files": {url: {"path": f.shown, "sha256": f.info.sha256} for url, f in shot.files.items()} if shot else {},
        "usage": record.usage_data,
        "billed_seconds": {"planned": float(shot.billed.total)} if shot else {},
        "cost": as_number(shot.cost) if shot and shot.cost is not None else None,
        "currency": currency,
        "timestamps": {
            "submitted": record.submitted_at,
            "started": record.started_at,
            "finished": record.finished_at,
            "downloaded": time.time(),
        },
        "video": {"bytes": info.bytes, "width": info.width, "height": info.height, "seconds": info.seconds},
    }
