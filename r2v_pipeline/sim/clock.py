"""Simulated time: provider seconds that run ``1 / time_scale`` times as fast as the wall
clock, and can be jumped forward; plus the providers' time formats."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Callable

import anyio

BEIJING = timezone(timedelta(hours=8))  # DashScope writes times in Beijing time [doc]
LIST_TIME = "%Y%m%d%H%M%S"  # the task list's start_time / end_time parameters [sdk]


class SimClock:
    """Provider time = start wall time + elapsed wall time / scale + advances.

    ``advance`` and the sleeps must run on the simulator's event loop thread.
    """

    def __init__(self, scale: float, origin: float | None = None):
        self.scale = scale
        self.origin = time.time() if origin is None else origin
        self._start = time.monotonic()
        self._offset = 0.0
        self._changed: anyio.Event | None = None
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        """Provider time, as epoch seconds."""
        return self.origin + (time.monotonic() - self._start) / self.scale + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._offset += seconds
        if self._changed is not None:
            self._changed.set()
            self._changed = None
        for listener in self._listeners:
            listener()

    def on_advance(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def wall_seconds(self, provider_seconds: float) -> float:
        return provider_seconds * self.scale

    async def sleep_until(self, when: float) -> None:
        """Sleep until provider time ``when``; an advance wakes the sleeper early."""
        while (delay := (when - self.now()) * self.scale) > 0:
            if self._changed is None:
                self._changed = anyio.Event()
            changed = self._changed
            with anyio.move_on_after(delay):
                await changed.wait()

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self.now() + seconds)


def beijing_time(t: float) -> str:
    """'2025-12-16 00:25:59.869': the format of submit_time, scheduled_time, end_time."""
    moment = datetime.fromtimestamp(t, BEIJING)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def epoch_ms(t: float) -> int:
    return round(t * 1000)


def parse_list_time(text: str) -> float:
    """A task list bound, YYYYMMDDhhmmss in Beijing time [guess: the zone of every other DashScope time]."""
    return datetime.strptime(text, LIST_TIME).replace(tzinfo=BEIJING).timestamp()


def format_list_time(t: float) -> str:
    return datetime.fromtimestamp(t, BEIJING).strftime(LIST_TIME)
