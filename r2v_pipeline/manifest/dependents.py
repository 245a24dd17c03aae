"""Which manifests a change affects: every episode whose ``extends`` chain reaches a changed file.

A series file that loses a cast member is valid on its own; the episodes that
name that member are not. A pre-commit hook given only the changed series file
must therefore validate the episodes that extend it too.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterable

from .yaml_loader import MAX_BYTES, YamlError, load_yaml

MAX_CHAIN = 32  # longer extends chains are refused by validation anyway
MAX_CANDIDATES = 20_000  # manifests looked at when no git index names them
SUFFIXES = (".yaml", ".yml")


def dependents(changed: Iterable[Path], candidates: Iterable[Path]) -> list[Path]:
    """The candidates (not themselves changed) whose extends chain reaches a changed file."""
    targets = {p.resolve() for p in changed}
    parents: dict[Path, Path | None] = {}
    found = []
    for candidate in candidates:
        path = candidate.resolve()
        if path in targets:
            continue
        if any(step in targets for step in _chain(path, parents)):
            found.append(candidate)
    return found


def _chain(path: Path, parents: dict[Path, Path | None]) -> list[Path]:
    """The files ``path`` extends, nearest first (stops at a loop or a file that cannot be read)."""
    seen: list[Path] = []
    current: Path | None = path
    while current is not None and len(seen) < MAX_CHAIN:
        if current not in parents:
            parents[current] = _extends(current)
        current = parents[current]
        if current is None or current in seen:
            break
        seen.append(current)
    return seen


def _extends(path: Path) -> Path | None:
    try:
        if not path.is_file() or path.stat().st_size > MAX_BYTES:  # a FIFO or device is never opened
            return None
        data = load_yaml(path, path.name).data
    except (OSError, YamlError):
        return None
    parent = data.get("extends") if isinstance(data, dict) else None
    return (path.parent / parent).resolve() if isinstance(parent, str) else None


def manifests_near(paths: list[Path]) -> list[Path]:
    """The YAML files of the repository holding ``paths`` (as git tracks them), or, outside
    git, the YAML files below the folder the paths share."""
    if not paths:
        return []
    folder = Path(os.path.commonpath([str(p.resolve().parent) for p in paths]))
    tracked = _git_yaml(folder)
    if tracked is not None:
        return tracked
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(root) / f for f in files if f.endswith(SUFFIXES)]
        if len(found) > MAX_CANDIDATES:
            break
    return sorted(found)


def _git_yaml(folder: Path) -> list[Path] | None:
    try:
        top = subprocess.run(["git", "-C", str(folder), "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=30)
        if top.returncode != 0:
            return None
        root = Path(top.stdout.strip())
        listed = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--", *(f"*{s}" for s in SUFFIXES)], capture_output=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if listed.returncode != 0:
        return None
    return [root / name for name in listed.stdout.decode("utf-8", "surrogateescape").split("\0") if name]
