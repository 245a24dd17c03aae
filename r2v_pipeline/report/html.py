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
from pathlib import Path
from typing import Any, Mapping, Sequence

import jinja2

from ..media.thumbnail import data_uri, thumbnail
from ..plan.planner import PlannedShot
from .build import money_text

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("r2v_pipeline.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


def render_html(report: dict[str, Any], shots: Sequence[PlannedShot], report_dir: Path) -> str:
    """The page for ``report``; ``shots`` (the plan) lead to the local media to picture."""
    planned = {s.key: s for s in shots}
    thumbs: dict[Path, str | None] = {}
    currency = report["totals"]["currency"]
    episodes: dict[str, list[dict[str, Any]]] = {}
    for s in report["shots"]:
        card = {**s, "problem": s["attention"]}
        card["prompt_parts"] = highlight(s["prompt"], [r["label"] for r in s["references"] if r["label"]])
        card["poster"] = _picture(report_dir / s["output"], thumbs, at=0.5) if s["output"] else None
        card["cast"] = _cast(s, planned.get(s["key"]), thumbs)
        episodes.setdefault(f"{s['series']}/{s['episode']}", []).append(card)
    page = _ENV.get_template("report.html.j2").render(
        run=report["run"],
        totals=report["totals"],
        episodes=[{"name": name, "shots": cards} for name, cards in episodes.items()],
        recovered=report.get("recovered", []),
        accounts=report.get("accounts", []),
        problems=sum(1 for s in report["shots"] if s["attention"]),
        money=lambda amount: money_text(amount, currency),
    )
    return _pin_scripts(page)


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


def _cast(shot: Mapping[str, Any], planned: PlannedShot | None, thumbs: dict[Path, str | None]) -> list[dict[str, Any]]:
    """The references as little pictures; a remote one is named, not fetched."""
    local = {r.url: planned.files[r.url].path for r in planned.references if r.url in planned.files} if planned else {}
    urls = {(r.name, r.role): r.url for r in planned.references} if planned else {}
    cast = []
    for ref in shot["references"]:
        if ref["role"] == "voice":
            continue
        path = local.get(urls.get((ref["name"], ref["role"]), ""))
        cast.append({**ref, "thumb": _picture(path, thumbs, at=0.2) if path else None})
    return cast


def _picture(path: Path, thumbs: dict[Path, str | None], at: float) -> str | None:
    if path not in thumbs:
        thumbs[path] = data_uri(thumbnail(path, at=at)) if path.is_file() else None
    return thumbs[path]


def _pin_scripts(page: str) -> str:
    """Allow exactly the page's own scripts, by hash, in its content security policy."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'" for body in _SCRIPT.findall(page)
    )
    return page.replace("script-src 'unsafe-inline'", f"script-src {hashes}", 1)
