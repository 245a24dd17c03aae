"""The simulator's state: every part, built once per run and passed to every route."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Coroutine, Mapping

from .clock import SimClock
from .config import SimConfig
from .facts import read_declarations
from .faults import FaultBook
from .ledger import Ledger, account_name, task_entry
from .media import MediaBook
from .persist import Saved, SimStore, resumed_now
from .quota import RateBook
from .results import VideoCache, default_cache_dir, video_key
from .tasks import RUNNING, Task, TaskBook
from .uploads import UploadStore
from .webhooks import WebhookSender

# Starts a background job in the run's task group.
Spawn = Callable[[Callable[[], Coroutine[Any, Any, None]]], object]
# What a task's status change sets off at its provider (Freepik's webhooks); the
# provider families are wired in by whoever builds the state (embedded.py).
Announce = Callable[["SimState", Task], None]


@dataclass
class Call:
    """One request as the dispatcher and its handler see it; its ledger entry is made from it."""

    request_id: str
    family: str = "sim"
    kind: str = "sim"
    provider: str | None = None  # whose API the route is; None: the simulator's own, OSS
    account: str | None = None
    task_id: str | None = None
    fault: str | None = None


@dataclass
class SimState:
    """Everything one running simulator holds: config, clock, ledger, tasks, uploads."""

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
    announce: Announce
    store: SimStore | None = None  # the state on disk, when config.state_dir is set


def build_state(
    config: SimConfig,
    port: int,
    spawn: Spawn,
    max_running: Mapping[str, int | None],
    announce: Announce,
    store: SimStore | None = None,
) -> SimState:
    """Everything a run needs, taken back from ``store`` when it holds a stopped
    simulator's state; call on the event loop thread. ``max_running``: tasks in
    progress per account, by provider."""
    saved = store.load() if store is not None else None
    origin = resumed_now(saved, config.clock_while_stopped, config.time_scale, time.time()) if saved else None
    clock = SimClock(config.time_scale, origin)
    ledger = Ledger(config.ledger_max_requests)
    faults = FaultBook(config.fault_spec, config.seed)
    # The stored secret wins: result URLs and upload policies handed out before stay valid.
    secret = (saved and saved.secret) or hashlib.sha256(f"r2v-sim|{config.seed}".encode()).digest()
    rate_now = clock.now if config.rate_clock == "provider" else time.monotonic
    cache_dir = config.cache_dir or (config.state_dir / "videos" if config.state_dir else default_cache_dir())
    tasks = TaskBook(clock, max_running, config.pending_seconds, {account_name(name): n for name, n in config.account_max_running.items()})
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
        media=MediaBook(read_declarations(config.remote_media)),
        videos=VideoCache(cache_dir, spawn),
        webhooks=WebhookSender(config, clock, ledger, faults, spawn),
        submit_counts=Counter(),
        announce=announce,
        store=store,
    )
    if store is not None and saved is not None:
        _restore(state, store, saved)
    tasks.on_change = lambda task: task_changed(state, task)
    if saved is not None:
        tasks.resume()  # what fell due while stopped happens now, told to on_change like any change
    return state


def _restore(state: SimState, store: SimStore, saved: Saved) -> None:
    """Take back a stopped simulator's state and write every later change through to ``store``."""
    state.tasks.restore(saved.tasks)
    for task in saved.tasks:
        state.ledger.record_task(task_entry(task))
        if task.status == RUNNING and task.fail_at_start is None and state.config.prefetch_videos:
            state.videos.prefetch(video_key(task.output))
    state.uploads.restore(saved.policies, saved.objects)
    state.uploads.on_policy = store.save_policy
    state.uploads.on_object = store.save_object
    state.submit_counts.update(saved.submit_counts)
    store.attach(state.clock.now)
    state.clock.on_advance(store.stamp)  # paused time resumes after an advance too
    store.save_meta(state.secret, state.port)


def task_changed(state: SimState, task: Task) -> None:
    """Every status change: the state on disk, the ledger, the video prefetch, and what the
    provider's family sets off (Freepik's webhooks)."""
    if state.store is not None:
        state.store.save_task(task)
    state.ledger.record_task(task_entry(task))
    if task.status == RUNNING and task.fail_at_start is None and state.config.prefetch_videos:
        state.videos.prefetch(video_key(task.output))  # encode while the task "generates"
    state.announce(state, task)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
