"""Rate limits: sliding windows of admitted requests per (bucket, account)."""

from __future__ import annotations

from collections import deque
from typing import Callable, Hashable, Sequence

from .config import Rate


class RateBook:
    """Admits a request when every one of its rates still has room.

    Only admitted requests count, so a client that backs off after a 429 gets
    through as soon as the oldest admitted request leaves the window.
    """

    def __init__(self, now: Callable[[], float]):
        self._now = now
        self._admitted: dict[Hashable, deque[float]] = {}

    def admit(self, key: Hashable, rates: Sequence[Rate]) -> bool:
        if not rates:
            return True
        now = self._now()
        times = self._admitted.setdefault(key, deque())
        longest = max(r.seconds for r in rates)
        while times and times[0] <= now - longest:
            times.popleft()
        for rate in rates:
            if _count_since(times, now - rate.seconds) >= rate.count:
                return False
        times.append(now)
        return True


def _count_since(times: deque[float], cutoff: float) -> int:
    count = 0
    for t in reversed(times):  # newest first: stop at the first one out of the window
        if t <= cutoff:
            break
        count += 1
    return count
