"""A third provider that exists only for tests: "acme", which speaks DashScope's
protocol below its own base path. Its catalog table, client and simulator family
are the three modules a provider needs (here one file); ``ENTRY`` is its registry
line, registered by the tests that use it."""

from __future__ import annotations

from dataclasses import replace

from r2v_pipeline.catalog import dashscope as dashscope_catalog
from r2v_pipeline.catalog.registry import Entry
from r2v_pipeline.catalog.spec import ModelSpec, ProviderTable
from r2v_pipeline.providers.base import Connection
from r2v_pipeline.providers.dashscope import DashScope
from r2v_pipeline.sim import dashscope as dashscope_sim
from r2v_pipeline.sim.config import Limits, Rate, SimConfig
from r2v_pipeline.sim.family import Family

NAME = "acme"

# --- the catalog table ---------------------------------------------------------

MODELS: dict[str, ModelSpec] = {"acme-r2v": replace(dashscope_catalog.WAN27, provider=NAME, model="acme-r2v")}
TABLE = ProviderTable(
    name=NAME,
    models=MODELS,
    default_model="acme-r2v",
    base_url="https://api.acme.test/api/v1",  # never reached: the tests run against the simulator
    key_variable="ACME_API_KEY",
    quota={"in_progress": 2, "submits_per_second": 5.0, "queries_per_second": 20.0},
    resubmit_codes=dashscope_catalog.RESUBMIT_CODES,
    reupload_codes=dashscope_catalog.REUPLOAD_CODES,
    submit_path=dashscope_catalog.SUBMIT_PATH,
)


# --- the client ------------------------------------------------------------------


class Acme(DashScope):
    name = NAME


def connect(c: Connection) -> Acme:
    return Acme(c.base_url, c.key, uploads=c.uploads, time=c.time, client=c.client)


# --- the simulator family --------------------------------------------------------


def _limits(config: SimConfig) -> Limits:
    return Limits({"submit": (Rate(5),), "query": (Rate(20),), "policy": (Rate(100),)}, max_running=2)


FAMILY: Family = replace(dashscope_sim.FAMILY, base_path="/acme/api/v1", limits=_limits, shared_accounts=False)


# --- the registry line -------------------------------------------------------------

ENTRY = Entry(TABLE, "tests.acme_provider:connect", "tests.acme_provider:FAMILY")
