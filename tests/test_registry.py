"""The provider registry: the seam a new provider plugs into, and the settings lists
derived from the catalog's tables."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from r2v_pipeline import catalog
from r2v_pipeline.catalog import registry
from r2v_pipeline.diagnostics import Diagnostics
from r2v_pipeline.manifest.model import MANIFEST_ONLY, SET_ELSEWHERE, SETTINGS
from r2v_pipeline.manifest.schema import manifest_schema
from r2v_pipeline.plan.planner import PlanOptions, make_plan
from r2v_pipeline.run.polling import PollPolicy
from r2v_pipeline.run.work import RunOptions
from r2v_pipeline.pipeline import RunRequest, execute
from r2v_pipeline.sim import Simulator
from tests import acme_provider

StartSim = Callable[..., Simulator]


def test_the_schema_settings_are_the_catalog_settings() -> None:
    """Every setting a model's table takes is one a manifest can give, and every
    setting the schema offers is a catalog setting or the manifest's own."""
    defs = manifest_schema()["$defs"]
    schema_settings = set(defs["settings"]["properties"])
    elsewhere = {"prompt": defs["shot"]["properties"], "webhook_url": defs["provider"]["properties"]}
    assert set(elsewhere) == set(SET_ELSEWHERE)
    for name in catalog.setting_names():
        assert name in schema_settings or name in elsewhere[name], name
    assert schema_settings == set(catalog.setting_names()) - set(SET_ELSEWHERE) | set(MANIFEST_ONLY)
    assert set(SETTINGS) == schema_settings


@pytest.fixture
def acme() -> Iterator[registry.Entry]:
    registry.register(acme_provider.ENTRY)  # the one line a provider adds
    try:
        yield acme_provider.ENTRY
    finally:
        registry.unregister(acme_provider.NAME)


def test_a_provider_is_a_registry_line_and_its_modules(
    acme: registry.Entry, tmp_path: Path, start_sim: StartSim, write: Callable[[str, str], Path], media: Callable[[str, str], Path]
) -> None:
    """A third provider, unknown to r2v's own code, is planned, sent, simulated and
    downloaded through the registry alone."""
    media("m/a.png", "png")
    media("m/clip.mp4", "video_3s")  # a local video goes by the upload flow
    episode = write("ep.yaml", "cast: {a: {image: m/a.png}, clip: {video: m/clip.mp4}}\nshots:\n  - {id: one, duration: 2, prompt: '{{ a }} walks into {{ clip }}'}\n")
    sim = start_sim(time_scale=0.005, rate_clock="wall")
    assert sim.urls[acme.name] == sim.base_url + "/acme/api/v1"

    diagnostics = Diagnostics()
    plan = make_plan([episode], PlanOptions(provider="acme", output_dir=tmp_path / "out", state_dir=tmp_path / "state"), diagnostics)
    assert not diagnostics.errors, diagnostics.errors
    (shot,) = plan.shots
    assert (shot.spec.provider, shot.spec.model, shot.target.base_url) == ("acme", "acme-r2v", "https://api.acme.test/api/v1")
    assert sorted(shot.request.transports.values()) == ["inline", "upload"]
    assert shot.prompt == "Image 1 walks into Video 1"

    log = io.StringIO()
    options = RunOptions(poll=PollPolicy(first=30.0, interval=15.0), seed=7)
    code = execute(plan, RunRequest(options=options, attach=sim.base_url, log_format="plain", report_dir=tmp_path / "out"), stream=log)
    assert code == 0, log.getvalue()
    report: dict[str, Any] = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [s["status"] for s in report["shots"]] == ["downloaded"]
    (task,) = sim.ledger.tasks()
    assert (task.provider, task.model, task.status) == ("acme", "acme-r2v", "SUCCEEDED")
    paths = {e.path.split("?")[0] for e in sim.ledger.requests(family="dashscope")}
    assert "/acme/api/v1/services/aigc/video-generation/video-synthesis" in paths
    assert "/acme/api/v1/uploads" in paths  # the upload policy came from acme's own base path
    assert not any(p.startswith("/api/v1/") for p in paths)  # DashScope's routes were not used


def test_every_registered_entry_resolves_its_client_and_simulator() -> None:
    """The registry names clients and simulator families as strings (the catalog never
    imports upwards): each must resolve, or a typo would surface only in a run."""
    from r2v_pipeline.sim.family import Family

    for entry in registry.entries():
        assert callable(entry.client_factory()), entry.name
        assert isinstance(entry.simulator_family(), Family), entry.name
