"""Writing files that others read while we write them: whole or not at all.

Several hosts may share one output folder (a NAS or NFS mount) and write the same
report, timeline or sidecar at the same moment. Each writer gets a temporary name
of its own beside the target (``mkstemp``: created exclusively, so two processes,
even with one pid on two hosts, never share it), then renames it into place; a
reader sees the old file or a new one, never half of one, and the last rename wins.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Read once, while the process is still single-threaded: mkstemp makes files private,
# and a file others read gets the mode a plain open() would have given it.
_UMASK = os.umask(0)
os.umask(_UMASK)


def temporary_beside(dest: Path, suffix: str = ".tmp") -> Path:
    """A new, empty file of this process's own beside ``dest`` (``.<name>.<random><suffix>``),
    for a writer that needs a path; ``put_in_place`` renames it over ``dest`` when done."""
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix, dir=dest.parent)
    os.close(fd)
    return Path(name)


def put_in_place(written: Path, dest: Path) -> None:
    """``written`` (from ``temporary_beside``) renamed over ``dest``, with the mode ``dest``
    has or a new file gets. The mode is given only now: until its writer is done the
    file stays its owner's to write, even when the old ``dest`` was read-only."""
    os.chmod(written, _mode_for(dest))
    os.replace(written, dest)


def _mode_for(path: Path) -> int:
    """The mode of the file at ``path``, or the one a plain open() would give a new one
    (not mkstemp's private 0600: cuts, reports and timelines are for others to read)."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return 0o666 & ~_UMASK


def write_atomically(path: Path, data: str | bytes, sync: bool = False) -> None:
    """Replace ``path`` whole. ``sync``: on disk before the rename (a file people edit by
    hand and commit, whose loss would lose their work). A write that fails (disk full)
    leaves no temporary file behind. A file that exists keeps its mode."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(fd, _mode_for(path))
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
