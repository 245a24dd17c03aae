"""What the review page shows and changes: episodes, their shots' takes, the selects
on disk. Every read goes to the file, so a reload shows what git would commit,
and a hand edit made while the page is open is not overwritten unseen."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..diagnostics import Diagnostics
from ..manifest.model import Episode, Shot
from ..manifest.selects import NOTE_MAX, PickSource, Selects, ShotSelect, choose, load_selects, render_selects, take_count, write_selects
from ..plan.planner import Plan, PlannedShot


class Refused(Exception):
    """A change the page asked for that cannot be made; the message says why."""


@dataclass(frozen=True)
class Take:
    """One take of a shot on the review page, with its video when made."""

    number: int
    planned: PlannedShot
    media: str | None  # the page's URL of its video, when made


@dataclass(frozen=True)
class ReviewEpisode:
    """An episode's takes by shot, as the review page shows them."""

    key: str  # series/episode
    episode: Episode
    takes: Mapping[str, tuple[Take, ...]]  # shot id → its takes, in number order


class Review:
    """The episodes under review and the media the server may hand out (nothing else)."""

    def __init__(self, plan: Plan):
        self._writing = threading.Lock()  # one change at a time: read, merge, replace
        self.episodes: list[ReviewEpisode] = []
        self.media: dict[str, Path] = {}
        for e_index, episode in enumerate(plan.episodes):
            takes: dict[str, list[Take]] = {}
            for shot in plan.shots:
                if (shot.series, shot.episode) != (episode.series, episode.episode):
                    continue
                url = None
                if shot.output.is_file():
                    url = f"/media/{e_index}/{shot.output.name}"
                    self.media[url] = shot.output
                takes.setdefault(shot.shot, []).append(Take(shot.take or 1, shot, url))
            key = f"{episode.series}/{episode.episode}"
            self.episodes.append(ReviewEpisode(key, episode, {k: tuple(v) for k, v in takes.items()}))

    def find(self, key: str) -> ReviewEpisode:
        for item in self.episodes:
            if item.key == key:
                return item
        raise Refused(f"no episode {key!r} under review")

    def selects(self, item: ReviewEpisode) -> Selects:
        """The file as it is now; raises Refused (with file:line:col) when a hand edit broke it."""
        diagnostics = Diagnostics()
        selects = load_selects(item.episode.file, item.episode.name, item.episode.shots, diagnostics)
        if diagnostics.errors:
            raise Refused("; ".join(str(d) for d in diagnostics.errors))
        return selects

    def view(self) -> list[dict[str, Any]]:
        """The page's data: per episode, per shot, each take with its verdict and whether it is picked."""
        out = []
        for item in self.episodes:
            try:
                selects, problem = self.selects(item), None
            except Refused as error:
                selects, problem = Selects(item.episode.file), str(error)
            shots = []
            for shot in item.episode.shots:
                selected = selects.of(shot.id)
                pick = choose(shot, selected)
                shots.append(
                    {
                        "id": shot.id,
                        "pinned": pick.source is PickSource.MANIFEST,
                        "attention": pick.source is PickSource.NONE,
                        "note": selected.note,
                        "takes": [
                            {
                                "number": t.number,
                                "media": t.media,
                                "picked": pick.take == t.number,
                                "verdict": v.value if (v := selected.verdict(t.number)) else None,
                                "fingerprint": t.planned.fingerprint[:12],
                                "seconds": str(t.planned.billed.output),
                            }
                            for t in item.takes.get(shot.id, ())
                        ],
                    }
                )
            out.append({"key": item.key, "file": item.episode.name, "selects": selects.path.name, "problem": problem, "shots": shots})
        return out

    def change(self, body: Any) -> dict[str, Any]:
        """Apply one shot's selects from the page; the file is rewritten whole, atomically."""
        if not isinstance(body, dict):
            raise Refused("expected a JSON object")
        item = self.find(str(body.get("episode")))
        shots = {s.id: s for s in item.episode.shots}
        shot = shots.get(str(body.get("shot")))
        if shot is None:
            raise Refused(f"no shot {body.get('shot')!r} in {item.key}")
        selected = _shot_select(shot, body)
        with self._writing:
            selects = self.selects(item)
            current = dict(selects.shots)
            current[shot.id] = selected
            write_selects(selects.path, render_selects(item.episode.file.name, [s.id for s in item.episode.shots], current))
        pick = choose(shot, selected)
        return {"saved": selects.path.name, "picked": pick.take, "attention": pick.source is PickSource.NONE}


def _shot_select(shot: Shot, body: Mapping[str, Any]) -> ShotSelect:
    count = take_count(shot)

    def takes(name: str) -> tuple[int, ...]:
        value = body.get(name) or []
        if not isinstance(value, list) or not all(isinstance(t, int) and not isinstance(t, bool) and 1 <= t <= count for t in value):
            raise Refused(f"{name}: take numbers from 1 to {count}")
        return tuple(sorted(set(value)))

    approved, rejected = takes("approved"), takes("rejected")
    if set(approved) & set(rejected):
        raise Refused("a take cannot be both approved and rejected")
    pick = body.get("pick")
    if pick is not None:
        if not isinstance(pick, int) or isinstance(pick, bool) or not 1 <= pick <= count:
            raise Refused(f"pick: a take number from 1 to {count}")
        if shot.pick is not None and pick != shot.pick.value:
            raise Refused(f"the manifest pins take {shot.pick.value} (pick: {shot.pick.value}); change it there")
        if pick in rejected:
            raise Refused(f"take {pick} is rejected; it cannot be picked")
        if shot.pick is not None:
            pick = None  # the manifest's pin decides; the file keeps no second copy of it
    note = body.get("note") or ""
    if not isinstance(note, str) or len(note) > NOTE_MAX:
        raise Refused(f"note: text of at most {NOTE_MAX} characters")
    return ShotSelect(pick, approved, rejected, note.replace("\r\n", "\n"))
