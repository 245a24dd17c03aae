"""How long to wait before trying again: pure arithmetic, no event loop.

Apart from ``pacing.py`` so that a run's options (``work.py``) can be built,
and a rerun with nothing to do can end, without loading the async machinery.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter; a server's Retry-After is a floor."""

    base: float = 1.0
    factor: float = 2.0
    cap: float = 60.0
    attempts: int = 8

    def delay(self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        ceiling = min(self.cap, self.base * self.factor**attempt)
        jittered = (rng or random).uniform(ceiling / 2, ceiling)
        return max(jittered, retry_after or 0.0)

    def scaled(self, scale: float) -> Backoff:
        return Backoff(self.base * scale, self.factor, self.cap * scale, self.attempts)
