"""report.html: one self-contained page per run, for the producer who watches the shots.

Everything on it comes from the report's data; pictures are embedded, videos
are linked relative to the page, and no request leaves the page. Whatever came
from a manifest is escaped (Jinja2 autoescape), and the page's policy lets only
its own script run.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import jinja2

from .. import __version__
from ..media.probe_cache import default_folder
from ..media.thumbnail import THUMBS_FOLDER, Thumbnails, data_uri
from ..plan.planner import PlannedShot
from ..run.store import read_json, sidecar_path, sidecars_kept
from .build import money_text

def page_environment(package: str) -> jinja2.Environment:
    """The Jinja2 setup of r2v's pages (the report, the review page): everything from a
    manifest escaped, an unknown name an error, the templates in ``package``/templates."""
    options: dict[str, Any] = {"autoescape": True, "undefined": jinja2.StrictUndefined, "trim_blocks": True, "lstrip_blocks": True}
    return jinja2.Environment(loader=jinja2.PackageLoader(package, "templates"), bytecode_cache=_compiled_templates(options), **options)


class _QuietBytecodeCache(jinja2.FileSystemBytecodeCache):
    """Compiled templates kept between runs (Jinja checks each against its template's
    source, so an edited template is compiled afresh). A cache only: a folder that
    cannot be read or written, or a damaged entry, means compiling as without one."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # noqa: BLE001 (whatever a damaged file raises: compile instead)
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass


def _compiled_templates(options: Mapping[str, Any]) -> jinja2.BytecodeCache | None:
    """Beside the probe cache (R2V_CACHE_DIR; "off" turns both off): compiling the report's
    template costs each run tens of milliseconds, a rerun with nothing to do a good part of its time.
    Jinja keys an entry by the template's name and source only; the code it compiles to also
    depends on the environment's options and on Jinja and r2v themselves: their own folder."""
    folder = default_folder()
    if folder is None:
        return None
    setup = repr((__version__, jinja2.__version__, sorted((k, getattr(v, "__name__", v)) for k, v in options.items())))
    pages = folder.parent.parent / "pages" / hashlib.sha256(setup.encode()).hexdigest()[:20]
    try:
        pages.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return _QuietBytecodeCache(str(pages))


_ENV = page_environment("r2v_pipeline.report")
_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)
_PLAIN_URI = re.compile(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]*\Z")  # safe in a stylesheet's url() as it is


def render_html(report: dict[str, Any], shots: Sequence[PlannedShot], report_dir: Path, base: str = "") -> str:
    """The page for ``report``; ``shots`` (the plan) lead to the local media to picture.
    ``base`` starts every link to a file (the report's paths are relative to ``report_dir``):
    a page kept in another folder links the same files."""
    with sidecars_kept():  # the videos' sidecars, read when the run decided
        return _render(report, shots, report_dir, base)


def _render(report: dict[str, Any], shots: Sequence[PlannedShot], report_dir: Path, base: str) -> str:
    planned = {s.key: s for s in shots}
    thumbs = _Pictures()
    currency = report["totals"]["currency"]
    episodes: dict[str, list[dict[str, Any]]] = {}
    for s in report["shots"]:
        card = {**s, "problem": s["attention"]}
        card["prompt_parts"] = highlight(s["prompt"], [r["label"] for r in s["references"] if r["label"]])
        shot = planned.get(s["key"])
        video = report_dir / s["output"] if s["output"] else None
        card["poster"] = _attribute(thumbs.of(video, _recorded_sha256(video), shot, at=0.5)) if video else None
        card["cast"] = _cast(s, planned.get(s["key"]), thumbs)
        episodes.setdefault(f"{s['series']}/{s['episode']}", []).append(card)
    page = _ENV.get_template("report.html.j2").render(
        run=report["run"],
        totals=report["totals"],
        episodes=[{"name": name, "shots": cards} for name, cards in episodes.items()],
        recovered=report.get("recovered", []),
        cuts=report.get("cuts", []),
        to_date=report.get("episodes_to_date", {}),
        accounts=report.get("accounts", []),
        problems=sum(1 for s in report["shots"] if s["attention"]),
        money=lambda amount: money_text(amount, currency),
        base=base,
        pictures=[(name, uri) for uri, name in thumbs.named_once.items()],
        cast=_CastBlocks(),
    )
    return pin_scripts(page)


