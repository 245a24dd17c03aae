"""Answers in each provider's own error shape: DashScope's flat JSON, OSS's XML, Freepik's message.

A family is who answers: "dashscope" (the API), "oss" (uploads and result
downloads), "freepik", "sim" (introspection).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable
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


def freepik_error(status: int, code: str, message: str, request_id: str) -> HttpResponse:
    return json_reply(status, {"message": message})  # Freepik's errors carry no code [doc]


ERRORS: dict[str, Callable[[int, str, str, str], HttpResponse]] = {
    "dashscope": dashscope_error,
    "oss": oss_error,
    "freepik": freepik_error,
    "sim": dashscope_error,
}

# (family, status) -> (code, message) of the answers that are not about one request:
# injected faults, rate limits, missing keys, unknown paths, handler bugs.
STOCK: dict[tuple[str, int], tuple[str, str]] = {
    ("dashscope", 401): ("InvalidApiKey", "Invalid API-key provided."),
    ("dashscope", 404): ("NotFound", "No such API path."),  # [guess]
    ("dashscope", 429): ("Throttling", "Requests throttling triggered; please retry later."),
    ("dashscope", 500): ("InternalError", "An internal error occurred; please retry."),
    ("dashscope", 503): ("ModelUnavailable", "The model is temporarily unavailable; please retry later."),
    ("oss", 404): ("NoSuchKey", "The specified key does not exist."),
    ("oss", 429): ("Throttling", "Too many requests."),  # [guess] OSS documents no 429 body
    ("oss", 500): ("InternalError", "Internal error; please retry."),
    ("oss", 503): ("ServiceUnavailable", "Service unavailable; please retry."),
    ("freepik", 401): ("", "Invalid API key"),  # [doc]
    ("freepik", 404): ("", "Not found"),  # [guess]
    ("freepik", 429): ("", "Too many requests. Please slow down and try again later."),  # [guess] undocumented body
    ("freepik", 500): ("", "Internal Server Error"),  # [guess]
    ("freepik", 503): ("", "Service Unavailable. Please try again later."),  # [doc]
    ("sim", 404): ("NotFound", "No such simulator path."),
    ("sim", 500): ("InternalError", "simulator error"),
}

# The code a DashScope quota refusal carries, as opposed to an injected throttle [doc].
RATE_QUOTA = ("Throttling.RateQuota", "Requests rate limit exceeded; please try again later.")


def stock(family: str, status: int, request_id: str) -> HttpResponse:
    code, message = STOCK.get((family, status), STOCK.get(("dashscope", status), ("InternalError", "error")))
    return ERRORS[family](status, code, message, request_id)


def quota_refusal(family: str, request_id: str) -> HttpResponse:
    if family == "dashscope":
        return dashscope_error(429, *RATE_QUOTA, request_id)
    return stock(family, 429, request_id)
