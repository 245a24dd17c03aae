"""The video store: every paid video kept once, by the fingerprint of its request.

In the spirit of DVC's cache. Under ``<output>/.r2v-store/`` (the planner names
the folder) each video lives as ``<fp[:2]>/<fp>.mp4`` beside ``<fp>.json`` (its
provenance: request, task, usage, who paid, checksum). A shot's file at its output path is *materialised*
from the store — a hard link where the file system allows, else a copy — with
the shot's own sidecar beside it. So reverting an edit, renaming a shot,
moving it to another episode or reordering takes finds the paid video here and
bills nothing; ``superseded/`` only holds links to earlier versions, never a
second copy of the bytes.

Objects are read-only: a hard-linked output edited in place would change the
stored video too. A video is never deleted here except by ``r2v gc --yes``.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..files import write_atomically
from ..media.local_file import file_sha256
from ..media.thumbnail import THUMBS_FOLDER

if TYPE_CHECKING:
    from ..plan.planner import PlannedShot

SUPERSEDED = "superseded"
READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


@dataclass(frozen=True)
class StoredVideo:
    """A paid video in the content-addressed store, with its provenance."""

    fingerprint: str
    path: Path
    meta: dict[str, Any]

    @property
    def sha256(self) -> str | None:
        value = (self.meta.get("video") or {}).get("sha256")
        return value if isinstance(value, str) else None


class VideoStore:
    """The store under one output folder."""

    def __init__(self, root: Path):
        self.root = root
        self._legacy: dict[str, tuple[Path, dict[str, Any]]] = {}  # fingerprint -> a video from before the store
        self._scanned: set[Path] = set()
        self._unscanned: list[Path] = []  # folders noted by scan_legacy, read when the store first lacks a video

    def object_path(self, fingerprint: str) -> Path:
        return self.root / fingerprint[:2] / f"{fingerprint}.mp4"

    def get(self, fingerprint: str) -> StoredVideo | None:
        """The stored video of a request, if it is complete (video and provenance)."""
        path = self.object_path(fingerprint)
        meta = read_json(sidecar_path(path))
        if meta.get("fingerprint") != fingerprint or not path.is_file():
            return None
        return StoredVideo(fingerprint, path, meta)

    def find(self, fingerprint: str) -> StoredVideo | None:
        """As ``get``, or a video made before the store existed that an episode
        folder scanned with ``scan_legacy`` still holds."""
        stored = self.get(fingerprint)
        if stored is not None:
            return stored
        legacy = self._legacy_of(fingerprint)
        if legacy is not None and legacy[0].is_file():
            return StoredVideo(fingerprint, legacy[0], legacy[1])
        return None

    def scan_legacy(self, folder: Path) -> None:
        """Note the videos an episode folder (and its superseded/) holds by their sidecars:
        videos a version of r2v without the store left there, which ``take_in`` adopts.
        The folder is read when the store first lacks a video asked for (a rerun whose
        videos are all stored reads none of them)."""
        for where in (folder, folder / SUPERSEDED):
            if where not in self._scanned:
                self._scanned.add(where)
                self._unscanned.append(where)

    def _legacy_of(self, fingerprint: str) -> tuple[Path, dict[str, Any]] | None:
        while self._unscanned:
            where = self._unscanned.pop(0)
            try:
                sidecars = sorted(where.glob("*.json"))
            except OSError:
                continue
            for sidecar in sidecars:
                meta = read_json(sidecar)
                found = meta.get("fingerprint")
                video = sidecar.with_suffix(".mp4")
                if isinstance(found, str) and video.is_file() and self.get(found) is None:
                    self._legacy.setdefault(found, (video, meta))
        return self._legacy.get(fingerprint)

    # --- putting videos in ---------------------------------------------------------

    def put(self, fingerprint: str, part: Path, meta: dict[str, Any], sha256: str | None = None) -> StoredVideo:
        """Move a verified download into the store (``meta`` is its provenance; ``sha256``
        its content hash where the download computed it). A video already stored for the
        request stays when the bytes are the same; a different one (a forced remake) is
        kept beside it as an earlier generation."""
        path = self.object_path(fingerprint)
        path.parent.mkdir(parents=True, exist_ok=True)
        sha = sha256 or file_sha256(part)
        meta = {**meta, "fingerprint": fingerprint, "video": {**(meta.get("video") or {}), "sha256": sha}}
        current = self.get(fingerprint)
        if current is not None and current.sha256 == sha:
            part.unlink(missing_ok=True)  # another shot or host stored the very same bytes
            return current
        if current is not None:
            self._keep_generation(current)
        os.chmod(part, READ_ONLY)
        os.replace(part, path)
        write_json(sidecar_path(path), meta)
        fsync_dir(path.parent)
        return StoredVideo(fingerprint, path, meta)

    def take_in(self, fingerprint: str) -> StoredVideo | None:
        """Adopt a pre-store video noted by ``scan_legacy`` (linked, not copied); None if there is none."""
        stored = self.get(fingerprint)
        if stored is not None:
            return stored
        legacy = self._legacy_of(fingerprint)
        if legacy is None or not legacy[0].is_file():
            return None
        video, meta = legacy
        path = self.object_path(fingerprint)
        path.parent.mkdir(parents=True, exist_ok=True)
        link_or_copy(video, path)
        meta = {**meta, "fingerprint": fingerprint, "video": {**(meta.get("video") or {}), "sha256": file_sha256(path)}}
        meta.pop("superseded", None)
        write_json(sidecar_path(path), meta)
        del self._legacy[fingerprint]
        return StoredVideo(fingerprint, path, meta)

    def alias(self, earlier: str, current: str, why: str) -> StoredVideo | None:
        """The video stored for a request an earlier r2v version fingerprinted differently,
        linked under this version's fingerprint (no second copy)."""
        existing = self.get(current)
        if existing is not None:
            return existing
        stored = self.take_in(earlier)
        if stored is None:
            return None
        path = self.object_path(current)
        path.parent.mkdir(parents=True, exist_ok=True)
        link_or_copy(stored.path, path)
        meta = {**stored.meta, "fingerprint": current, "format_changed": {"from": earlier, "what": why}}
        write_json(sidecar_path(path), meta)
        return StoredVideo(current, path, meta)

    def _keep_generation(self, current: StoredVideo) -> None:
        stem = f"{current.fingerprint}.{(current.sha256 or 'unknown')[:12]}"
        os.replace(current.path, current.path.with_name(stem + ".mp4"))
        os.replace(sidecar_path(current.path), current.path.with_name(stem + ".json"))

    # --- materialising ---------------------------------------------------------------

    def materialise(self, fingerprint: str, dest: Path, sidecar: dict[str, Any]) -> StoredVideo:
        """Place the stored video of ``fingerprint`` at ``dest`` with ``sidecar`` beside it.
        Whatever video was there is kept: in the store (and a superseded/ link to it)
        when r2v made it, moved into superseded/ when it is unknown."""
        stored = self.take_in(fingerprint)
        if stored is None:
            raise FileNotFoundError(f"no stored video for {fingerprint[:12]}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not _same_file(dest, stored.path):
            if dest.exists() or dest.is_symlink():
                self._set_aside(dest, fingerprint)
            tmp = dest.with_name(f".{dest.name}.link")
            tmp.unlink(missing_ok=True)
            link_or_copy(stored.path, tmp)
            os.replace(tmp, dest)
        write_json(sidecar_path(dest), {**stored.meta, **sidecar, "fingerprint": fingerprint, "store": os.path.relpath(stored.path, dest.parent)})
        for old in _views(dest, fingerprint):  # it is the current version again
            old.unlink(missing_ok=True)
            sidecar_path(old).unlink(missing_ok=True)
        # No fsync of the folder: the store holds the video durably (put), and a link a
        # crash loses is placed again from the store by the next run, billing nothing.
        return stored

    def superseded_view(self, fingerprint: str, dest: Path) -> Path:
        """A link in ``dest``'s superseded/ folder to the stored video of an earlier
        version of that shot (for people browsing the output folder)."""
        stored = self.take_in(fingerprint)
        if stored is None:
            raise FileNotFoundError(f"no stored video for {fingerprint[:12]}")
        view = dest.parent / SUPERSEDED / f"{dest.stem}-{fingerprint[:12]}{dest.suffix}"
        view.parent.mkdir(parents=True, exist_ok=True)
        if not _same_file(view, stored.path):
            tmp = view.with_name(f".{view.name}.link")
            tmp.unlink(missing_ok=True)
            link_or_copy(stored.path, tmp)
            os.replace(tmp, view)
        write_json(sidecar_path(view), {**stored.meta, "superseded": True, "store": os.path.relpath(stored.path, view.parent)})
        return view

    def _set_aside(self, dest: Path, incoming: str) -> None:
        """Keep the video at ``dest`` before another takes its place."""
        recorded = recorded_fingerprint(dest)
        if recorded is not None and recorded != incoming:
            self.scan_legacy(dest.parent)
            if self.get(recorded) is None and dest.is_file():
                self._legacy[recorded] = (dest, read_json(sidecar_path(dest)))
                self.take_in(recorded)
            if self.get(recorded) is not None:
                self.superseded_view(recorded, dest)
                return
        stored = self.get(incoming)
        if recorded == incoming and stored is not None and dest.is_file() and file_sha256(dest) == stored.sha256:
            return  # the same video (a copy from before the store): the stored one replaces it
        if dest.is_file():  # not r2v's, or its provenance is lost: never delete it
            aside = dest.parent / SUPERSEDED / f"{dest.stem}-{file_sha256(dest)[:12]}{dest.suffix}"
            aside.parent.mkdir(parents=True, exist_ok=True)
            os.replace(dest, aside)
            if sidecar_path(dest).exists():
                os.replace(sidecar_path(dest), sidecar_path(aside))

    # --- looking and freeing ---------------------------------------------------------------

    def is_materialised(self, fingerprint: str, dest: Path) -> bool:
        """``dest`` holds this request's video: its sidecar says so, and it is the
        stored file (or, from before the store, a file of the stored size)."""
        if not dest.is_file() or recorded_fingerprint(dest) != fingerprint:
            return False
        if _same_file(dest, self.object_path(fingerprint)):
            return True  # the stored file itself (a hard link): its provenance need not be read
        stored = self.get(fingerprint)
        return stored is None or _same_file(dest, stored.path) or dest.stat().st_size == stored.path.stat().st_size

    def objects(self) -> Iterator[StoredVideo]:
        if not self.root.is_dir():
            return
        for sidecar in sorted(self.root.glob("??/*.json")):
            stored = self.get(sidecar.stem)
            if stored is not None:
                yield stored

    def generations(self, fingerprint: str) -> list[Path]:
        """Earlier videos of a request (forced remakes kept by ``put``)."""
        return sorted(self.object_path(fingerprint).parent.glob(f"{fingerprint}.*.mp4"))

    def sweep(self, now: float) -> list[Path]:
        """Temporary files killed runs left in the store (see ``sweep``)."""
        if not self.root.is_dir():
            return []
        has = lambda fp: self.get(fp) is not None  # noqa: E731
        return [gone for shard in sorted(self.root.glob("??")) for gone in sweep(shard, has, now)]

    def remove(self, fingerprint: str) -> None:
        path = self.object_path(fingerprint)
        for video in [path, *self.generations(fingerprint)]:
            sha = (read_json(sidecar_path(video)).get("video") or {}).get("sha256")
            video.unlink(missing_ok=True)
            sidecar_path(video).unlink(missing_ok=True)
            if isinstance(sha, str) and len(sha) == 64:  # its report pictures go with it
                for picture in (self.root / THUMBS_FOLDER / sha[:2]).glob(f"{sha}-*.jpg"):
                    picture.unlink(missing_ok=True)


# --- files ------------------------------------------------------------------------------


def sidecar_path(video: Path) -> Path:
    return video.with_suffix(".json")


def recorded_fingerprint(video: Path) -> str | None:
    """The request a video on disk was made for, as its sidecar records it."""
    value = read_json(sidecar_path(video)).get("fingerprint")
    return value if isinstance(value, str) else None


def link_or_copy(source: Path, dest: Path) -> None:
    """A hard link where the file system allows one; else a copy."""
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _views(dest: Path, fingerprint: str) -> list[Path]:
    folder = dest.parent / SUPERSEDED
    return sorted(folder.glob(f"{dest.stem}-{fingerprint[:12]}{dest.suffix}")) if folder.is_dir() else []


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_text(path, readable_json(data))


def readable_json(data: dict[str, Any]) -> str:
    """A sidecar's text: one top-level field a line, for people browsing the folder. Each
    value goes through json's C encoder; ``indent`` would take its pure-Python one, which
    costs a run more than the rest of writing the file."""
    if not data:
        return "{}\n"
    fields = ",\n".join(f"  {json.dumps(str(k), ensure_ascii=False)}: {json.dumps(v, ensure_ascii=False)}" for k, v in data.items())
    return "{\n" + fields + "\n}\n"


def write_text(path: Path, text: str) -> None:
    """Atomically, under a temporary name of this writer's own (hosts share the folder)."""
    write_atomically(path, text)


STALE_TEMPORARY = 600.0  # seconds: a temporary file this old belongs to no live writer
RESULT_LIFE = 25 * 3600.0  # a partial download this old can never be finished: its URL is dead


_TEMPORARIES = (".tmp", ".link", ".part")  # what killed runs leave: sidecar and link temporaries, partial downloads


def sweep(folder: Path, stored: Callable[[str], bool], now: float) -> list[Path]:
    """Remove the temporary files a killed run left in ``folder``: sidecar and link
    temporaries, and partial downloads whose video is stored or whose URL has died
    (a fresher one is resumed by the download of its task). Returns what went."""
    gone: list[Path] = []
    found: dict[str, list[Path]] = {suffix: [] for suffix in _TEMPORARIES}
    try:  # one listing of the folder, not one a kind: a rerun sweeps every shard of the store
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith(".") and name.endswith(_TEMPORARIES):
                    suffix = "." + name.rsplit(".", 1)[1]
                    if len(name) > len(suffix):  # as the pattern ".*<suffix>" would match
                        found[suffix].append(Path(entry.path))
    except OSError:
        return gone
    candidates = [path for suffix in _TEMPORARIES for path in found[suffix]]
    for path in candidates:
        try:
            age = now - path.stat().st_mtime
        except OSError:
            continue
        if path.suffix == ".part":
            fingerprint = path.name[1:].split(".", 1)[0]
            dead = age > RESULT_LIFE or stored(fingerprint)
        else:
            dead = age > STALE_TEMPORARY
        if dead:
            path.unlink(missing_ok=True)
            gone.append(path)
    return gone


# Sidecars read before, by path: (what stat said then, the data). A rerun reads
# thousands, each again when its report is drawn.
_READ: dict[str, tuple[tuple[int, ...], dict[str, Any]]] = {}
_READ_LIMIT = 100_000  # entries; a long-lived process (the review server) starts afresh past it
SETTLED = 2.0  # seconds unchanged before a file's data is kept: any later write gives it a newer time
_KEEPING: ContextVar[bool] = ContextVar("r2v_sidecars_kept", default=False)


class Stores:
    """The video store of each output folder a plan writes into."""

    def __init__(self) -> None:
        self._stores: dict[Path, VideoStore] = {}
        self._named: dict[tuple[Path, Path], VideoStore] = {}  # (store folder as planned, episode folder): each noted once

    def of(self, shot: PlannedShot) -> VideoStore:
        named = (shot.store_dir, shot.output.parent)
        store = self._named.get(named)
        if store is None:
            root = shot.store_dir.resolve()
            store = self._stores.get(root)
            if store is None:
                store = self._stores[root] = VideoStore(root)
            store.scan_legacy(shot.output.parent)
            self._named[named] = store
        return store


@contextmanager
def sidecars_kept() -> Iterator[None]:
    """Within: ``read_json`` keeps what it reads and hands it out again while the file's
    stat is unchanged (deciding a run, drawing its report). Outside, every read opens
    the file: what a run writes by (putting a video in the store, setting one aside)
    never rests on kept data, whatever a network file system's attribute cache says."""
    token = _KEEPING.set(True)
    try:
        yield
    finally:
        _KEEPING.reset(token)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object file's data; {} when it is missing, unreadable or not an object.

    Inside ``sidecars_kept``, the data of a file left unchanged for a while is kept and
    handed out again while the file's inode, size and change times stay the same: an
    edit by hand or a file replaced is read afresh. Only settled files are kept, so a
    write after the reading always shows in the times, however coarse the file
    system's clock. Callers must not change the dict they get."""
    name = os.fspath(path)
    keeping = _KEEPING.get()
    try:
        if keeping:
            st = os.stat(name)
            seen = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            kept = _READ.get(name)
            if kept is not None and kept[0] == seen:
                return kept[1]
        with open(name, "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    if keeping and time.time() - max(st.st_mtime, st.st_ctime) > SETTLED:
        if len(_READ) >= _READ_LIMIT:
            _READ.clear()
        _READ[name] = (seen, data)
    return data


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
