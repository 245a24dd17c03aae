"""Whether a provider endpoint can be reached, shared by every shot that talks to it.

An outage is not a failure: while connections to an endpoint fail, shots wait
at its gate instead of each spending its retries, one caller at a time probes
on a backoff, and every attempt is logged with its number and the wait. Once
the endpoint answers (anything: even a refusal is an answer) the gate opens for
all. If it stays unreachable past the patience the gate gives up: callers get
``Unreachable``, shots never sent stay planned for the next run, and the run
ends with its own exit status.
"""

from __future__ import annotations

import random
import time
from typing import Awaitable, Callable, TypeVar

import anyio

from ..providers.base import Provider, Transient
from .backoff import Backoff
from .pacing import RateLimit
from .reach_policy import ReachPolicy, Unreachable

T = TypeVar("T")


PROBE_TIMEOUT = 180.0  # a probe not heard of this long (its caller went away): let another through


class Reach:
    def __init__(self, name: str, note: Callable[[str, dict[str, object]], None], policy: ReachPolicy = ReachPolicy(), clock: Callable[[], float] = time.monotonic):
        self.name = name  # "dashscope https://…/api/v1", for messages
        self.policy = policy
        self._note = note
        self._clock = clock
        self.down_since: float | None = None
        self.attempts = 0
        self.last_error = ""
        self.gave_up = False
        self._next_try = 0.0
        self._probe_started: float | None = None

    @property
    def reason(self) -> str:
        return f"provider unreachable: {self.name}: {self.last_error}"

    async def gate(self) -> None:
        """Return when the endpoint may be asked; raises Unreachable once given up.
        While it is down, one caller at a time is let through as the probe."""
        while self.down_since is not None:
            if self.gave_up:
                raise Unreachable(self.reason)
            now = self._clock()
            idle = self._probe_started is None or now - self._probe_started > PROBE_TIMEOUT
            if idle and now >= self._next_try:
                self._probe_started = now
                return
            await anyio.sleep(max(0.05, min(0.5, self._next_try - now)))

    def failed(self, error: str) -> None:
        """A connection to the endpoint could not be made (nothing was sent)."""
        now = self._clock()
        if self.down_since is None:
            self.down_since, self.attempts = now, 0
        self.attempts += 1
        self._probe_started = None
        self.last_error = error
        delay = self.policy.backoff.delay(self.attempts - 1)
        left = self.policy.patience - (now - self.down_since)
        if left <= 0:
            self.gave_up = True
            self._note(
                f"giving up: {self.reason} for {now - self.down_since:.0f} s ({self.attempts} attempts); "
                "shots not sent stay planned and the next run tries again",
                {"attempt": self.attempts, "seconds": round(now - self.down_since, 1)},
            )
            return
        self._next_try = now + min(delay, left)
        self._note(
            f"{self.reason}; attempt {self.attempts}, next try in {min(delay, left):.1f} s (giving up in {left:.0f} s)",
            {"attempt": self.attempts, "wait": round(min(delay, left), 1)},
        )

    def answered(self) -> None:
        """The endpoint answered something: it is reachable."""
        self._probe_started = None
        if self.down_since is not None and not self.gave_up:
            self._note(
                f"provider reachable again: {self.name}, after {self._clock() - self.down_since:.0f} s",
                {"attempt": self.attempts},
            )
            self.down_since = None
            self.attempts = 0

    def abandon(self) -> None:
        """The probe's caller went away before it learned anything."""
        self._probe_started = None


class Reaches:
    """The reach of each endpoint a run talks to, made on first use and shared by its shots."""

    def __init__(self, note: Callable[[str, dict[str, object]], None], policy: ReachPolicy):
        self._note = note
        self._policy = policy
        self._by_endpoint: dict[str, Reach] = {}

    def of(self, provider: Provider) -> Reach:
        where = f"{provider.name} {provider.base_url}"
        if where not in self._by_endpoint:
            self._by_endpoint[where] = Reach(where, self._note, self._policy)
        return self._by_endpoint[where]

    @property
    def given_up(self) -> list[str]:
        """Why each endpoint this run gave up on could not be reached."""
        return [reach.reason for reach in self._by_endpoint.values() if reach.gave_up]


async def retrying(
    call: Callable[[], Awaitable[T]], backoff: Backoff, rng: random.Random, limit: RateLimit | None = None, reach: Reach | None = None
) -> T:
    """``call`` until it answers. Failures to connect at all are the endpoint's
    reach's business (it paces them and gives up with Unreachable); other
    transient trouble is retried on the backoff, a bounded number of times."""
    last: Transient | None = None
    attempt = 0
    while attempt < backoff.attempts:
        if reach is not None:
            await reach.gate()
        if limit is not None:
            await limit.acquire()
        try:
            result = await call()
        except Transient as error:
            last = error
            if error.unreachable and reach is not None:
                reach.failed(str(error))
                continue
            if reach is not None:
                reach.answered()
            if error.throttled and limit is not None:
                limit.pause(backoff.delay(0, error.retry_after, rng))
            await anyio.sleep(backoff.delay(attempt, error.retry_after, rng))
            attempt += 1
            continue
        except Exception:
            if reach is not None:
                reach.answered()  # a refusal is an answer: let the next caller through
            raise
        except BaseException:
            if reach is not None:
                reach.abandon()  # cancelled: another caller may probe
            raise
        if reach is not None:
            reach.answered()
        return result
    raise last or Transient("queries kept failing")
