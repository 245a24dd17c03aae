"""Local media of a manifest: probed once, and named in request bodies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import quote

from .. import catalog
from ..diagnostics import Diagnostics
from ..manifest import reads
from ..manifest.load import display_name
from ..manifest.model import Provider, Source
from ..catalog.media_info import MediaInfo, MediaKind
from ..catalog.request import LocalFile
from ..media.local_file import NotAFile, TooLarge, hash_open, open_regular
from ..media.probe_cache import ProbeCache, default_folder

_A = {"image": "an image", "video": "a video", "audio": "a voice (WAV or MP3)"}


@dataclass(frozen=True)
class Located:
    """Where a request finds one media source."""

    url: str  # as the plan's body carries it
    file: LocalFile | None  # the local file behind it, if any
    transport: str | None  # inline | upload | public | None (a URL the provider fetches itself)


def largest_media_bytes() -> int:
    """The most any provider takes of one media file; a local file is never read past it."""
    return max(
        limits.max_bytes
        for models in catalog.PROVIDERS.values()
        for spec in models.values()
        for limits in (spec.images, spec.videos, spec.voices)
    )


class MediaFiles:
    """Probes each local file once per process, however many shots use it."""

    def __init__(self, diagnostics: Diagnostics, cache: ProbeCache | None = None):
        self.diagnostics = diagnostics
        self.cache = cache if cache is not None else ProbeCache(default_folder())
        self.max_bytes = largest_media_bytes()
        self._probed: dict[Path, LocalFile | None] = {}
        self._located: dict[tuple[Any, ...], Located] = {}

    def local(self, source: Source, expect: MediaKind) -> LocalFile | None:
        """The probed file, if it is readable media of the expected kind."""
        named = source.path
        if named not in self._probed:
            path = named.resolve()
            if path not in self._probed:
                self._probed[path] = self._probe(source, path)
            self._probed[named] = self._probed[path]
            probed = self._probed[path]
            if probed is not None:  # the plan cache checks these bytes again (a file that failed fails the plan)
                reads.note(named, probed.info.sha256, path, probed.info.bytes)
        file = self._probed[named]
        if file is not None and file.info.kind != expect:
            self.diagnostics.error(source.pos, f"{source.text}: it is {file.info.describe()}, not {_A[expect]}")
            return None
        return file

    def _probe(self, source: Source, path: Path) -> LocalFile | None:
        try:
            info = self._probe_file(path)
        except FileNotFoundError:
            self.diagnostics.error(source.pos, f"{source.text}: no such file (looked at {display_name(path)})")
            return None
        except NotAFile as err:
            self._refuse(source, _not_a_file(err, source.path))
            return None
        except TooLarge as err:
            self._refuse(source, f"is {_mb(err.size)}; no provider takes a media file over {_mb(err.limit)}, so it is not read")
            return None
        except OSError as err:
            self.diagnostics.error(source.pos, f"{source.text}: cannot read: {err.strerror or err}")
            return None
        if info.kind is None:
            self._refuse(source, f"it is {info.problem}" if info.problem else "not an image, video or audio file")
            return None
        return LocalFile(path, display_name(path), info)

    def _probe_file(self, path: Path) -> MediaInfo:
        """What the file is: read and hashed each time, decoded (with PyAV, loaded only
        then) unless the cache has judged the same bytes."""
        with open_regular(path) as f:
            sha256, size = hash_open(f, path, self.max_bytes)
            info = self.cache.get(sha256, size)
            if info is None:
                from ..media.probe import probe_open

                f.seek(0)
                info = probe_open(f, size, sha256)
                self.cache.put(info)
        return info

    def _refuse(self, source: Source, why: str) -> None:
        """A refusal that names the field too: the same file may stand in several."""
        where = f" ({source.field})" if source.field else ""
        self.diagnostics.error(source.pos, f"{source.text}: {why}{where}")

    def locate(
        self, source: Source, expect: MediaKind, provider: Provider, local_transport: Mapping[str, str]
    ) -> Located | None:
        """The URL a request uses for ``source``; None when the file is unusable (said each time)."""
        # Shots name the same few files over and over: each naming is located once.
        key = (source.base, source.text, expect, provider.public_urls, tuple(local_transport.items()))
        where = self._located.get(key)
        if where is None:
            where = self._locate(source, expect, provider, local_transport)
            if where is not None:
                self._located[key] = where
        return where

    def _locate(
        self, source: Source, expect: MediaKind, provider: Provider, local_transport: Mapping[str, str]
    ) -> Located | None:
        if source.is_url:
            return Located(source.text, None, None)
        file = self.local(source, expect)
        if file is None:
            return None
        for mapping in provider.public_urls:
            if file.path.is_relative_to(mapping.folder):
                tail = quote(file.path.relative_to(mapping.folder).as_posix())
                return Located(f"{mapping.base_url.rstrip('/')}/{tail}", file, "public")
        kind = file.info.kind
        return Located(file.placeholder, file, local_transport.get(kind) if kind else None)


def _not_a_file(err: NotAFile, named: Path) -> str:
    if not named.is_symlink():
        return f"is {err.what}, not a media file"
    return f"links to {display_name(named.resolve())}, which is {err.what}, not a media file"


def _mb(size: int) -> str:
    return f"{size / 1e6:g} MB" if size % 100_000 == 0 else f"{size / 1e6:.1f} MB"
