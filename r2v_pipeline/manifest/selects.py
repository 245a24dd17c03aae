"""An episode's selects: which take of each shot the cut uses, takes approved or
rejected in review, a note. One YAML file beside the episode, meant for git.

``ep01-the-storm.yaml`` has ``ep01-the-storm.selects.yaml``::

    shots:
      gull-visit:
        pick: 2
        approved: [2]
        rejected: [1]
        note: the gull lands on cue

``r2v review`` writes it (shots in manifest order, takes in number order, so a
diff shows only what a person changed); hand edits are checked like a manifest,
every problem at its file:line:col. A ``pick:`` in the manifest wins over it.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..diagnostics import Diagnostics, Position, did_you_mean
from ..files import write_atomically
from . import reads
from .model import Shot
from .yaml_loader import YamlError, YamlFile, load_yaml

SUFFIX = ".selects.yaml"
NOTE_MAX = 2000  # characters; a note is a remark, not a document
_SHOT_KEYS = ("pick", "approved", "rejected", "note")


@functools.cache
def _unprintable() -> re.Pattern[str]:
    """Compiled when a selects file is written: the class spans all of Unicode and takes
    milliseconds to compile, which every `r2v validate` would pay at import."""
    return re.compile("[^\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class Verdict(str, Enum):
    APPROVED = "approved"
    REJECTED = "rejected"


class PickSource(str, Enum):
    MANIFEST = "manifest"  # the shot's pick: N pins it
    SELECTS = "selects"  # chosen in review
    DEFAULT = "default"  # the first approved take, else the first not rejected
    NONE = "none"  # every take rejected: the shot needs attention


@dataclass(frozen=True)
class ShotSelect:
    """What review decided for one shot."""

    pick: int | None = None
    approved: tuple[int, ...] = ()
    rejected: tuple[int, ...] = ()
    note: str = ""

    def verdict(self, take: int) -> Verdict | None:
        if take in self.approved:
            return Verdict.APPROVED
        if take in self.rejected:
            return Verdict.REJECTED
        return None

    @property
    def empty(self) -> bool:
        return self.pick is None and not self.approved and not self.rejected and not self.note


@dataclass(frozen=True)
class Selects:
    """An episode's selects file: what review said of each shot's takes."""

    path: Path
    shots: Mapping[str, ShotSelect] = field(default_factory=dict)

    def of(self, shot_id: str) -> ShotSelect:
        return self.shots.get(shot_id) or ShotSelect()


@dataclass(frozen=True)
class Pick:
    """The take that goes in the cut, and who chose it."""

    take: int | None  # None: no take can go in the cut
    source: PickSource


@dataclass(frozen=True)
class TakeReview:
    """What review says of one take, as the plan, the cut and the report show it."""

    picked: bool = True
    verdict: Verdict | None = None
    source: PickSource = PickSource.DEFAULT
    note: str = ""

    @property
    def every_take_rejected(self) -> bool:
        return self.source is PickSource.NONE


def review_of(shot: Shot, selects: Selects | None, take: int | None) -> TakeReview:
    """The review of take ``take`` (None: the shot's only take)."""
    selected = selects.of(shot.id) if selects is not None else ShotSelect()
    pick = choose(shot, selected)
    number = take or 1
    return TakeReview(pick.take == number, selected.verdict(number), pick.source, selected.note)


def selects_path(episode_file: Path) -> Path:
    """``ep01.yaml`` → ``ep01.selects.yaml``, beside it."""
    name = episode_file.name
    for ending in (".yaml", ".yml"):
        if name.endswith(ending):
            name = name[: -len(ending)]
            break
    return episode_file.with_name(name + SUFFIX)


def is_selects_file(path: Path) -> bool:
    return path.name.endswith(SUFFIX)


def take_count(shot: Shot) -> int:
    """How many takes the manifest asks of the shot (a list of seeds, a number, or one)."""
    takes = shot.takes.value if shot.takes is not None else None
    if isinstance(takes, list):
        return max(len(takes), 1)
    if isinstance(takes, int) and not isinstance(takes, bool) and takes > 0:
        return takes
    return 1


def choose(shot: Shot, selected: ShotSelect) -> Pick:
    """The take the cut uses: the manifest's pin, else review's pick, else the
    first approved take, else the first not rejected; none when all are rejected."""
    if shot.pick is not None:
        return Pick(shot.pick.value, PickSource.MANIFEST)
    if selected.pick is not None:
        return Pick(selected.pick, PickSource.SELECTS)
    count = take_count(shot)
    if selected.approved:
        return Pick(min(selected.approved), PickSource.DEFAULT)
    for take in range(1, count + 1):
        if take not in selected.rejected:
            return Pick(take, PickSource.DEFAULT)
    return Pick(None, PickSource.NONE)


# --- reading -------------------------------------------------------------------------------


def load_selects(episode_file: Path, name: str, shots: Sequence[Shot], diagnostics: Diagnostics) -> Selects:
    """The episode's selects (empty when it has no file); problems go to ``diagnostics``."""
    path = selects_path(episode_file)
    if not path.exists():
        reads.note(path, reads.ABSENT)  # one written later (r2v review) changes the plan
        return Selects(path)
    shown = str(Path(name).with_name(path.name)) if name else path.name
    if not path.is_file():  # a FIFO or device would hang a read; a folder is no file
        diagnostics.error(Position(shown), "is not a regular file; a selects file is YAML text")
        return Selects(path)
    if path.stat().st_size == 0:  # an empty file selects nothing
        reads.note_bytes(path, b"")
        return Selects(path)
    try:
        file = load_yaml(path, shown)
    except YamlError as error:
        diagnostics.extend(error.diagnostics)
        return Selects(path)
    return Selects(path, _read(file, {s.id: s for s in shots}, diagnostics))


def _read(file: YamlFile, shots: Mapping[str, Shot], diagnostics: Diagnostics) -> dict[str, ShotSelect]:
    data = file.data
    if not isinstance(data, dict):
        diagnostics.error(file.at(()), "a selects file is a mapping with a shots: key")
        return {}
    for key in data:
        if key != "shots":
            diagnostics.error(file.key_at((key,)), f'unknown key "{key}": a selects file holds shots:{did_you_mean(key, ["shots"])}')
    entries = data.get("shots")
    if entries is None:
        return {}
    if not isinstance(entries, dict):
        diagnostics.error(file.at(("shots",)), "shots: a mapping of shot id to its selects")
        return {}
    found: dict[str, ShotSelect] = {}
    for shot_id, entry in entries.items():
        where = ("shots", shot_id)
        shot = shots.get(shot_id)
        if shot is None:
            known = ", ".join(shots) or "none"
            diagnostics.error(
                file.key_at(where), f'shots.{shot_id}: no shot "{shot_id}" in the episode{did_you_mean(shot_id, shots)} (its shots: {known})'
            )
            continue
        selected = _shot(file, where, entry, take_count(shot), diagnostics)
        if selected is not None and selected.pick is not None and shot.pick is not None and selected.pick != shot.pick.value:
            diagnostics.warning(
                file.at(where + ("pick",)), f"shots.{shot_id}.pick: not used: the manifest pins take {shot.pick.value} (pick: {shot.pick.value})"
            )
        if selected is not None:
            found[shot_id] = selected
    return found


def _shot(file: YamlFile, where: tuple[str, str], entry: Any, count: int, diagnostics: Diagnostics) -> ShotSelect | None:
    field_name = ".".join(where)
    if entry is None:
        return ShotSelect()
    if not isinstance(entry, dict):
        diagnostics.error(file.at(where), f"{field_name}: a mapping of {', '.join(_SHOT_KEYS)}")
        return None
    errors = len(diagnostics.errors)
    for key in entry:
        if key not in _SHOT_KEYS:
            diagnostics.error(file.key_at(where + (key,)), f'{field_name}: unknown key "{key}"{did_you_mean(key, _SHOT_KEYS)}')
    pick = entry.get("pick")
    if pick is not None and _take(file, where + ("pick",), pick, count, diagnostics) is None:
        pick = None
    lists: dict[str, tuple[int, ...]] = {}
    for verdict in ("approved", "rejected"):
        value = entry.get(verdict)
        if value is None:
            lists[verdict] = ()
            continue
        if not isinstance(value, list):
            diagnostics.error(file.at(where + (verdict,)), f"{field_name}.{verdict}: a list of take numbers, like [1, 2]")
            lists[verdict] = ()
            continue
        takes = [_take(file, where + (verdict, i), item, count, diagnostics) for i, item in enumerate(value)]
        lists[verdict] = tuple(sorted({t for t in takes if t is not None}))
    for take in sorted(set(lists["approved"]) & set(lists["rejected"])):
        at = file.at(where + ("rejected", list(entry["rejected"]).index(take)))
        diagnostics.error(at, f"{field_name}: take {take} is both approved and rejected")
    if pick is not None and pick in lists["rejected"]:
        diagnostics.error(file.at(where + ("pick",)), f"{field_name}.pick: take {pick} is rejected; pick another or unreject it")
    note = entry.get("note")
    if note is not None and not isinstance(note, str):
        diagnostics.error(file.at(where + ("note",)), f"{field_name}.note: text (put it in quotes)")
        note = None
    elif isinstance(note, str) and len(note) > NOTE_MAX:
        diagnostics.error(file.at(where + ("note",)), f"{field_name}.note: {len(note)} characters; at most {NOTE_MAX}")
    if len(diagnostics.errors) > errors:
        return None
    return ShotSelect(pick, lists["approved"], lists["rejected"], note or "")


def _take(file: YamlFile, path: tuple[Any, ...], value: Any, count: int, diagnostics: Diagnostics) -> int | None:
    field_name = ".".join(str(p) for p in path[:3])
    if not isinstance(value, int) or isinstance(value, bool):
        diagnostics.error(file.at(path), f"{field_name}: {value!r} is not a take number")
        return None
    if not 1 <= value <= count:
        takes = "take 1 only" if count == 1 else f"takes 1–{count}"
        diagnostics.error(file.at(path), f"{field_name}: no take {value}: the shot has {takes}")
        return None
    return value


# --- writing -------------------------------------------------------------------------------


def render_selects(episode_name: str, order: Iterable[str], shots: Mapping[str, ShotSelect]) -> str:
    """The file's text: shots in manifest ``order``, empty ones left out, fixed key order."""
    lines = [
        f"# Takes chosen in review for {episode_name}: `r2v review` writes this file;",
        "# edit it by hand if you like (r2v checks it). A shot's pick: in the manifest wins.",
        "shots:",
    ]
    written = 0
    for shot_id in order:
        selected = shots.get(shot_id)
        if selected is None or selected.empty:
            continue
        written += 1
        lines.append(f"  {_scalar(shot_id)}:")
        if selected.pick is not None:
            lines.append(f"    pick: {selected.pick}")
        if selected.approved:
            lines.append(f"    approved: [{', '.join(map(str, selected.approved))}]")
        if selected.rejected:
            lines.append(f"    rejected: [{', '.join(map(str, selected.rejected))}]")
        if selected.note:
            lines.append(f"    note: {_quoted(selected.note)}")
    if not written:
        lines[-1] = "shots: {}"
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    """A double-quoted YAML scalar, readable (accents and emoji as they are) but with
    what YAML may not carry raw, or would read as a line break, escaped."""
    return _unprintable().sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(text, ensure_ascii=False))


def _scalar(text: str) -> str:
    """A mapping key as plain YAML when that reads back as the same text, else quoted."""
    plain = _PLAIN.match(text) and not text[0].isdigit() and text.lower() not in ("yes", "no", "true", "false", "on", "off", "null", "y", "n")
    return text if plain else _quoted(text)


def write_selects(path: Path, text: str) -> None:
    """Replace the selects file whole and on disk: a reader (or git) never sees half of
    it, and a crash never loses picks someone made by hand."""
    write_atomically(path, text, sync=True)
