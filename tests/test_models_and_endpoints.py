"""Snapshot model ids, and which models an endpoint serves judged from its host."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Callable

import pytest

from r2v_pipeline.catalog import lookup
from r2v_pipeline.catalog.dashscope import region_of

from .test_planner import episode, plan, problems, series  # noqa: F401  (series is a fixture)

Write = Callable[[str, str], Path]


def test_a_snapshot_id_is_sent_as_named_and_judged_by_its_models_table(write: Write, series: Path) -> None:
    ep = episode(write, "  - {id: a, model: wan2.7-r2v-2026-06-12, duration: 12, prompt: '{{ mia }} waves'}\n")
    (shot,) = plan(ep).shots
    assert shot.body["model"] == "wan2.7-r2v-2026-06-12"
    assert shot.spec.table == "wan2.7-r2v" and shot.spec.settings == lookup("dashscope", "wan2.7-r2v").settings  # type: ignore[union-attr]
    assert shot.rate == Decimal("0.10")  # no price of its own: its model's
    too_long = episode(write, "  - {id: a, model: wan2.6-r2v-2025-12-01, duration: 12, prompt: '{{ mia }}'}\n", name="ep2.yaml")
    assert any("duration" in p and "2–10" in p for p in problems(too_long))  # wan2.6's limits


@pytest.mark.parametrize(
    ("model", "known"),
    [("wan2.7-r2v-2026-06-12", True), ("wan2.6-r2v-flash-2025-01-31", True), ("wan2.8-r2v-2026-06-12", False), ("wan2.7-r2v-latest", False)],
)
def test_only_dated_snapshots_of_known_models_resolve(model: str, known: bool) -> None:
    assert (lookup("dashscope", model) is not None) == known


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://dashscope.aliyuncs.com/api/v1", "cn"),
        ("https://dashscope-intl.aliyuncs.com/api/v1", "intl"),
        ("https://dashscope-us.aliyuncs.com/api/v1", "us"),
        ("https://ws-1a2b3c.eu-central-1.maas.aliyuncs.com/api/v1", "eu-central-1"),
        ("https://ws-9z.ap-southeast-1.maas.aliyuncs.com/api/v1", "intl"),
        ("https://proxy.studio.example/dashscope/api/v1", None),
        ("http://127.0.0.1:8765/api/v1", None),
    ],
)
def test_the_region_comes_from_the_host(url: str, region: str | None) -> None:
    assert region_of(url) == region


def test_a_workspace_endpoint_is_held_to_the_models_its_region_serves(write: Write, series: Path) -> None:
    frankfurt = "provider: {base_url: 'https://ws-1a2b3c.eu-central-1.maas.aliyuncs.com/api/v1'}\n"
    ep = episode(write, "  - {id: a, prompt: '{{ mia }}'}\n", extra=frankfurt)
    assert any("region eu-central-1 serves only wan2.6-r2v, not wan2.7-r2v" in p for p in problems(ep))
    ok = episode(write, "  - {id: a, model: wan2.6-r2v, prompt: '{{ mia }}'}\n", name="ep2.yaml", extra=frankfurt)
    assert not [p for p in problems(ok) if "error" in p or "serves only" in p]


def test_an_unknown_host_is_allowed_with_a_warning(write: Write, series: Path) -> None:
    proxy = "provider: {base_url: 'https://proxy.studio.example/dashscope/api/v1'}\n"
    ep = episode(write, "  - {id: a, prompt: '{{ mia }}'}\n", extra=proxy)
    assert plan(ep).shots[0].target.base_url == "https://proxy.studio.example/dashscope/api/v1"
    assert any("warning: https://proxy.studio.example/dashscope/api/v1: a host r2v does not know" in p for p in problems(ep))
