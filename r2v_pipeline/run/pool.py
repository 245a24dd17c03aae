"""The accounts a run may send through, and which one each shot takes.

* a shot not yet sent takes a free slot on any live account it may use (its pin,
  else every account of its target whose region serves its model), preferring
  one that still holds its uploads (uploads are bound to account and model),
  then the one with the most free slots; when none is free it waits for one;
* a task is followed through the account that made it, named by the ledger row,
  in this run or a later one;
* an account whose refusal says the account itself is at fault (401/403, an unpaid
  bill, a spent quota: the provider table's ``account_lost``) leaves the pool for
  the rest of the run: shots waiting for a slot go elsewhere, its tasks in flight
  are still followed and downloaded.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from typing import Any, Mapping, Sequence

import anyio
from anyio.abc import TaskGroup

from ..catalog import registry
from ..plan.planner import PlannedShot
from ..providers.base import Provider
from .pacing import SlotHold
from .reach import Reaches
from .task_watch import Account, TaskWatcher
from .work import NotSent, RunContext, Stalled

UPLOAD_MARGIN = 600.0  # provider seconds an upload must still live to count as held


class AccountLost(Exception):
    """A submit the provider refused for the account's sake: nothing was made or billed,
    and the shot is sent through another account."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def named_id(provider: str, name: str, endpoint: str) -> str:
    """A named account's ledger id: its name and a hash of its endpoint. Not its key: every
    key of an account shares its quotas and sees its tasks (the unit is the account), so
    hosts holding different keys of one account count its slots together and follow each
    other's tasks, and a rotated key follows the tasks the old one made. A key that now
    belongs to another account is harmless: the provider does not know the task, and an
    unknown task younger than the provider keeps tasks is left for a later run, never
    sent again."""
    digest = hashlib.sha256(endpoint.encode()).hexdigest()
    return f"{provider}:{name}:{digest[:12]}"



def provider_key(provider: str, base_url: str, account: str) -> tuple[str, str, str]:
    """How a run's clients are keyed: one per provider, endpoint and account."""
    return (provider, base_url, account)


