"""The route table, and the dispatcher that wraps every handler in what the
providers put in front of their APIs: keys, injected faults, rate limits, the ledger."""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from typing import Awaitable, Callable, Literal, Mapping

import anyio

from . import dashscope, freepik, introspect, media, results, uploads
from .faults import NO_FAULT, request_key
from .ledger import account_id
from .replies import quota_refusal, stock
from .server import HttpRequest, HttpResponse
from .state import Call, SimState

log = logging.getLogger("r2v_pipeline.sim")

RouteHandler = Callable[[SimState, HttpRequest, Call, Mapping[str, str]], Awaitable[HttpResponse]]
FREEPIK = "/v1/ai/reference-to-video/wan-2-7"


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # a path, with {name} for a segment the handler receives
    family: str  # who answers: dashscope, oss, freepik, sim
    kind: str  # what it is, for fault scopes and the ledger
    handler: RouteHandler
    auth: Literal["bearer", "freepik"] | None = None
    rates: str | None = None  # the SimConfig field holding this route's rates; routes naming the same field share them

    @property
    def pattern(self) -> re.Pattern[str]:
        parts = re.split(r"\{(\w+)\}", self.template)
        regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+?)" for i, p in enumerate(parts))
        return re.compile(regex + "$")


ROUTES: tuple[Route, ...] = (
    Route("POST", "/api/v1/services/aigc/video-generation/video-synthesis", "dashscope", "submit", dashscope.submit, "bearer", "submit_rate"),
    Route("GET", "/api/v1/tasks", "dashscope", "list", dashscope.list_tasks, "bearer", "query_rate"),
    Route("GET", "/api/v1/tasks/{task_id}", "dashscope", "query", dashscope.get_task, "bearer", "query_rate"),
    Route("POST", "/api/v1/tasks/{task_id}/cancel", "dashscope", "cancel", dashscope.cancel_task, "bearer", "query_rate"),
    Route("GET", "/api/v1/uploads", "dashscope", "policy", uploads.get_policy, "bearer", "policy_rate"),
    Route("POST", "/oss", "oss", "upload", uploads.post_object),
    Route("GET", "/results/{task_id}.mp4", "oss", "download", results.download),
    Route("POST", FREEPIK, "freepik", "submit", freepik.submit, "freepik", "freepik_rate"),
    Route("GET", FREEPIK, "freepik", "list", freepik.list_tasks, "freepik", "freepik_rate"),
    Route("GET", FREEPIK + "/{task_id}", "freepik", "query", freepik.get_task, "freepik", "freepik_rate"),
    Route("GET", "/_sim/health", "sim", "sim", introspect.health),
    Route("GET", "/_sim/ledger", "sim", "sim", introspect.ledger),
    Route("POST", "/_sim/advance", "sim", "sim", introspect.advance),
    Route("POST", "/_sim/media", "sim", "media", media.host_media),
    Route("POST", "/_sim/facts", "sim", "media", media.declare_facts),
    Route("GET", "/_sim/media/{sha}", "sim", "media", media.hosted_media),
)
_COMPILED = [(route, route.pattern) for route in ROUTES]
# Who answers an unknown path, by its start.
_FAMILIES = (("/api/", "dashscope"), ("/v1/", "freepik"), ("/results/", "oss"), ("/oss", "oss"))


def match(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for route, pattern in _COMPILED:
        if route.method == method and (found := pattern.match(path)):
            return route, found.groupdict()
    return None


def account_of(route: Route, req: HttpRequest, state: SimState) -> str | None:
    """The account of the request's key (DashScope keys may share one: SimConfig.accounts),
    or None when the key is missing or not accepted."""
    if route.auth == "bearer":
        scheme, _, key = req.header("authorization").partition(" ")
        key = key.strip() if scheme.lower() == "bearer" else ""
        allowed = state.config.dashscope_keys
    else:
        key = (req.header("x-freepik-api-key") or req.header("x-magnific-api-key")).strip()
        allowed = state.config.freepik_keys
    if not key or (allowed is not None and key not in allowed):
        return None
    shared = state.config.accounts.get(key) if route.auth == "bearer" else None
    return account_id(key) if shared is None else f"acct-{shared}"


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
        call.family = next((family for start, family in _FAMILIES if req.path.startswith(start)), "sim")
        return stock(call.family, 404, call.request_id)
    route, params = found
    call.family, call.kind = route.family, route.kind
    if route.auth:
        call.account = account_of(route, req, state)
    decision = NO_FAULT if route.family == "sim" else state.faults.decide(route.family, route.kind, request_key(req.method, req.target, call.account, req.body))
    call.fault = decision.fault
    if decision.delay:
        await anyio.sleep(decision.delay)
    if decision.effect == "drop_before":
        return None
    if decision.effect == "reply" and decision.status is not None:
        return stock(route.family, decision.status, call.request_id)
    if route.auth and call.account is None:
        return stock(route.family, 401, call.request_id)
    if route.rates and not state.rates.admit((route.rates, call.account), getattr(state.config, route.rates)):
        return quota_refusal(route.family, call.request_id)
    response = await route.handler(state, req, call, params)
    if decision.effect == "drop_after":
        return None  # processed, never answered: the client cannot know what happened
    if decision.effect == "cut" and response.status in (200, 206) and response.body:
        response.cut_at = len(response.body) // 2
    return response