class _CastBlocks:
    """A card's references as HTML, each distinct list rendered once per page: a series'
    few cast members stand on most of its cards, and escaping them again on every card
    was a good part of drawing a page of a thousand shots."""

    def __init__(self) -> None:
        self._macro = _ENV.get_template("cast.html.j2").module.cast  # type: ignore[attr-defined]
        self._made: dict[tuple[Any, ...], Any] = {}

    def __call__(self, refs: Sequence[Mapping[str, Any]]) -> Any:
        key = tuple(tuple(ref.items()) for ref in refs)  # every field the block may show
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = self._macro(refs)
        return made


def highlight(prompt: str, labels: Sequence[str]) -> list[tuple[str, bool]]:
    """The prompt cut into (text, is_label) pieces; longest labels first ("Image 12" before "Image 1")."""
    if not labels:
        return [(prompt, False)]
    pattern = re.compile("|".join(re.escape(label) + r"(?![0-9])" for label in sorted(set(labels), key=len, reverse=True)), re.I)
    parts: list[tuple[str, bool]] = []
    end = 0
    for match in pattern.finditer(prompt):
        if match.start() > end:
            parts.append((prompt[end : match.start()], False))
        parts.append((match.group(0), True))
        end = match.end()
    if end < len(prompt):
        parts.append((prompt[end:], False))
    return parts


def _cast(shot: Mapping[str, Any], planned: PlannedShot | None, thumbs: _Pictures) -> list[dict[str, Any]]:
    """The references as little pictures; a remote one is named, not fetched."""
    local = {r.url: planned.files[r.url] for r in planned.references if r.url in planned.files} if planned else {}
    urls = {(r.name, r.role): r.url for r in planned.references} if planned else {}
    cast = []
    for ref in shot["references"]:
        if ref["role"] == "voice":
            continue
        file = local.get(urls.get((ref["name"], ref["role"]), ""))
        picture = thumbs.of(file.path, file.info.sha256, planned, at=0.2) if file else None
        cast.append({**ref, "picture": thumbs.named(picture) if picture else None})
    return cast


class _Pictures:
    """The page's pictures as data URIs, each drawn once per page and kept in the video
    store's thumbnail cache across runs."""

    def __init__(self) -> None:
        self._uris: dict[Path, str | None] = {}
        self._caches: dict[Path, Thumbnails] = {}
        self.named_once: dict[str, str] = {}  # data URI -> its CSS class

    def named(self, uri: str) -> str | None:
        """A CSS class showing the picture: a cast member's picture is on most cards, and
        is put on the page once, not once a card. None for what CSS cannot hold unquoted."""
        name = self.named_once.get(uri)
        if name is None and _PLAIN_URI.match(uri):
            name = self.named_once[uri] = f"picture-{len(self.named_once)}"
        return name

    def of(self, path: Path, sha256: str | None, shot: PlannedShot | None, at: float) -> str | None:
        if path not in self._uris:
            folder = shot.store_dir / THUMBS_FOLDER if shot is not None else None
            cache = self._caches.setdefault(folder, Thumbnails(folder)) if folder else Thumbnails(None)
            self._uris[path] = data_uri(cache.get(path, sha256, at=at)) if path.is_file() else None
        return self._uris[path]


@dataclass(frozen=True)
class _Plain:
    """Text that needs no escaping in an HTML attribute; says so through the ``__html__``
    protocol that autoescaping honours, sparing the escaper a scan of kilobytes a card."""

    text: str

    def __html__(self) -> str:
        return self.text


_ESCAPED = ("&", "<", ">", '"', "'")  # what escaping an attribute's value would change


def _attribute(uri: str | None) -> _Plain | str | None:
    """A picture's data URI for an attribute: as it is when escaping would not change it
    (base64 holds no ampersand, angle bracket or quote), else left to be escaped."""
    return _Plain(uri) if uri is not None and not any(c in uri for c in _ESCAPED) else uri


def _recorded_sha256(video: Path) -> str | None:
    """The content hash the video's sidecar records, if the file is still of the recorded
    size (the store's objects are read-only; a file replaced by hand is hashed instead)."""
    try:
        recorded = read_json(sidecar_path(video)).get("video") or {}
        value, size = recorded.get("sha256"), recorded.get("bytes")
        same = isinstance(size, int) and video.stat().st_size == size
    except (OSError, AttributeError):
        return None
    return value if same and isinstance(value, str) and len(value) == 64 else None


def pin_scripts(page: str) -> str:
    """Allow exactly the page's own scripts, by hash, in its content security policy."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'" for body in _SCRIPT.findall(page)
    )
    return page.replace("script-src 'unsafe-inline'", f"script-src {hashes}", 1)
