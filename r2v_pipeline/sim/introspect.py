"""The simulator's own routes under /_sim: health and figures, the ledger, time travel."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping

from ..catalog import registry
from .family import family
from .replies import json_reply
from .server import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from .state import Call, SimState


def urls(state: SimState) -> dict[str, str]:
    """Each registered provider's simulated API base URL."""
    return {name: state.base_url + family(name).base_path for name in registry.names()}


def stats(state: SimState) -> dict[str, Any]:
    found = urls(state)
    return {
        "status": "ok",
        "now": state.clock.now(),
        "time_scale": state.config.time_scale,
        "seed": state.config.seed,
        "faults": str(state.faults.spec),
        "base_url": state.base_url,
        "urls": found,
        "dashscope_url": found["dashscope"],  # older clients read these two
        "freepik_url": found["freepik"],
        "tasks": state.tasks.counts(),
        "in_flight": state.tasks.in_flight,
        "peak_in_flight": state.tasks.peak_in_flight,
        "peak_in_flight_by_account": state.tasks.peaks(),
        "requests": state.ledger.request_count,
    }


async def health(state: SimState, req: HttpRequest, call: Call, params: Mapping[str, str]) -> HttpResponse:
    return json_reply(200, stats(state))


async def ledger(state: SimState, req: HttpRequest, call: Call, params: Mapping[str, str]) -> HttpResponse:
    since = req.query.get("since", "0")
    return json_reply(200, state.ledger.to_json(int(since) if since.isdigit() else 0))


async def advance(state: SimState, req: HttpRequest, call: Call, params: Mapping[str, str]) -> HttpResponse:
    try:
        seconds = float(req.query.get("seconds", ""))
    except ValueError:
        seconds = math.nan
    if not (0 <= seconds < math.inf):
        return json_reply(400, {"code": "InvalidParameter", "message": "seconds must be a number of 0 or more"})
    advance_clock(state, seconds)
    return json_reply(200, {"now": state.clock.now()})


def advance_clock(state: SimState, seconds: float) -> None:
    """Jump simulated time forward and apply everything that fell due."""
    state.clock.advance(seconds)
    state.tasks.settle(state.clock.now())
