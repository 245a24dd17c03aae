"""The task life cycle: PENDING → RUNNING → SUCCEEDED | FAILED, plus CANCELED.

A new task first waits a while in the provider's queue (``pending_seconds``),
then takes one of its account's slots; tasks beyond the slots wait on as
PENDING and start first in, first out the moment a slot frees. State changes
are computed from the simulated clock (``settle``), in time order, so an
``advance`` of an hour runs every generation that fits in it, each at its
exact simulated time, and any request sees the state its moment implies.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import anyio

from ..catalog.billing import Billed
from .clock import SimClock

PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED = "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED"
ACTIVE = frozenset({PENDING, RUNNING})
READY, END = 0, 1  # what falls due: a task leaves the queue's wait, a task ends


@dataclass(frozen=True)
class Output:
    """The video a task makes."""

    width: int
    height: int
    seconds: int
    audio: bool
    resolution: str  # "720P" / "1080P"
    ratio: str  # "16:9", …

    @property
    def size(self) -> str:
        return f"{self.width}*{self.height}"

    @property
    def tier(self) -> int:
        return int(self.resolution.rstrip("Pp"))


@dataclass(frozen=True)
class Failure:
    """Why a simulated task failed, in the provider's words."""

    code: str
    message: str


@dataclass
class Task:
    """One simulated task: who made it, what was asked, and its life so far."""

    task_id: str
    provider: str  # "dashscope" | "freepik"
    account: str
    model: str
    request_id: str  # of the submit
    prompt: str  # as the model got it (after any truncation)
    output: Output
    billed: Billed
    fingerprint: str
    submitted: float  # provider time
    generation_seconds: float
    fail_at_start: Failure | None = None  # a request the model refuses once it looks at it
    fail_at_end: Failure | None = None  # output moderation, injected internal errors
    webhook_url: str | None = None
    fault: str | None = None  # an injected fault the task will show
    adjusted: tuple[str, ...] = ()  # what the provider changed silently: "prompt truncated", "audio ignored"
    status: str = PENDING
    started: float | None = None
    ended: float | None = None
    failure: Failure | None = None

    @property
    def slot(self) -> tuple[str, str]:
        return (self.provider, self.account)


