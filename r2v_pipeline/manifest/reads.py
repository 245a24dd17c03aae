"""What planning read from the file system: each file's bytes, or that it was not there.

The plan cache (plan/plan_cache.py) keeps a plan beside the list of what made it,
and uses it again only when every entry reads the same now. Each read is noted
where it happens (the YAML loader, the selects file, the media files, the folders
public URLs name), so no file planning reads is left off the list.
"""

from __future__ import annotations

import hashlib
import os
import stat
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator

ABSENT = "absent"  # nothing at the path: its appearing must be noticed too
OTHER = "not a regular file"  # a folder, FIFO or device where a file was looked for
RESIZED = "another length"  # a file whose length differs from the one read: changed, not read again
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Read:
    """One file planning read (or looked for), as the plan cache checks it again."""

    path: str  # as planning named it (relative paths start at the working folder)
    resolved: str  # where it led, links followed: identities and placeholders come from it
    content: str | None  # sha256 of the bytes, ABSENT or OTHER; None: only where it leads counts
    size: int | None = None  # the bytes' length, where known: another length is a change found without reading


_reads: ContextVar[list[Read] | None] = ContextVar("r2v_reads", default=None)


@contextmanager
def recording() -> Iterator[list[Read]]:
    """Every read noted while inside, in order."""
    reads: list[Read] = []
    token = _reads.set(reads)
    try:
        yield reads
    finally:
        _reads.reset(token)


def note(
    path: str | os.PathLike[str], content: str | None, resolved: str | os.PathLike[str] | None = None, size: int | None = None
) -> None:
    reads = _reads.get()
    if reads is not None:
        reads.append(Read(str(path), str(resolved) if resolved is not None else os.path.realpath(path), content, size))


def note_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """The file at ``path`` was read whole and held ``data``."""
    if _reads.get() is not None:
        note(path, hashlib.sha256(data).hexdigest(), size=len(data))


def content_of(path: str | os.PathLike[str], size: int | None = None) -> str:
    """What is at ``path`` now, as a Read's ``content`` says it; RESIZED, unread, when it
    is a file of another length than ``size`` (a 10 GB file put in a picture's place is
    not read to find it changed)."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return ABSENT
    if not stat.S_ISREG(mode):
        return OTHER
    # Not blocking, and checked again on the descriptor: a FIFO swapped in after the stat never hangs the check.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return OTHER
        if size is not None and info.st_size != size:
            return RESIZED
        digest = hashlib.sha256()
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def unchanged(read: Read) -> bool:
    """The path still leads where it led and holds the same bytes (or still nothing).
    Any error reading it counts as a change."""
    try:
        if os.path.realpath(read.path) != read.resolved:
            return False
        return read.content is None or content_of(read.path, read.size) == read.content
    except OSError:
        return False
