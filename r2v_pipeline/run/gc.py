"""``r2v gc``: what the video store could free, and freeing it on request.

A stored video is garbage when no manifest given names its request — neither
as the files are now nor as they are at git HEAD — and it belongs to an
episode those manifests hold (a video of an episode not given is never
touched: its manifest was not read). Removing one also removes the links to
it: an output file of a shot the manifests no longer have, and superseded/
entries.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Iterable

from .store import SUPERSEDED, StoredVideo, VideoStore, read_json, sidecar_path


@dataclass(frozen=True)
class Garbage:
    """A stored video no manifest names, with the other names it has in the output folder."""

    stored: StoredVideo
    links: tuple[Path, ...]  # other names of the same video in the output folder, removed with it

    @property
    def bytes(self) -> int:
        try:
            return self.stored.path.stat().st_size
        except OSError:
            return 0

    @property
    def key(self) -> str:
        return str(self.stored.meta.get("key") or "?")

    @property
    def billed_seconds(self) -> Decimal | None:
        usage = self.stored.meta.get("usage") or {}
        planned = (self.stored.meta.get("billed_seconds") or {}).get("planned")
        value = usage.get("duration") if isinstance(usage, dict) and "duration" in usage else planned
        return Decimal(str(value)) if isinstance(value, (int, float)) else None

    @property
    def cost(self) -> Decimal | None:
        value = self.stored.meta.get("cost")
        return Decimal(str(value)) if isinstance(value, (int, float)) else None


@dataclass(frozen=True)
class Collection:
    """What r2v gc found: the garbage, how many stored videos are still named, and episodes it could not judge."""

    garbage: list[Garbage]
    named: int  # stored videos the manifests still name
    elsewhere: list[str]  # episodes with stored videos whose manifests were not given


def collect(stores: Iterable[VideoStore], referenced: set[str], episodes: set[tuple[str, str]]) -> Collection:
    garbage: list[Garbage] = []
    named = 0
    elsewhere: set[str] = set()
    for store in stores:
        for stored in store.objects():
            if stored.fingerprint in referenced:
                named += 1
                continue
            series, episode = _episode_of(stored)
            if (series, episode) not in episodes:
                elsewhere.add(f"{series}/{episode}")
                continue
            garbage.append(Garbage(stored, tuple(_links(store.root.parent / series / episode, stored))))
    return Collection(garbage, named, sorted(elsewhere))


def remove(collection: Collection, stores: dict[Path, VideoStore]) -> None:
    for item in collection.garbage:
        for link in item.links:
            link.unlink(missing_ok=True)
            sidecar_path(link).unlink(missing_ok=True)
        store = stores[item.stored.path.parent.parent]
        store.remove(item.stored.fingerprint)


def _episode_of(stored: StoredVideo) -> tuple[str, str]:
    parts = str(stored.meta.get("key") or "").split("/")
    return (parts[0], parts[1]) if len(parts) >= 3 else ("?", "?")


def _links(folder: Path, stored: StoredVideo) -> list[Path]:
    """Files in an episode folder (and its superseded/) that are this video: the same
    file, or a copy whose sidecar names its request."""
    found = []
    for where in (folder, folder / SUPERSEDED):
        if not where.is_dir():
            continue
        for video in sorted(where.glob("*.mp4")):
            try:
                same = os.path.samefile(video, stored.path)
            except OSError:
                same = False
            if same or read_json(sidecar_path(video)).get("fingerprint") == stored.fingerprint:
                found.append(video)
    return found
