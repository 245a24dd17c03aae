"""How long a run waits out an unreachable provider, and the error when it gives up.

Apart from ``reach.py`` (the gate shots wait at, on the event loop, beside the
provider clients) so that a run's options can be built, and a rerun with nothing
to do can end, without loading HTTP clients or the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from .backoff import Backoff


class Unreachable(Exception):
    """The endpoint stayed unreachable past the run's patience."""


@dataclass(frozen=True)
class ReachPolicy:
    """How long a run keeps trying through an outage, and how often it probes."""

    patience: float = 300.0  # wall seconds of continuous outage before the run gives up
    backoff: Backoff = Backoff(base=1.0, factor=2.0, cap=15.0, attempts=0)  # wall seconds between probes
