"""One provider account: its quotas, and when to ask the provider about its tasks in flight.

The task watcher is the one place that decides when a task is asked about. While
an account has tasks in flight, one loop reads its task list once a cycle and
wakes the shots whose task the list shows ended; each of those is then asked on
its own once, for its video URL and usage (the list has neither). A task the
latest list shows in flight is not asked about; any other (the list failed, is
stale, cannot be read, or does not show it: another page, outside the window)
is polled on its own at quantiles of the learned generation times (polling.py),
as before there was a list.

Relied on from the list: that it shows the account's tasks created in the window
with their current state [sdk][capture] (DashScope; Freepik: its newest page
[doc][guess]), and that a task it shows PENDING or RUNNING is still in flight as of
the answer [guess: the list is as fresh as a task query]. Not relied on: that every
task is on it (absence means nothing), nor anything it says of results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Mapping, TypeVar

import anyio
from anyio.abc import TaskGroup

from ..catalog import registry
from ..providers.base import ProviderError, Provider, TaskStatus, Transient
from .adopt import Strangers
from .pacing import RateLimit, Slots
from .polling import PollPolicy, relevant
from .reach import Reaches, Unreachable, retrying
from .work import Job, RunContext, Stalled

T = TypeVar("T")

# The list cycle, provider seconds: this fraction of the youngest in-flight task's age,
# so a finish is seen within a few per cent of any task's generation time ...
CYCLE_FRACTION = 0.01
CYCLE_MIN = 1.0  # ... but no list more often than this (5 % of DashScope's 20 queries/s)
CYCLE_MAX = 15.0  # ... nor less often than the provider's recommended poll interval
# Lists (each page a query) may take at most this share of the account's query rate,
# in wall seconds, so several runs and hosts on one account fit beside each other.
LIST_SHARE = 0.25
FALLBACK_NOTED = 3  # failed lists in a row before the log says the tasks are polled on their own
STALE_CYCLES = 4.0  # a list older than this many cycles vouches for nothing (a busy loop runs late)
# A cycle, for that: the loop's sleep plus the time its last list took to answer. A list
# slower than the sleep (a short cycle, a loaded machine) would otherwise never be fresh,
# and every task in flight would be asked about on its own besides.


@dataclass
class _Flight:
    """A task in flight that a shot waits on."""

    anchor: float  # anyio time of its submission
    joined: float  # anyio time the shot began waiting on it
    ended: anyio.Event = field(default_factory=anyio.Event)  # the list shows it ended


@dataclass
class _Listing:
    """What the latest good task list showed, and when (anyio time)."""

    at: float = float("-inf")
    in_flight: frozenset[str] = frozenset()


WINDOW_MARGIN = 60.0  # provider seconds around the window: clocks and whole-second bounds


async def _cannot_list(since: float, until: float) -> None:
    """A provider client without a task list."""
    return None


class TaskWatcher:
    """Follows an account's tasks to their end, inside the account's query rate."""

    def __init__(self, run: RunContext, queries: RateLimit, reaches: Reaches, name: str = ""):
        self._run = run
        self._name = name  # the account as the manifest names it, for the log ("": the provider's one account)
        self._queries = queries
        self._reaches = reaches
        self._watching: dict[str, anyio.Event] = {}  # task id -> set when a shared watch of it ended
        self._ended: dict[str, TaskStatus] = {}
        self._flights: dict[str, _Flight] = {}
        self._listing = _Listing()
        self._cycle = 0.0  # wall seconds of the list loop's current cycle
        self._answer = 0.0  # wall seconds its last list took to answer
        self._looping = False
        self._can_list = True
        self._group: TaskGroup | None = None

    def attach(self, group: TaskGroup) -> None:
        """Where the list loop runs; without one, every task is polled on its own."""
        self._group = group

    async def query(self, provider: Provider, call: Callable[[], Awaitable[T]]) -> T:
        """A task query (status, list), inside the account's query rate, retried generously."""
        backoff = self._run.options.query_backoff.scaled(provider.time.scale)
        return await retrying(call, backoff, self._run.rng, self._queries, self._reaches.of(provider))

    async def follow(self, job: Job, provider: Provider, task_id: str, since: float | None) -> TaskStatus:
        """Wait until a task ends: woken by the account's list loop, or polled on its own
        when the list does not vouch for it. Trouble asking (an outage) is waited out up
        to the patience; then the run lets go."""
        scale = provider.time.scale
        anchor = anyio.current_time() - (time.time() - since if since else 0.0)
        flight = self._flights[task_id] = _Flight(anchor, anyio.current_time())
        self._start_loop(provider)
        try:
            samples = relevant(self._run.ledger.timings(job.provider, job.model), job.resolution, job.duration)
            return await self._follow(provider, task_id, flight, self._run.options.poll, samples, scale)
        finally:
            if self._flights.get(task_id) is flight:
                del self._flights[task_id]

    async def _follow(self, provider: Provider, task_id: str, flight: _Flight, poll: PollPolicy, samples: list[float], scale: float) -> TaskStatus:
        rebased = False
        last_asked = float("-inf")
        points = poll.times(samples)
        elapsed = next(points)
        while True:
            if elapsed > self._run.options.patience:
                raise Stalled(f"task {task_id} is not done after {self._run.options.patience:.0f} s; a later run resumes it")
            due = flight.anchor + elapsed * scale
            if due <= last_asked:  # a point that passed while we waited or were away
                elapsed = next(points)
                continue
            woken = False
            if due > anyio.current_time():
                with anyio.move_on_after(due - anyio.current_time()):
                    await flight.ended.wait()
                    woken = True
            if not woken and self._vouched(task_id, flight):
                elapsed = next(points)  # the list sees it in flight: no need to ask
                continue
            if not woken:
                elapsed = next(points)
            flight.ended = anyio.Event()  # asked now; the list may wake it again
            last_asked = anyio.current_time()
            try:
                status = await self.query(provider, lambda: provider.status(task_id))
            except Transient:
                continue  # an outage: keep to the schedule, which widens
            if status.state in ("pending", "running"):
                if status.state == "running" and status.started and not rebased:
                    # Generation began when the provider says, not when we asked.
                    flight.anchor = anyio.current_time() - (provider.time.now() - status.started) * scale
                    rebased = True
                continue
            return status

    def _vouched(self, task_id: str, flight: _Flight) -> bool:
        """The latest list, recent enough, shows the task in flight, or was read before
        the shot began waiting on it (the next list will show it, or not)."""
        fresh = anyio.current_time() - self._listing.at <= STALE_CYCLES * max(self._cycle + self._answer, 1e-3)
        return fresh and (task_id in self._listing.in_flight or self._listing.at < flight.joined)

    def _start_loop(self, provider: Provider) -> None:
        if self._looping or not self._can_list or self._group is None:
            return
        self._looping = True
        self._listing = _Listing(anyio.current_time())  # tasks joining now wait for its first list
        self._group.start_soon(self._list_loop, provider)

    async def _list_loop(self, provider: Provider) -> None:
        """While tasks are in flight: read the task list once a cycle, wake the ended."""
        scale = provider.time.scale
        floor = self._queries.period / (LIST_SHARE * self._queries.count)  # wall seconds per list, within the share
        failures = 0
        try:
            while self._flights:
                now = anyio.current_time()
                youngest = min((now - f.anchor) / scale for f in self._flights.values())
                cycle = min(CYCLE_MAX, max(CYCLE_MIN, CYCLE_FRACTION * youngest)) * 2.0 ** min(failures, 3)
                # Never shorter than the last list took to answer: a slow answer (a busy provider,
                # a loaded machine) is not asked again at once, so the loop never spins.
                self._cycle = max(cycle * scale, floor, self._answer)
                await anyio.sleep(self._cycle)
                if not self._flights:
                    break
                oldest = min(f.anchor for f in self._flights.values())
                until = provider.time.now()
                since = until - (anyio.current_time() - oldest) / scale
                asked = anyio.current_time()
                try:
                    await self._queries.acquire()
                    states = await getattr(provider, "list_states", _cannot_list)(since - WINDOW_MARGIN, until + WINDOW_MARGIN)
                except Exception as error:  # noqa: BLE001 - the list only spares queries: any surprise in it falls back, never ends the run
                    failures += 1  # the tasks' own schedules carry on meanwhile
                    self._listing = _Listing()
                    if failures == FALLBACK_NOTED:
                        self._run.log.note(
                            f"{provider.name} account {self._name or provider.account}: the task list failed {failures} times running"
                            f" ({type(error).__name__}); each task is asked about on its own until it answers",
                            event="list_fallback", level="warning",
                        )
                    continue
                if states is None:
                    self._can_list = False
                    return
                if failures >= FALLBACK_NOTED:
                    self._run.log.note(f"{provider.name} account {self._name or provider.account}: the task list answers again", event="list_recovered")
                failures = 0
                self._answer = anyio.current_time() - asked
                self._listing = _Listing(asked, frozenset(t for t, s in states.items() if s in ("pending", "running")))
                for task_id, flight in list(self._flights.items()):
                    if states.get(task_id, "running") not in ("pending", "running"):
                        flight.ended.set()
        finally:
            self._looping = False
            self._listing = _Listing()

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
        watcher: Callable[[RateLimit, str], TaskWatcher], on_release: Callable[[], None] = lambda: None,
    ):  # fmt: skip
        self.id = id  # as the ledger records it: "provider:name", or the key's hash for a provider's one account
        self.name = name  # as the manifest names it; "" for the provider's one account
        self.provider = provider
        self.endpoint = endpoint  # the provider's base URL as planned (a simulator may answer in its place)
        self.slots = Slots(int(quota["in_progress"]), on_release)
        self.submits = RateLimit.per_second(quota["submits_per_second"])
        self.watcher = watcher(RateLimit.per_second(quota["queries_per_second"]), name)  # its own query rate, its own list loop
        table = registry.table(provider.name)
        self.resubmit_codes: tuple[str, ...] = table.resubmit_codes
        self.reupload_codes: tuple[str, ...] = table.reupload_codes
        self.adoption = Adoption()
        self.lost: str | None = None  # why it was taken out of the pool (its queued shots went elsewhere)

    @property
    def label(self) -> str:
        return self.name or self.provider.name
