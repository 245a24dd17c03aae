"""The review page: one section per shot, its takes side by side."""

from __future__ import annotations

from typing import Any

import jinja2

from ..report.html import pin_scripts

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("r2v_pipeline.review", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_page(episodes: list[dict[str, Any]], token: str) -> str:
    """The page; ``token`` is this session's write token (see server.py)."""
    page = _ENV.get_template("review.html.j2").render(episodes=episodes, token=token)
    return pin_scripts(page)
