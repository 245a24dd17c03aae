"""Manifests as they are at git HEAD, for questions about what is committed (``r2v gc``).

``at_head`` extracts HEAD's tree into a temporary folder (media included: a
manifest's fingerprints depend on its files' content) and maps each given path
to its copy there. Outside a git work tree, or when git is missing, it yields None.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

MAX_ARCHIVE = 2 << 30  # a repository larger than this is not extracted (2 GiB)


@contextmanager
def at_head(paths: list[Path]) -> Iterator[list[Path] | None]:
    """The given files' counterparts at HEAD (those that exist there), or None."""
    root = _toplevel(paths[0].resolve().parent) if paths else None
    archive = _archive(root) if root is not None else None
    if root is None or archive is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="r2v-head-") as folder:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            safe = getattr(tarfile, "data_filter", None)  # no links out, no devices (Python 3.10.12+)
            tar.extractall(folder, filter=safe) if safe else tar.extractall(folder)  # noqa: S202
        mapped = []
        for path in paths:
            try:
                copy = Path(folder) / path.resolve().relative_to(root)
            except ValueError:
                continue  # outside the repository
            if copy.is_file():
                mapped.append(copy)
        yield mapped


def _toplevel(folder: Path) -> Path | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return Path(done.stdout.strip()).resolve() if done.returncode == 0 else None


def _archive(root: Path) -> bytes | None:
    try:
        done = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", "HEAD"], capture_output=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0 or len(done.stdout) > MAX_ARCHIVE:
        return None  # no commit yet, or too large to look at this way
    return done.stdout
