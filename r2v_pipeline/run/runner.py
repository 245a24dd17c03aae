"""A run: every shot this run carries, walked to its end at once, inside the quotas.

The parts, each in its own file: the per-shot state machine (shot_machine.py)
decides what happens next to one shot; the submitter (submitter.py) sends a
request so it is paid for once and records how its task ended; the task
watcher of each account (task_watch.py) decides when the provider is asked
about tasks in flight; the downloader (downloader.py) keeps paid videos.
"""

from __future__ import annotations

import random
import statistics
from typing import Any, Mapping, Sequence

import anyio
import httpx

from ..plan.planner import Plan, PlannedShot
from ..providers.base import Provider
from ..providers.http import download_client
from .actions import Stores
from .downloader import Downloader
from .ledger_store import LedgerStore, ShotRecord
from .polling import relevant
from .progress import BoardShot, Log
from .reach import Reaches
from .shot_machine import ShotMachine
from .submitter import Submitter
from .pool import Pool, provider_key
from .states import ShotStatus
from .work import RunContext, RunOptions, RunResult, Work, shots_needing_providers

HEARTBEAT = 10.0  # wall seconds between the run's signs of life in the ledger


class Runner:
    def __init__(
        self, plan: Plan, ledger: LedgerStore, log: Log, work: list[Work], orphans: Sequence[tuple[PlannedShot, ShotRecord]],
        providers: Mapping[tuple[str, str, str], Provider],
        options: RunOptions = RunOptions(), stores: Stores | None = None, downloads: httpx.AsyncClient | None = None,
    ):  # fmt: skip
        self.plan = plan
        self.ledger = ledger
        self.log = log
        self.work = work
        self.providers = providers
        self.options = options
        self.stores = stores or Stores()
        self.downloads = downloads or download_client()
        self.orphans = orphans  # earlier versions' paid tasks to fetch aside (work.orphan_rows)
        # What the run learns, kept here so that a run stopped by a signal still tells it.
        self._reaches = Reaches(lambda message, fields: log.note(message, "unreachable", level="warning", **fields), options.reach)
        self._recovered: list[dict[str, Any]] = []
        self._environment: list[str] = []
        self._pool: Pool | None = None

    def result(self) -> RunResult:
        """What the run did so far (all of it, once ``run`` returned or was stopped)."""
        accounts = self._pool.summary() if self._pool is not None else []
        return RunResult(self.work, list(self._recovered), self._reaches.given_up, list(self._environment), accounts)

    async def run(self) -> RunResult:
        # The parts hold events and locks: made inside the event loop.
        run = RunContext(self.ledger, self.log, self.options, random.Random(self.options.seed))
        needed = shots_needing_providers(self.work, list(self.orphans))  # the shots the providers were built for
        accounts = self._pool = Pool(run, self._reaches, self.providers, needed)
        submitter = Submitter(run, self.plan.shots, self.work, self._reaches, self.stores)
        downloader = Downloader(run, self.downloads, self.stores, self.plan.currency, self._environment)
        machine = ShotMachine(run, self.work, accounts, submitter, downloader, self.stores, self._recovered)
        self.log.expect(sum(1 for w in self.work if w.carried), [self._board_shot(w.shot) for w in self.work if w.carried])
        async with anyio.create_task_group() as group:
            group.start_soon(self._heartbeat)
            group.start_soon(self._tick)
            accounts.attach(group)
            async with anyio.create_task_group() as shots:
                for shot, record in self.orphans:
                    shots.start_soon(machine.recover, record, shot)
                # Tasks already in progress first: they hold provider slots now.
                for w in sorted(self.work, key=lambda w: not w.action.in_flight):
                    if w.carried:
                        shots.start_soon(machine.place if w.offline else machine.carry, w)
                    else:
                        w.status = ShotStatus.settled(w.action)
            group.cancel_scope.cancel()
        if submitter.fresh and accounts.all_looked_over:
            self.ledger.looked_over()  # the provider's tasks are known now: later runs need not look
        return self.result()

    def _board_shot(self, shot: PlannedShot) -> BoardShot:
        """What the board shows before the shot starts: its account (when it can go through
        only one; else the one it is sent through, from its "submitted" event), and how long
        tasks like it took (the generation times the poll schedule learns, in wall seconds)."""
        name = shot.accounts[0]
        provider = self.providers.get(provider_key(shot.target.provider, shot.target.account(name).base_url, name))
        samples = relevant(self.ledger.timings(shot.spec.provider, shot.spec.model), shot.resolution, int(shot.billed.output))
        scale = provider.time.scale if provider is not None else 1.0
        expected = statistics.median(samples) * scale if samples else None
        account = (name or provider.account) if provider is not None and len(shot.accounts) == 1 else None
        return BoardShot(shot.key, shot.take, account, expected, float(shot.billed.total))

    async def aclose(self) -> None:
        await self.downloads.aclose()
        for provider in self.providers.values():
            await provider.aclose()

    async def _heartbeat(self) -> None:
        while True:
            await anyio.sleep(HEARTBEAT)
            self.ledger.heartbeat()

    async def _tick(self) -> None:
        while True:
            await anyio.sleep(1.0)
            self.log.tick()
