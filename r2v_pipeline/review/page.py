"""The review page: one section per shot, its takes side by side."""

from __future__ import annotations

from typing import Any

from ..report.html import page_environment, pin_scripts

_ENV = page_environment("r2v_pipeline.review")


def render_page(episodes: list[dict[str, Any]], token: str) -> str:
    """The page; ``token`` is this session's write token (see server.py)."""
    page = _ENV.get_template("review.html.j2").render(episodes=episodes, token=token)
    return pin_scripts(page)
