"""How the way r2v writes a request has changed between versions, so an upgrade never
makes an unchanged shot look edited.

A fingerprint is the hash of the exact body. When a new version writes a
different body for the same manifest (a setting now sent explicitly, say), every
shot affected gets a new fingerprint, and without this file the next cron run
would pay for all of them again. Each change here can undo itself: from the body
this version writes, it gives the body the version before wrote. The planner
fingerprints those earlier bodies too; a video made under an earlier format is
kept as done (the plan says why) unless the user asks to remake such shots.

Add an entry whenever the planner's output for an unchanged manifest changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..catalog.spec import ModelSpec

FORMAT = 2  # the body format this version writes

Undo = Callable[[ModelSpec, dict[str, Any], frozenset[str]], dict[str, Any]]


@dataclass(frozen=True)
class FormatChange:
    """One change of how request bodies are written, and how to write a body the way before it did."""

    format: int  # the format this change began
    version: str  # the r2v version that made it
    what: str  # for people
    undo: Undo  # (model, body, settings the manifest set) -> the body the format before wrote


def _unset_explicit(name: str) -> Undo:
    """Before: a setting the model's table sends explicitly was left out unless the manifest set it."""

    def undo(spec: ModelSpec, body: dict[str, Any], manifest_set: frozenset[str]) -> dict[str, Any]:
        if name not in spec.explicit or name in manifest_set or name not in spec.settings:
            return body
        return _without(body, spec.settings[name].path)

    return undo


def _without(node: Any, path: tuple[str, ...]) -> Any:
    """``node`` without the value at ``path``: new dicts along the path, the rest shared
    (bodies are fingerprinted, never changed in place)."""
    if not isinstance(node, dict) or path[0] not in node:
        return node
    if len(path) == 1:
        return {key: value for key, value in node.items() if key != path[0]}
    return {**node, path[0]: _without(node[path[0]], path[1:])}


CHANGES: tuple[FormatChange, ...] = (
    FormatChange(2, "0.2.0", "watermark is now sent explicitly (false unless the manifest says so)", _unset_explicit("watermark")),
)


@dataclass(frozen=True)
class EarlierBody:
    """The body an earlier version wrote for the same manifest."""

    body: dict[str, Any]
    format: int  # the format that wrote it
    version: str  # the first version whose body differs from this one
    what: str  # what changed since, for people


def earlier_bodies(spec: ModelSpec, body: dict[str, Any], manifest_set: frozenset[str]) -> list[EarlierBody]:
    """Newest first: the bodies earlier formats wrote for this request, where they differ."""
    found: list[EarlierBody] = []
    current = body
    since: list[str] = []
    for change in sorted(CHANGES, key=lambda c: c.format, reverse=True):
        earlier = change.undo(spec, current, manifest_set)
        if earlier != current:
            since.append(change.what)
            found.append(EarlierBody(earlier, change.format - 1, change.version, "; ".join(since)))
        current = earlier
    return found
