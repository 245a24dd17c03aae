"""Staying inside a provider's quotas: request rates and backoff."""

from __future__ import annotations

from collections import deque
from typing import Callable

import anyio

from .backoff import Backoff  # noqa: F401  (where the runner has always found it)


# Requests leave here one window apart but may reach the server closer together
# (scheduling, connection reuse, a busy machine delaying one request more than the
# next): keep this much of a window in hand. 5 % let a 429 through on a loaded host.
SAFETY = 0.2


class RateLimit:
    """At most ``count`` acquisitions in any window of ``period`` seconds (a sliding
    window, as providers count), plus a pause everyone waits out after a 429."""

    def __init__(self, count: int, period: float = 1.0, clock: Callable[[], float] = anyio.current_time):
        self.count = count
        self.period = period * (1 + SAFETY)
        self.clock = clock
        self.recent: deque[float] = deque()
        self.paused_until = 0.0

    @classmethod
    def per_second(cls, rate: float) -> RateLimit:
        """A rate such as 5/s or 0.5/s as a window the provider would count."""
        return cls(int(rate), 1.0) if rate >= 1 else cls(1, 1.0 / rate)

    async def acquire(self) -> None:
        while True:
            now = self.clock()
            while self.recent and self.recent[0] <= now - self.period:
                self.recent.popleft()
            wait = self.paused_until - now
            if wait <= 0 and len(self.recent) < self.count:
                self.recent.append(now)
                return
            if wait <= 0:
                wait = self.recent[0] + self.period - now
            await anyio.sleep(max(wait, 0.001))

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, self.clock() + seconds)


class Slots:
    """Tasks in progress on one account. New submissions wait their turn (first come,
    first served); a task an earlier run left in progress takes a slot at once,
    since it occupies one at the provider whatever the runner does."""

    def __init__(self, capacity: int, on_release: Callable[[], None] = lambda: None):
        self.capacity = capacity
        self.used = 0
        self._waiting: deque[anyio.Event] = deque()
        self._on_release = on_release  # an account pool hears of every slot freed

    @property
    def free(self) -> int:
        return self.capacity - self.used - len(self._waiting)

    async def acquire(self) -> None:
        if self.used < self.capacity and not self._waiting:
            self.used += 1
            return
        turn = anyio.Event()
        self._waiting.append(turn)
        try:
            await turn.wait()  # release() hands its slot over
        except BaseException:
            if turn in self._waiting:
                self._waiting.remove(turn)
            elif turn.is_set():
                self.release()
            raise

    def take(self) -> None:
        self.used += 1

    def release(self) -> None:
        if self._waiting and self.used <= self.capacity:
            self._waiting.popleft().set()
        else:
            self.used -= 1
            self._on_release()


class SlotHold:
    """One shot's hold on a slot: taking or releasing twice does nothing twice."""

    def __init__(self, slots: Slots):
        self.slots = slots
        self.held = False

    async def acquire(self) -> None:
        if not self.held:
            await self.slots.acquire()
            self.held = True

    def take(self) -> None:
        if not self.held:
            self.slots.take()
            self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.slots.release()
