"""One provider account: its quotas, and when to ask the provider about its tasks in flight.

The task watcher is the one place that decides when a task is asked about.
Today each task is polled on its own, at quantiles of the generation times the
ledger learned (polling.py); asking once per account for all of its tasks can
take its place without the shots' walks noticing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Mapping, TypeVar

import anyio

from ..catalog import registry
from ..providers.base import ProviderError, Provider, TaskStatus, Transient
from .adopt import Strangers
from .pacing import RateLimit, Slots
from .polling import relevant
from .reach import Reaches, Unreachable, retrying
from .work import Job, RunContext, Stalled

T = TypeVar("T")


class TaskWatcher:
    """Follows an account's tasks to their end, inside the account's query rate."""

    def __init__(self, run: RunContext, queries: RateLimit, reaches: Reaches):
        self._run = run
        self._queries = queries
        self._reaches = reaches
        self._watching: dict[str, anyio.Event] = {}  # task id -> set when a shared watch of it ended
        self._ended: dict[str, TaskStatus] = {}

    async def query(self, provider: Provider, call: Callable[[], Awaitable[T]]) -> T:
        """A task query (status, list), inside the account's query rate, retried generously."""
        backoff = self._run.options.query_backoff.scaled(provider.time.scale)
        return await retrying(call, backoff, self._run.rng, self._queries, self._reaches.of(provider))

    async def follow(self, job: Job, provider: Provider, task_id: str, since: float | None) -> TaskStatus:
        """Poll a task until it ends, at the times the learned schedule gives. Trouble
        asking (an outage) is waited out up to the patience; then the run lets go."""
        scale = provider.time.scale
        anchor = anyio.current_time() - (time.time() - since if since else 0.0)
        samples = relevant(self._run.ledger.timings(job.provider, job.model), job.resolution, job.duration)
        rebased = False
        last_asked = float("-inf")
        for elapsed in self._run.options.poll.times(samples):
            if elapsed > self._run.options.patience:
                raise Stalled(f"task {task_id} is not done after {self._run.options.patience:.0f} s; a later run resumes it")
            due = anchor + elapsed * scale
            if due <= last_asked:  # a point that passed while we waited or were away
                continue
            if due > anyio.current_time():
                await anyio.sleep(due - anyio.current_time())
            last_asked = anyio.current_time()
            try:
                status = await self.query(provider, lambda: provider.status(task_id))
            except Transient:
                continue  # an outage: keep to the schedule, which widens
            if status.state in ("pending", "running"):
                if status.state == "running" and status.started and not rebased:
                    # Generation began when the provider says, not when we asked.
                    anchor = anyio.current_time() - (provider.time.now() - status.started) * scale
                    rebased = True
                continue
            return status
        raise AssertionError("poll times are endless")

    async def watch(self, job: Job, provider: Provider, task_id: str) -> None:
        """Follow a task to its end once, however many shots wait on it; ``ended`` says how."""
        done = self._watching.get(task_id)
        if done is not None:
            await done.wait()
            return
        done = self._watching[task_id] = anyio.Event()
        try:
            self._ended[task_id] = await self.follow(job, provider, task_id, None)
        except (Stalled, Transient, ProviderError, Unreachable):
            pass  # not seen to its end: not adopted by this run (a later run looks again)
        finally:
            done.set()

    @property
    def ended(self) -> Mapping[str, TaskStatus]:
        """Tasks a shared watch saw to their end, by id."""
        return self._ended


@dataclass
class Adoption:
    """The account's tasks the ledger does not know, read once a run (adopt.py)."""

    looking: anyio.Lock = field(default_factory=anyio.Lock)
    looked: bool = False
    strangers: Strangers | None = None
    unlooked: str | None = None  # why the task list could not be read


class Account:
    """One provider account, as the run uses it: the client that talks as it, the quotas
    its shots share, the watcher of its tasks, and whether it is still in the pool."""

    def __init__(
        self, id: str, name: str, provider: Provider, endpoint: str, quota: Mapping[str, float],
        watcher: Callable[[RateLimit], TaskWatcher], on_release: Callable[[], None] = lambda: None,
    ):  # fmt: skip
        self.id = id  # as the ledger records it: "provider:name", or the key's hash for a provider's one account
        self.name = name  # as the manifest names it; "" for the provider's one account
        self.provider = provider
        self.endpoint = endpoint  # the provider's base URL as planned (a simulator may answer in its place)
        self.slots = Slots(int(quota["in_progress"]), on_release)
        self.submits = RateLimit.per_second(quota["submits_per_second"])
        self.watcher = watcher(RateLimit.per_second(quota["queries_per_second"]))
        table = registry.table(provider.name)
        self.resubmit_codes: tuple[str, ...] = table.resubmit_codes
        self.reupload_codes: tuple[str, ...] = table.reupload_codes
        self.adoption = Adoption()
        self.lost: str | None = None  # why it was taken out of the pool (its queued shots went elsewhere)

    @property
    def label(self) -> str:
        return self.name or self.provider.name