class TaskBook:
    def __init__(
        self, clock: SimClock, max_running: Mapping[str, int | None], pending_seconds: float = 0.0, account_limits: Mapping[str, int] | None = None
    ):
        self.clock = clock
        self._limits = max_running
        self._account_limits = dict(account_limits or {})  # account -> tasks in progress, over its provider's
        self._pending = pending_seconds
        self.on_change: Callable[[Task], None] = lambda task: None  # told of every status change
        self._tasks: dict[str, Task] = {}
        self._queues: defaultdict[tuple[str, str], deque[Task]] = defaultdict(deque)
        self._running: Counter[tuple[str, str]] = Counter()
        self._not_before: dict[tuple[str, str], float] = {}  # after a restart: when each slot last freed
        self._due: list[tuple[float, int, int, str]] = []  # (time, order, READY | END, task id)
        self._order = 0
        self._wake: anyio.Event | None = None
        self.in_flight = 0
        self.peak_in_flight = 0
        # Tasks waiting or running per (provider, account), and the most there ever were:
        # what a client keeping to an account's quota must never push above it.
        self.in_flight_by: Counter[tuple[str, str]] = Counter()
        self.peak_by: Counter[tuple[str, str]] = Counter()
        clock.on_advance(self.poke)

    def __len__(self) -> int:
        return len(self._tasks)

    def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def all(self) -> list[Task]:
        return list(self._tasks.values())

    def counts(self) -> dict[str, int]:
        return dict(Counter(t.status for t in self._tasks.values()))

    def add(self, task: Task) -> None:
        self._tasks[task.task_id] = task
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        self._count(task, +1)
        self.on_change(task)
        self._push(task.submitted + self._pending, READY, task)
        self.settle(self.clock.now())
        self.poke()

    def cancel(self, task: Task, at: float) -> bool:
        """Cancel a PENDING task; False for any other state [doc: only PENDING tasks]."""
        if task.status != PENDING:
            return False
        task.status, task.ended = CANCELED, at
        self.in_flight -= 1
        self._count(task, -1)
        self.on_change(task)  # it stays in its queue; _pump skips it
        return True

    def restore(self, tasks: Iterable[Task]) -> None:
        """Take back the tasks a stopped simulator left, in submit order, without telling
        ``on_change``: waiting tasks queue again (once their wait is over), running ones
        end when they were due to."""
        for task in tasks:
            self._tasks[task.task_id] = task
            if task.status == PENDING:
                self._push(task.submitted + self._pending, READY, task)
            elif task.status == RUNNING:
                self._running[task.slot] += 1
                self._due_push(task)
            if task.status in ACTIVE:
                self.in_flight += 1
                self._count(task, +1)
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def resume(self) -> None:
        """After ``restore``: start waiting tasks a slot is free for, then apply what is due.

        A slot is free here only when the simulator stopped between one task's end and
        the next one's start, or the limit was raised; the next task starts when the
        slot's last task ended [guess], or when its wait was over if that is later.
        """
        for task in self._tasks.values():
            if task.started is not None and task.ended is not None:
                self._not_before[task.slot] = max(self._not_before.get(task.slot, 0.0), task.ended)
        self.settle(self.clock.now())
        self.poke()

    def settle(self, now: float) -> None:
        """Apply every state change due by ``now``, in time order."""
        while self._due and self._due[0][0] <= now:
            at, _, event, task_id = heapq.heappop(self._due)
            task = self._tasks[task_id]
            if event == END:
                self._finish(task, at, task.fail_at_start or task.fail_at_end)
            elif task.status == PENDING:  # a task cancelled while it waited stays out
                self._queues[task.slot].append(task)
                self._pump(task.slot, at)

    def next_due(self) -> float | None:
        return self._due[0][0] if self._due else None

    def poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        """Settle whenever something falls due; runs until cancelled."""
        while True:
            self._wake = anyio.Event()
            now = self.clock.now()
            self.settle(now)
            due = self.next_due()
            delay = math.inf if due is None else max(0.0, self.clock.wall_seconds(due - now))
            with anyio.move_on_after(delay):
                await self._wake.wait()

    def _count(self, task: Task, change: int) -> None:
        self.in_flight_by[task.slot] += change
        self.peak_by[task.slot] = max(self.peak_by[task.slot], self.in_flight_by[task.slot])

    def peaks(self) -> dict[str, int]:
        """The most tasks each account ever had waiting or running at once, as "provider/account"."""
        return {f"{provider}/{account}": peak for (provider, account), peak in sorted(self.peak_by.items())}

    def _pump(self, slot: tuple[str, str], at: float) -> None:
        limit = self._account_limits.get(slot[1], self._limits.get(slot[0]))
        queue = self._queues[slot]
        while queue and (limit is None or self._running[slot] < limit):
            task = queue.popleft()
            if task.status == PENDING:  # never before its wait is over
                self._start(task, max(at, task.submitted + self._pending, self._not_before.get(slot, 0.0)))

    def _start(self, task: Task, at: float) -> None:
        task.status, task.started = RUNNING, at
        self._running[task.slot] += 1
        self.on_change(task)
        self._due_push(task)

    def _due_push(self, task: Task) -> None:
        assert task.started is not None
        # [guess] A request the model refuses ends as soon as it starts; the rest generate for their time.
        self._push(task.started if task.fail_at_start else task.started + task.generation_seconds, END, task)

    def _push(self, at: float, event: int, task: Task) -> None:
        self._order += 1
        heapq.heappush(self._due, (at, self._order, event, task.task_id))

    def _finish(self, task: Task, at: float, failure: Failure | None) -> None:
        task.ended, task.failure = at, failure
        task.status = FAILED if failure else SUCCEEDED
        self._running[task.slot] -= 1
        self.in_flight -= 1
        self._count(task, -1)
        self.on_change(task)
        self._pump(task.slot, at)
