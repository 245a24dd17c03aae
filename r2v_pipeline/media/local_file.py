"""Local files read safely: regular files only, never past a caller's bound.

A path to /dev/zero, a FIFO or a socket must not hang or exhaust a check that
runs before anything is spent. No media library here: hashing a file does not
load FFmpeg.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from typing import BinaryIO

_CHUNK = 1 << 20


class NotAFile(OSError):
    """A path that names something other than a regular file (a device, FIFO, socket, folder)."""

    def __init__(self, path: str | os.PathLike[str], what: str):
        self.what = what  # "a FIFO", "a character device", …
        super().__init__(errno.EINVAL, f"is {what}, not a media file", os.fspath(path))


class TooLarge(OSError):
    """A file over the caller's bound: refused before, or as soon as, the bound is passed."""

    def __init__(self, path: str | os.PathLike[str], size: int, limit: int):
        self.size = size  # bytes seen: the whole file, or limit + 1 when it was still growing
        self.limit = limit
        super().__init__(errno.EFBIG, f"is {size / 1e6:.1f} MB, over the {limit / 1e6:g} MB limit", os.fspath(path))


_FILE_TYPES = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def require_regular(path: str | os.PathLike[str], mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    what = next((name for test, name in _FILE_TYPES if test(mode)), "something other than a regular file")
    raise NotAFile(path, what)


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a regular file for reading; symlinks to one are fine.

    ``stat`` first, so a FIFO is never opened (opening one blocks until a writer
    comes); O_NONBLOCK in case one is swapped in after the check; ``fstat`` on the
    descriptor, so what was checked is what is read."""
    require_regular(path, os.stat(path).st_mode)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        require_regular(path, os.fstat(fd).st_mode)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def hash_open(f: BinaryIO, path: str | os.PathLike[str], max_bytes: int | None) -> tuple[str, int]:
    """SHA-256 and length of the file, reading at most ``max_bytes`` + 1 bytes."""
    if max_bytes is not None:
        declared = os.fstat(f.fileno()).st_size
        if declared > max_bytes:
            raise TooLarge(path, declared, max_bytes)
    digest = hashlib.sha256()
    size = 0
    while chunk := f.read(_CHUNK if max_bytes is None else min(_CHUNK, max_bytes + 1 - size)):
        digest.update(chunk)
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:  # it grew after fstat
            raise TooLarge(path, size, max_bytes)
    return digest.hexdigest(), size


def file_sha256(path: str | os.PathLike[str], *, max_bytes: int | None = None) -> str:
    """The SHA-256 of a regular file's bytes (here, not in probe.py: hashing needs no FFmpeg)."""
    with open_regular(path) as f:
        return hash_open(f, path, max_bytes)[0]
