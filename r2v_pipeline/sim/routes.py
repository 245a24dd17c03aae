"""The route table, and the dispatcher that wraps every handler in what the
providers put in front of their APIs: keys, injected faults, rate limits, the ledger."""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from functools import lru_cache

import anyio

from ..catalog import registry
from . import introspect, media, results, uploads
from .family import Family, RouteHandler, family, limits
from .faults import NO_FAULT, request_key
from .ledger import account_id, account_name
from .replies import quota_refusal, shape_of, stock
from .server import HttpRequest, HttpResponse
from .state import Call, SimState

log = logging.getLogger("r2v_pipeline.sim")


@dataclass(frozen=True)
class Route:
    """One route of the simulator's server: method, path, who answers and its handler."""

    method: str
    template: str  # a path, with {name} for a segment the handler receives
    family: str  # who answers: dashscope, oss, freepik, sim
    kind: str  # what it is, for fault scopes and the ledger
    handler: RouteHandler
    provider: str | None = None  # whose API it is (a key is needed); None: the simulator's own or OSS
    rates: str | None = None  # the provider's rate group; routes naming the same group share it

    @property
    def pattern(self) -> re.Pattern[str]:
        parts = re.split(r"\{(\w+)\}", self.template)
        regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+?)" for i, p in enumerate(parts))
        return re.compile(regex + "$")


# Routes every simulated provider shares: OSS (uploads, result downloads) and /_sim.
COMMON: tuple[Route, ...] = (
    Route("POST", "/oss", "oss", "upload", uploads.post_object),
    Route("GET", "/results/{task_id}.mp4", "oss", "download", results.download),
    Route("GET", "/_sim/health", "sim", "sim", introspect.health),
    Route("GET", "/_sim/ledger", "sim", "sim", introspect.ledger),
    Route("POST", "/_sim/advance", "sim", "sim", introspect.advance),
    Route("POST", "/_sim/media", "sim", "media", media.host_media),
    Route("POST", "/_sim/facts", "sim", "media", media.declare_facts),
    Route("GET", "/_sim/media/{sha}", "sim", "media", media.hosted_media),
)


def provider_routes(provider: str, of: Family) -> tuple[Route, ...]:
    """A provider's routes: its family's, below the family's base path."""
    return tuple(Route(r.method, of.base_path + r.template, of.shape, r.kind, r.handler, provider, r.rates) for r in of.routes)


@lru_cache(maxsize=8)
def _table(providers: tuple[str, ...]) -> tuple[list[tuple[Route, re.Pattern[str]]], tuple[tuple[str, str], ...]]:
    """The compiled routes of the registered providers, and who answers an unknown path by its start."""
    routes = [route for name in providers for route in provider_routes(name, family(name))] + list(COMMON)
    starts = {"/" + route.template.lstrip("/").split("/", 1)[0] + "/": route.family for route in routes if route.provider}
    return [(route, route.pattern) for route in routes], (*starts.items(), ("/results/", "oss"), ("/oss", "oss"))


def match(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for route, pattern in _table(registry.names())[0]:
        if route.method == method and (found := pattern.match(path)):
            return route, found.groupdict()
    return None


def account_of(route: Route, req: HttpRequest, state: SimState) -> str | None:
    """The account of the request's key (keys may share one: SimConfig.accounts), or
    None when the key is missing or not accepted."""
    assert route.provider is not None
    of = family(route.provider)
    key = of.key_of(req)
    allowed = limits(state.config, route.provider).keys
    if not key or (allowed is not None and key not in allowed):
        return None
    shared = state.config.accounts.get(key) if of.shared_accounts else None
    return account_id(key) if shared is None else account_name(shared)


async def dispatch(state: SimState, req: HttpRequest) -> HttpResponse | None:
    """Answer one request (None: close the connection without answering)."""
    state.tasks.settle(state.clock.now())  # every answer reflects its moment of simulated time
    call = Call(str(uuid.uuid4()))
    try:
        response = await _serve(state, req, call)
    except Exception:  # a handler bug: logged, and the client sees a plain 500
        log.exception("error serving %s %s", req.method, req.path)
        response = stock(call.family, 500, call.request_id)
    state.ledger.record_request(
        at=state.clock.now(),
        method=req.method,
        path=req.target,
        status=None if response is None else response.status,
        family=call.family,
        kind=call.kind,
        account=call.account,
        task_id=call.task_id,
        fault=call.fault,
        request_id=call.request_id,
        headers=req.headers,
        body=req.json() if "json" in req.header("content-type") else None,
    )
    if log.isEnabledFor(logging.INFO):
        status = "dropped" if response is None else response.status
        log.info("%s %s %s %s%s", req.method, req.path, status, call.account or "-", f" fault={call.fault}" if call.fault else "")
    return response


async def _serve(state: SimState, req: HttpRequest, call: Call) -> HttpResponse | None:
    found = match(req.method, req.path)
    if found is None:
        call.family = next((family for start, family in _table(registry.names())[1] if req.path.startswith(start)), "sim")
        return stock(call.family, 404, call.request_id)
    route, params = found
    call.family, call.kind, call.provider = route.family, route.kind, route.provider
    if route.provider:
        call.account = account_of(route, req, state)
    decision = NO_FAULT if route.family == "sim" else state.faults.decide(route.family, route.kind, request_key(req.method, req.target, call.account, req.body), call.account)
    call.fault = decision.fault
    if decision.delay:
        await anyio.sleep(decision.delay)
    if decision.effect == "drop_before":
        return None
    if decision.effect == "reply" and decision.status is not None and decision.code is not None:
        return shape_of(route.family).render(decision.status, decision.code, f"injected fault: {decision.code}", call.request_id)
    if decision.effect == "reply" and decision.status is not None:
        return stock(route.family, decision.status, call.request_id)
    if route.provider and call.account is None:
        return stock(route.family, 401, call.request_id)
    if route.provider and route.rates and not state.rates.admit(((route.provider, route.rates), call.account), limits(state.config, route.provider).rates[route.rates]):
        return quota_refusal(route.family, call.request_id)
    response = await route.handler(state, req, call, params)
    if decision.effect == "drop_after":
        return None  # processed, never answered: the client cannot know what happened
    if decision.effect == "cut" and response.status in (200, 206) and response.body:
        response.cut_at = len(response.body) // 2
    return response
