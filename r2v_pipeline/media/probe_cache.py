"""What probing found in a file, kept by the file's content hash.

``r2v validate`` runs on every commit (the pre-commit hook) over the same cast
files; decoding each picture again, and loading FFmpeg to do it, was most of a
one-shot validate's time. A file is still read and hashed every time, so a
changed file is probed afresh; only the verdict on bytes already judged is
reused. Entries are keyed too by the code that judged them (this package's
probing modules and the installed PyAV), so a new version never trusts an old
verdict. The cache is a convenience: a folder that cannot be read or written,
or an entry that does not parse, is the same as no entry.

Where: $R2V_CACHE_DIR, else $XDG_CACHE_HOME/r2v, else ~/.cache/r2v; under it
``probe/<code key>/<sha256>.json``. ``R2V_CACHE_DIR=off`` turns it off.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from .. import __version__
from ..catalog.media_info import MediaInfo
from ..files import write_atomically

CACHE_VARIABLE = "R2V_CACHE_DIR"
_JUDGES = ("r2v_pipeline.media.probe", "r2v_pipeline.media.local_file", "r2v_pipeline.catalog.media_info")
_FIELDS = {f.name: f for f in dataclasses.fields(MediaInfo)}


def default_folder() -> Path | None:
    """The cache folder for probe results, or None when turned off."""
    return cache_folder("probe", _JUDGES)


def cache_folder(kind: str, judges: tuple[str, ...]) -> Path | None:
    """``<cache root>/<kind>/<code key>``: where facts that the modules ``judges``
    (and PyAV) found in files are kept; None when turned off or not to be found."""
    chosen = os.environ.get(CACHE_VARIABLE)
    if chosen == "off":
        return None
    try:
        if chosen:
            root = Path(chosen)
        else:
            xdg = os.environ.get("XDG_CACHE_HOME")
            root = Path(xdg) / "r2v" if xdg else Path.home() / ".cache" / "r2v"
        return root / kind / _code_key(judges)
    except (OSError, RuntimeError, ValueError, ImportError):  # no home folder; a module not found
        return None


def _code_key(judges: tuple[str, ...]) -> str:
    """A hash of the code whose verdict is cached: the judging modules' source and
    PyAV's installed build (found without importing it)."""
    digest = hashlib.sha256(__version__.encode())
    for name in (*judges, "av"):
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec else None
        if origin is None:
            digest.update(b"-")
            continue
        if name == "av":
            info = os.stat(origin)
            digest.update(f"{origin}:{info.st_size}:{info.st_mtime_ns}".encode())
        else:
            digest.update(Path(origin).read_bytes())
    return digest.hexdigest()[:20]


class ProbeCache:
    def __init__(self, folder: Path | None):
        self.folder = folder

    def get(self, sha256: str, size: int) -> MediaInfo | None:
        if self.folder is None:
            return None
        try:
            data = json.loads((self.folder / f"{sha256}.json").read_text("utf-8"))
            info = _info(data)
        except (OSError, ValueError, TypeError, KeyError):
            return None
        return info if info.sha256 == sha256 and info.bytes == size else None

    def put(self, info: MediaInfo) -> None:
        if self.folder is None:
            return
        path = self.folder / f"{info.sha256}.json"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomically(path, json.dumps(dataclasses.asdict(info)))  # a reader sees a whole entry or none
        except OSError:
            pass


_TYPES: dict[str, tuple[type, ...]] = {
    "kind": (str, type(None)), "format": (str,), "bytes": (int,), "sha256": (str,), "width": (int, type(None)),
    "height": (int, type(None)), "seconds": (float, int, type(None)), "has_video": (bool,), "has_audio": (bool,),
    "problem": (str, type(None)),
}  # fmt: skip


def _info(data: Any) -> MediaInfo:
    """An entry back as MediaInfo; ValueError for anything but what put wrote."""
    if not isinstance(data, dict) or set(data) != set(_FIELDS) or set(_TYPES) != set(_FIELDS):
        raise ValueError("not a probe entry")
    for name, value in data.items():
        if not isinstance(value, _TYPES[name]):
            raise ValueError(f"{name} is {type(value).__name__}")
    if data["kind"] not in (None, "image", "video", "audio"):
        raise ValueError("kind")
    return MediaInfo(**data)
