"""When to ask about a task: around its expected finish, learned from past tasks.

A fixed clock wastes queries early and notices the finish late. Instead the
runner keeps the generation times of past tasks (per model, in the ledger) and
polls at quantiles of that distribution: a model that always takes two
minutes is asked once, just after two minutes; a spread-out one a handful of
times across its spread. Past the slowest time seen, the gaps widen up to the
provider's recommended interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

QUANTILES = (0.1, 0.3, 0.5, 0.65, 0.8, 0.9, 0.97)
MIN_SAMPLES = 3  # fewer: use the prior
SLACK = 0.005  # poll this fraction after a predicted finish, so the task is done by then


@dataclass(frozen=True)
class PollPolicy:
    """When a task is asked about: the first question, the widest gap, the narrowest."""

    first: float = 30.0  # prior: the first question, provider seconds after the start
    interval: float = 15.0  # the provider's recommended interval, and the widest gap
    min_gap: float = 1.0

    def times(self, samples: Sequence[float]) -> Iterator[float]:
        """Seconds after a task's start at which to poll it; endless."""
        if len(samples) < MIN_SAMPLES:
            t = self.first
            while True:
                yield t
                t += self.interval
        ordered = sorted(samples)
        last = 0.0
        for q in QUANTILES:
            t = _quantile(ordered, q) * (1 + SLACK) + self.min_gap / 4
            if t >= last + self.min_gap:
                yield t
                last = t
        gap = max(self.min_gap, ordered[-1] * 0.02)
        t = max(last, ordered[-1]) + gap
        while True:
            yield t
            gap = min(self.interval, gap * 1.5)
            t += gap


def _quantile(ordered: Sequence[float], q: float) -> float:
    """The q-quantile, interpolated between the nearest samples."""
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def relevant(history: Sequence[tuple[str, int, float]], resolution: str, duration: int) -> list[float]:
    """Generation times of tasks like this one: same resolution and duration if there
    are enough, else every task of the model."""
    alike = [s for r, d, s in history if r == resolution and d == duration]
    return alike if len(alike) >= MIN_SAMPLES else [s for _, _, s in history]
