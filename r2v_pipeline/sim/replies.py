"""Answers in each family's own error shape: flat JSON (DashScope, the simulator), OSS's XML.

A family is who answers: a provider's API (its module defines its shape), "oss"
(uploads and result downloads), "sim" (introspection).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping
from xml.sax.saxutils import escape

from .server import HttpResponse

JSON = "application/json"


@dataclass(frozen=True)
class Refusal:
    """A request the simulator turns down, before it is rendered in a family's shape."""

    status: int
    code: str
    message: str


def json_reply(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> HttpResponse:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return HttpResponse(status, body, JSON, list(headers or []))


def dashscope_error(status: int, code: str, message: str, request_id: str) -> HttpResponse:
    return json_reply(status, {"code": code, "message": message, "request_id": request_id})


def oss_error(status: int, code: str, message: str, request_id: str) -> HttpResponse:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n'
        f"  <Code>{escape(code)}</Code>\n  <Message>{escape(message)}</Message>\n"
        f"  <RequestId>{escape(request_id)}</RequestId>\n  <HostId>r2v-sim</HostId>\n</Error>\n"
    )
    return HttpResponse(status, body.encode("utf-8"), "application/xml")


@dataclass(frozen=True)
class ErrorShape:
    """How a family words the answers that are not about one request: injected faults,
    rate limits, missing keys, unknown paths, handler bugs."""

    render: Callable[[int, str, str, str], HttpResponse]  # (status, code, message, request id)
    stock: Mapping[int, tuple[str, str]]  # status -> (code, message)
    quota: tuple[str, str] | None = None  # a quota refusal, where worded apart from a throttle


OSS = ErrorShape(
    oss_error,
    {
        404: ("NoSuchKey", "The specified key does not exist."),
        429: ("Throttling", "Too many requests."),  # [guess] OSS documents no 429 body
        500: ("InternalError", "Internal error; please retry."),
        503: ("ServiceUnavailable", "Service unavailable; please retry."),
    },
)
SIM = ErrorShape(dashscope_error, {404: ("NotFound", "No such simulator path."), 500: ("InternalError", "simulator error")})
_OWN = {"oss": OSS, "sim": SIM}  # the simulator's own families; each provider's lives in its module


def shape_of(family: str) -> ErrorShape:
    own = _OWN.get(family)
    if own is not None:
        return own
    from .family import family as provider_family  # a provider's: its registered family says

    return provider_family(family).errors


def stock(family: str, status: int, request_id: str) -> HttpResponse:
    shape = shape_of(family)
    code, message = shape.stock.get(status, ("InternalError", "error"))
    return shape.render(status, code, message, request_id)


def quota_refusal(family: str, request_id: str) -> HttpResponse:
    shape = shape_of(family)
    if shape.quota is None:
        return stock(family, 429, request_id)
    return shape.render(429, *shape.quota, request_id)
