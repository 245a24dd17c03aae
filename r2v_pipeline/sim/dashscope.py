"""DashScope's routes under /api/v1: submit, task query, task list, cancel.

Bodies follow the project's API notes: the submit and query answers wrap the
task in ``output``; errors are flat ``{"code","message","request_id"}``; the
task list has its own field names and epoch-millisecond times.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Mapping

from ..catalog import lookup
from ..catalog.dashscope import SUBMIT_PATH
from . import uploads
from .clock import beijing_time, epoch_ms, parse_list_time
from .intake import INPUT_MODERATION, make_task, moderation, take_in
from .replies import ErrorShape, dashscope_error, json_reply
from .results import result_url
from .server import HttpRequest, HttpResponse
from .config import Limits, SimConfig
from .family import Family, FamilyRoute
from .tasks import CANCELED, FAILED, SUCCEEDED, Task

if TYPE_CHECKING:
    from .state import Call, SimState

LIST_PAGE_MAX = 100  # [guess] the largest page_size served
CANCEL_REFUSED = "Failed to cancel the task, please confirm if the task is in PENDING status."  # [capture]


async def submit(state: SimState, req: HttpRequest, call: Call, params: Mapping[str, str]) -> HttpResponse:
    rid = call.request_id
    if req.header("x-dashscope-async").lower() != "enable":
        return dashscope_error(403, "AccessDenied", "current user api does not support synchronous calls", rid)
    body = req.json()
    model = body.get("model") if isinstance(body, dict) else None
    spec = lookup(_provider(call), model) if isinstance(model, str) else None  # snapshot ids too
    if spec is None:
        if not isinstance(body, dict):
            return dashscope_error(400, "InvalidParameter", "The request body is not a JSON object.", rid)
        return dashscope_error(400, "InvalidParameter", "Model not exist.", rid)
    assert call.account is not None  # the route requires a key
    oss_enabled = req.header("x-dashscope-ossresourceresolve").lower() == "enable"
    intake = await take_in(state, spec, body, call.account, oss_enabled)
    if intake.rejected:
        first = intake.rejected[0]
        return dashscope_error(400, first.code, first.message, rid)
    if moderation(state, intake.request) == "reject":
        return dashscope_error(400, INPUT_MODERATION.code, INPUT_MODERATION.message, rid)
    task = make_task(state, intake, _provider(call), call.account, req.body, rid)
    call.task_id = task.task_id
    # The answer shows the task as it was created, whatever has happened since [doc].
    return json_reply(200, {"output": {"task_status": "PENDING", "task_id": task.task_id}, "request_id": rid})


async def get_task(state: SimState, req: HttpRequest, call: Call, params: Mapping[str, str]) -> HttpResponse:
    call.task_id = params["task_id"]
    task = visible_task(state, params["task_id"], call)
    if task is None:  # never existed or older than 24 h [doc]; another account's [guess]
        return json_reply(200, {"request_id": call.request_id, "output": {"task_id": params["task_id"], "task_status": "UNKNOWN"}})
    payload: dict[str, Any] = {"request_id": call.request_id, "output": task_output(state, task)}
    if task.status == SUCCEEDED:
        payload["usage"] = usage(task)
    return json_reply(200, payload)


async def list_tasks(state: SimState, req: HttpRequest, call: Call, params: Mapping[str, str]) -> HttpResponse:
    q = req.query
    now = state.clock.now()
    try:
        # [guess] without bounds: every task still known (the last 24 hours)
        start = parse_list_time(q["start_time"]) if q.get("start_time") else now - state.config.task_ttl
        # The bounds are whole seconds; the end one includes its whole second [guess].
        end = parse_list_time(q["end_time"]) + 1 if q.get("end_time") else math.inf
    except ValueError:
        return dashscope_error(400, "InvalidParameter", "start_time and end_time take the form YYYYMMDDhhmmss.", call.request_id)
    page_no, page_size = req.whole_number("page_no", 1), req.whole_number("page_size", 10)
    if page_no is None or page_size is None or page_size > LIST_PAGE_MAX:
        return dashscope_error(400, "InvalidParameter", f"page_no must be 1 or more and page_size 1 to {LIST_PAGE_MAX}.", call.request_id)
    found = [
        t
        for t in state.tasks.all()
        if t.provider == call.provider
        and t.account == call.account
        and now - t.submitted <= state.config.task_ttl
        and start <= t.submitted < end
        and q.get("model_name") in (None, "", t.model)
        and q.get("status") in (None, "", t.status)
    ]
    found.sort(key=lambda t: t.submitted, reverse=True)  # [guess] newest first
    page = found[(page_no - 1) * page_size : page_no * page_size]
    return json_reply(
        200,
        {
            "request_id": call.request_id,
            "total": len(found),
            "total_page": math.ceil(len(found) / page_size),
            "page_no": page_no,
            "page_size": page_size,
            "data": [list_item(state, t) for t in page],
        },
    )


async def cancel_task(state: SimState, req: HttpRequest, call: Call, params: Mapping[str, str]) -> HttpResponse:
    call.task_id = params["task_id"]
    task = visible_task(state, params["task_id"], call)
    if task is None or not state.tasks.cancel(task, state.clock.now()):  # [guess] an unknown task: the same refusal
        return dashscope_error(400, "UnsupportedOperation", CANCEL_REFUSED, call.request_id)
    return json_reply(200, {"request_id": call.request_id})


def visible_task(state: SimState, task_id: str, call: Call) -> Task | None:
    task = state.tasks.get(task_id)
    if task is None or task.provider != call.provider or task.account != call.account:
        return None
    if state.clock.now() - task.submitted > state.config.task_ttl:
        return None
    return task


def task_output(state: SimState, task: Task) -> dict[str, Any]:
    out: dict[str, Any] = {"task_id": task.task_id, "task_status": task.status, "submit_time": beijing_time(task.submitted)}
    if task.started is not None:
        out["scheduled_time"] = beijing_time(task.started)
    if task.ended is not None and task.status in (SUCCEEDED, FAILED, CANCELED):
        out["end_time"] = beijing_time(task.ended)
    if task.status == SUCCEEDED:
        out["orig_prompt"] = task.prompt  # [guess] after any truncation: the text the model got
        out["video_url"] = result_url(state, task)
    elif task.status == FAILED and task.failure is not None:
        out["code"], out["message"] = task.failure.code, task.failure.message
    return out


def usage(task: Task) -> dict[str, Any]:
    """The usage object of a succeeded task; ``duration`` is the billed total."""
    spec = lookup(task.provider, task.model)
    frame = {"size": task.output.size} if spec is not None and "size" in spec.settings else {"ratio": task.output.ratio}
    return {
        "duration": float(task.billed.total),
        **frame,
        "input_video_duration": _number(task.billed.input),
        "output_video_duration": task.output.seconds,
        "video_count": 1,
        "SR": task.output.tier,
        "audio": task.output.audio,
    }


def list_item(state: SimState, task: Task) -> dict[str, Any]:
    item: dict[str, Any] = {
        "task_id": task.task_id,
        "status": task.status,
        "model_name": task.model,
        "request_id": task.request_id,
        "gmt_create": epoch_ms(task.submitted),
    }
    if task.started is not None:
        item["start_time"] = epoch_ms(task.started)
    if task.ended is not None:
        item["end_time"] = epoch_ms(task.ended)
    item["region"] = state.config.region
    return item  # no prompt: the list names no request [sdk][capture]; clients ask each task


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _provider(call: Call) -> str:
    """Whose API answers: this family may serve more than one provider (each its own base path)."""
    assert call.provider is not None  # the route requires a key
    return call.provider


def bearer_key(req: HttpRequest) -> str:
    scheme, _, key = req.header("authorization").partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


def _limits(config: SimConfig) -> Limits:
    return Limits({"submit": config.submit_rate, "query": config.query_rate, "policy": config.policy_rate}, config.max_running, config.dashscope_keys)


ERRORS = ErrorShape(
    dashscope_error,
    {
        401: ("InvalidApiKey", "Invalid API-key provided."),
        404: ("NotFound", "No such API path."),  # [guess]
        429: ("Throttling", "Requests throttling triggered; please retry later."),
        500: ("InternalError", "An internal error occurred; please retry."),
        503: ("ModelUnavailable", "The model is temporarily unavailable; please retry later."),
    },
    quota=("Throttling.RateQuota", "Requests rate limit exceeded; please try again later."),  # apart from an injected throttle [doc]
)


# Task get, list and cancel share the query rate [doc].
FAMILY = Family(
    shape="dashscope",
    errors=ERRORS,
    base_path="/api/v1",
    routes=(
        FamilyRoute("POST", SUBMIT_PATH, "submit", submit, "submit"),
        FamilyRoute("GET", "/tasks", "list", list_tasks, "query"),
        FamilyRoute("GET", "/tasks/{task_id}", "query", get_task, "query"),
        FamilyRoute("POST", "/tasks/{task_id}/cancel", "cancel", cancel_task, "query"),
        FamilyRoute("GET", "/uploads", "policy", uploads.get_policy, "policy"),
    ),
    key_of=bearer_key,
    limits=_limits,
    shared_accounts=True,
)
