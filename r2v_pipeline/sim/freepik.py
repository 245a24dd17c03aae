"""Freepik's "WAN 2.7 Reference-to-Video" routes: create, get, list, in the ``data`` envelope.

Statuses CREATED → IN_PROGRESS → COMPLETED | FAILED; every change after
creation is announced to the task's ``webhook_url`` [doc].
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from ..catalog.freepik import ENDPOINT, WAN27
from .config import Limits, SimConfig
from .family import Family, FamilyRoute
from .intake import INPUT_MODERATION, make_task, moderation, take_in
from .replies import ErrorShape, json_reply, stock
from .results import result_url
from .server import HttpRequest, HttpResponse
from .tasks import CANCELED, FAILED, PENDING, RUNNING, SUCCEEDED, Task

if TYPE_CHECKING:
    from .state import Call, SimState

STATUS = {PENDING: "CREATED", RUNNING: "IN_PROGRESS", SUCCEEDED: "COMPLETED", FAILED: "FAILED", CANCELED: "FAILED"}
INVALID = "Your request parameters didn't validate."  # [doc]
PAGE_MAX = 100  # [guess]


async def submit(state: SimState, req: HttpRequest, call: Call, params: Mapping[str, str]) -> HttpResponse:
    body = req.json()
    if not isinstance(body, dict):
        return invalid([("body", "the body must be a JSON object")])
    assert call.account is not None  # the route requires a key
    intake = await take_in(state, WAN27, body, call.account, oss_enabled=False)
    if intake.rejected:
        return invalid([(v.field, v.message) for v in intake.rejected])
    if moderation(state, intake.request) == "reject":
        return invalid([("prompt", INPUT_MODERATION.message)])  # [guess] Freepik documents no moderation answer
    webhook = body.get("webhook_url")
    task = make_task(state, intake, call.provider or "", call.account, req.body, call.request_id, webhook if isinstance(webhook, str) else None)
    call.task_id = task.task_id
    return json_reply(200, {"data": {"generated": [], "task_id": task.task_id, "status": "CREATED"}})


async def get_task(state: SimState, req: HttpRequest, call: Call, params: Mapping[str, str]) -> HttpResponse:
    call.task_id = params["task_id"]
    task = state.tasks.get(params["task_id"])
    if task is None or task.provider != call.provider or task.account != call.account:
        return stock("freepik", 404, call.request_id)
    return json_reply(200, {"data": data_of(state, task)})


async def list_tasks(state: SimState, req: HttpRequest, call: Call, params: Mapping[str, str]) -> HttpResponse:
    page, size = req.whole_number("page", 1), req.whole_number("page_size", 20)
    if page is None or size is None or size > PAGE_MAX:
        return invalid([("page" if page is None else "page_size", f"page must be 1 or more and page_size 1 to {PAGE_MAX}")])
    mine = sorted((t for t in state.tasks.all() if t.provider == call.provider and t.account == call.account), key=lambda t: t.submitted, reverse=True)
    return json_reply(200, {"data": [{"task_id": t.task_id, "status": STATUS[t.status]} for t in mine[(page - 1) * size : page * size]]})


def data_of(state: SimState, task: Task) -> dict[str, Any]:
    """The ``data`` object of a GET, which is also a webhook's body [doc]. The video URL
    expires like DashScope's [guess: Freepik states no lifetime]."""
    generated = [result_url(state, task)] if task.status == SUCCEEDED else []
    return {"generated": generated, "task_id": task.task_id, "status": STATUS[task.status]}


def invalid(problems: list[tuple[str, str]]) -> HttpResponse:
    """A 400 naming each invalid parameter once [doc], with its first reason: a duration
    that breaks two rules is still one parameter."""
    reasons: dict[str, str] = {}
    for name, reason in problems:
        reasons.setdefault(name, reason)
    return json_reply(400, {"message": INVALID, "invalid_params": [{"name": name, "reason": reason} for name, reason in reasons.items()]})


def announce(state: SimState, task: Task) -> None:
    """Every status change after creation goes to the task's webhook_url [doc]."""
    # [guess] creation itself is announced by the create answer, not by a webhook
    if task.webhook_url and task.status != PENDING:
        state.webhooks.announce(task.task_id, task.webhook_url, STATUS[task.status], data_of(state, task))


def api_key(req: HttpRequest) -> str:
    return (req.header("x-freepik-api-key") or req.header("x-magnific-api-key")).strip()


def _limits(config: SimConfig) -> Limits:
    return Limits({"api": config.freepik_rate}, config.freepik_max_running, config.freepik_keys)


def freepik_error(status: int, code: str, message: str, request_id: str) -> HttpResponse:
    return json_reply(status, {"message": message})  # Freepik's errors carry no code [doc]


ERRORS = ErrorShape(
    freepik_error,
    {
        401: ("", "Invalid API key"),  # [doc]
        404: ("", "Not found"),  # [guess]
        429: ("", "Too many requests. Please slow down and try again later."),  # [guess] undocumented body
        500: ("", "Internal Server Error"),  # [guess]
        503: ("", "Service Unavailable. Please try again later."),  # [doc]
    },
)


# Every route counts against one rate, per key [doc]; the base URL is the simulator's own.
FAMILY = Family(
    shape="freepik",
    errors=ERRORS,
    base_path="",
    routes=(
        FamilyRoute("POST", ENDPOINT, "submit", submit, "api"),
        FamilyRoute("GET", ENDPOINT, "list", list_tasks, "api"),
        FamilyRoute("GET", ENDPOINT + "/{task_id}", "query", get_task, "api"),
    ),
    key_of=api_key,
    limits=_limits,
    announce=announce,
)
