"""The simulator's state: every part, built once per run and passed to every route."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Coroutine

from .clock import SimClock
from .config import SimConfig
from .faults import FaultBook
from .ledger import Ledger, TaskEntry
from .media import MediaBook
from .quota import RateBook
from .results import VideoCache, default_cache_dir, video_key
from .tasks import PENDING, RUNNING, SUCCEEDED, Task, TaskBook
from .uploads import UploadStore
from .webhooks import WebhookSender

# Starts a background job in the run's task group.
Spawn = Callable[[Callable[[], Coroutine[Any, Any, None]]], object]


@dataclass
class Call:
    """One request as the dispatcher and its handler see it; its ledger entry is made from it."""

    request_id: str
    family: str = "sim"
    kind: str = "sim"
    account: str | None = None
    task_id: str | None = None
    fault: str | None = None


@dataclass
class SimState:
    config: SimConfig
    base_url: str
    port: int
    secret: bytes  # signs result URLs and upload policies
    clock: SimClock
    ledger: Ledger
    faults: FaultBook
    rates: RateBook
    tasks: TaskBook
    uploads: UploadStore
    media: MediaBook
    videos: VideoCache
    webhooks: WebhookSender
    submit_counts: Counter[tuple[str, str]]


def build_state(config: SimConfig, port: int, spawn: Spawn) -> SimState:
    """Everything a run needs; call on the event loop thread."""
    clock = SimClock(config.time_scale)
    ledger = Ledger(config.ledger_max_requests)
    faults = FaultBook(config.fault_spec, config.seed)
    secret = hashlib.sha256(f"r2v-sim|{config.seed}".encode()).digest()
    rate_now = clock.now if config.rate_clock == "provider" else time.monotonic
    tasks = TaskBook(clock, {"dashscope": config.max_running, "freepik": config.freepik_max_running})
    state = SimState(
        config=config,
        base_url=f"http://{_url_host(config.host)}:{port}",
        port=port,
        secret=secret,
        clock=clock,
        ledger=ledger,
        faults=faults,
        rates=RateBook(rate_now),
        tasks=tasks,
        uploads=UploadStore(secret),
        media=MediaBook(),
        videos=VideoCache(config.cache_dir or default_cache_dir(), spawn),
        webhooks=WebhookSender(config, clock, ledger, faults, spawn),
        submit_counts=Counter(),
    )
    tasks.on_change = lambda task: task_changed(state, task)
    return state


def task_changed(state: SimState, task: Task) -> None:
    """Every status change: the ledger, the video prefetch, Freepik's webhooks."""
    if task.status == PENDING:
        state.ledger.record_task(
            TaskEntry(
                task.task_id, task.provider, task.model, task.account, task.fingerprint, task.submitted, task.status,
                fault=task.fault, adjusted=task.adjusted,
            )  # fmt: skip
        )
    else:
        billed = task.billed.total if task.status == SUCCEEDED else None  # failed tasks bill nothing [doc]
        code = task.failure.code if task.failure else None
        state.ledger.update_task(task.task_id, status=task.status, billed_seconds=billed, failure_code=code)
    if task.status == RUNNING and task.fail_at_start is None:
        state.videos.prefetch(video_key(task.output))  # encode while the task "generates"
    # [guess] creation itself is announced by the create answer, not by a webhook
    if task.provider == "freepik" and task.webhook_url and task.status != PENDING:
        from .freepik import STATUS, data_of  # the Freepik routes import this module

        state.webhooks.announce(task.task_id, task.webhook_url, STATUS[task.status], data_of(state, task))


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