class Pool:
    """Every account the run's shots may use, made once each, and the choice among them."""

    def __init__(self, run: RunContext, reaches: Reaches, providers: Mapping[tuple[str, str, str], Provider], shots: Sequence[PlannedShot]):
        self._run = run
        self._providers = providers
        self._watcher = lambda queries, name: TaskWatcher(run, queries, reaches, name)
        self._by_key: dict[tuple[str, str, str], Account] = {}
        self._by_id: dict[str, Account] = {}  # ledger account -> account (a named account also by its key's hash)
        # Shots waiting for a free slot, first come first served: (ticket, shot, wake-up).
        # A freed slot wakes one shot that may use it, not every shot waiting.
        self._waiting: list[tuple[int, PlannedShot, anyio.Event]] = []
        self._tickets = itertools.count()
        self._group: TaskGroup | None = None
        for shot in shots:
            for name in shot.accounts:
                self.member(shot, name)

    def member(self, shot: PlannedShot, name: str) -> Account:
        target = shot.target.account(name)
        key = provider_key(shot.target.provider, target.base_url, name)
        found = self._by_key.get(key)
        if found is None:
            provider = self._providers[key]
            ledger_id = named_id(provider.name, name, target.base_url) if name else provider.account
            found = self._by_id.get(ledger_id)
            if found is None:
                quota = {**registry.table(provider.name).quota, **target.quota}
                found = Account(ledger_id, name, provider, target.base_url, quota, self._watcher, self._notify)
                if self._group is not None:
                    found.watcher.attach(self._group)
                self._by_id[ledger_id] = found
                self._by_id.setdefault(provider.account, found)  # rows an unnamed run of the same key wrote
            self._by_key[key] = found
        return found

    def attach(self, group: TaskGroup) -> None:
        """Where the accounts' task-list loops run (the run's task group): one loop per
        account, each inside its own account's query rate."""
        self._group = group
        for account in self.accounts:
            account.watcher.attach(group)

    def first(self, shot: PlannedShot) -> Account:
        """The account a new ledger row names until the shot is sent (and maybe moved)."""
        return self.member(shot, shot.accounts[0])

    def candidates(self, shot: PlannedShot) -> list[Account]:
        return [self.member(shot, name) for name in shot.accounts]

    @property
    def accounts(self) -> list[Account]:
        return list({id(a): a for a in self._by_key.values()}.values())

    def bound(self, ledger_account: str) -> Account:
        """The account that made a task, to follow it through: in this run or a later one."""
        found = self._by_id.get(ledger_account)
        if found is None:
            # A named account's rows of an older id form (its name alone; its name and a hash
            # of key and endpoint) are followed through the account of that name: a task sent
            # to another endpoint never gets here (the plan's decision sends it elsewhere).
            provider, _, rest = ledger_account.partition(":")
            name = rest.partition(":")[0]
            found = next((a for a in self.accounts if name and a.name == name and a.provider.name == provider), None)
        if found is None:
            raise Stalled(
                f"its task was made through account {ledger_account}, which this run has no key for; "
                "name that account in provider.accounts again to follow the task"
            )
        return found

    async def choose(self, shot: PlannedShot) -> tuple[Account, SlotHold]:
        """A live account with a free slot, the slot held. Raises NotSent when every account
        the shot may use is out of the pool (nothing was sent through it). Shots waiting
        for a slot get one in the order they began to wait."""
        ticket: int | None = None
        while True:
            accounts = self.candidates(shot)
            alive = [a for a in accounts if a.lost is None]
            if not alive:
                why = "; ".join(f"{a.label}: {a.lost}" for a in accounts)
                pinned = "its pinned account is" if shot.pinned else "every account it may use is"
                raise NotSent(f"{pinned} out of the pool ({why}); nothing sent")
            free = [a for a in alive if a.slots.free > 0]
            if free:
                best = max(free, key=lambda a: (self._holds_uploads(shot, a), a.slots.free / a.slots.capacity, -alive.index(a)))
                hold = SlotHold(best.slots)
                hold.take()
                if ticket is not None:
                    self._wake()  # woken for one account's slot, it may have taken another's
                return best, hold
            if ticket is None:
                ticket = next(self._tickets)
            entry = (ticket, shot, anyio.Event())
            heapq.heappush(self._waiting, entry)
            try:
                await entry[2].wait()
            except BaseException:
                if entry in self._waiting:
                    self._waiting.remove(entry)
                    heapq.heapify(self._waiting)
                else:
                    self._wake()  # its wake-up passes to the next shot
                raise

    def lose(self, account: Account, error: AccountLost, key: str) -> None:
        """Take an account out of the pool for the rest of the run."""
        if account.lost is None:
            account.lost = f"{error.code}: {error.message}"
            self._run.log.note(
                f"account {account.label} is out of the pool for this run ({account.lost}); its queued shots go to the other accounts, "
                "its tasks in flight are still followed",
                "account lost", level="warning",
            )  # fmt: skip
            self._run.log.event(key, "account lost", account=account.label, code=error.code, message=error.message)
        self._wake(everyone=True)

    @property
    def all_looked_over(self) -> bool:
        """Some account's task list was read, and every one that was read could be."""
        looked = [a.adoption for a in self.accounts if a.adoption.looked]
        return bool(looked) and not any(a.unlooked for a in looked)

    def summary(self) -> list[dict[str, Any]]:
        """Each account the run could use, for the report."""
        return [{"account": a.label, "ledger_id": a.id, "slots": a.slots.capacity, "lost": a.lost} for a in self.accounts]

    def _notify(self) -> None:
        """A slot freed: the first shot waiting that may use it looks again."""
        self._wake()

    def _wake(self, everyone: bool = False) -> None:
        """Wake the waiting shots, in their order, that a free slot can serve: one per
        slot (``everyone``: all of them, an account having left the pool). A shot none of
        whose accounts is alive is woken too: it is told so."""
        budget = {id(a): a.slots.free for a in self.accounts if a.lost is None}
        passed = []
        while self._waiting and (everyone or any(n > 0 for n in budget.values())):
            entry = heapq.heappop(self._waiting)
            alive = [a for a in self.candidates(entry[1]) if a.lost is None]
            pick = next((a for a in alive if budget.get(id(a), 0) > 0), None)
            if pick is None and alive and not everyone:
                passed.append(entry)  # its accounts are full: it keeps its place
                continue
            if pick is not None:
                budget[id(pick)] -= 1
            entry[2].set()
        for entry in passed:
            heapq.heappush(self._waiting, entry)

    def _holds_uploads(self, shot: PlannedShot, account: Account) -> bool:
        uploads = [f.info.sha256 for url, f in shot.files.items() if shot.transports.get(url) == "upload"]
        if not uploads:
            return False
        alive_until = account.provider.time.now() + UPLOAD_MARGIN
        return all(self._run.ledger.upload(sha, account.provider.account, shot.spec.model, alive_until) for sha in uploads)
