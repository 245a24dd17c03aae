"""Sending a shot's request so that it is paid for once: submit, classify, reconcile, adopt.

* a submit is retried only when it provably created no task (never reached the
  server, or the provider itself answered 429/5xx); a submit that may have
  arrived is reconciled against the provider's task list, or reported as
  ambiguous;
* a FAILED task is submitted again only for transient codes, a bounded number
  of times (failed tasks are not billed);
* on a fresh ledger (lost, deleted, corrupt), a task the provider already made
  for a shot is adopted instead of paying again (adopt.py).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any, Sequence

import anyio

from ..plan.planner import PlannedShot
from ..plan.pricing import cost
from ..providers.base import (
    Busy,
    ListedTask,
    Prepared,
    Provider,
    ProviderError,
    Refused,
    Submitted,
    TaskStatus,
    Transient,
    Unknown,
    Unsendable,
    Unsent,
)
from ..catalog import registry
from .actions import Stores
from .adopt import DAY, Strangers, signature
from .ledger_store import LedgerUnreachable, TaskTaken, sent_through
from .pacing import SlotHold
from .reach import Reaches, Unreachable, retrying
from .states import Action, Reconciled
from .pool import AccountLost
from .task_watch import Account
from .work import Job, NotSent, RunContext, Stalled, Work

RECONCILE_MARGIN = 15 * 60.0  # provider seconds around an unanswered submit to look for its task (clocks drift)
WITNESS_AGE = DAY - 3600.0  # provider seconds: a task the provider still lists, with an hour to spare for clocks


class Submitter:
    """Submits the shots of one run and records what became of their tasks."""

    def __init__(self, run: RunContext, shots: Sequence[PlannedShot], work: Sequence[Work], reaches: Reaches, stores: Stores):
        self._run = run
        self._shots = shots
        self._reaches = reaches
        self._stores = stores
        self.fresh = run.ledger.fresh  # the ledger may not know tasks already made: adopt before paying
        self._claimed: set[str] = set()  # task ids adopted by reconciliation in this run
        self._seen_keys: set[tuple[str, str]] = set()  # (this run's key, another key), hashes: shown to share an account
        self._sent_at: dict[str, float] = {}  # fingerprint -> monotonic time this run last sent its submit
        self._twins: dict[Any, list[PlannedShot]] = {}  # what the provider shows -> planned shots alike in it, in order
        for shot in shots:
            self._twins.setdefault(signature(shot), []).append(shot)
        # fingerprint -> set once its submit has an answer (or none is coming); set at
        # once for shots this run will not submit: twins wait only on those it will.
        self._answered: dict[str, anyio.Event] = {}
        for w in work:
            answered = self._answered.setdefault(w.shot.fingerprint, anyio.Event())
            if w.action not in (Action.SUBMIT, Action.RECONCILE):
                answered.set()

    def answered(self, shot: PlannedShot) -> None:
        self._answered[shot.fingerprint].set()

    # --- submitting --------------------------------------------------------------

    async def submit(self, shot: PlannedShot, provider: Provider, account: Account, slot: SlotHold, fresh_uploads: bool = False) -> bool:
        """Submit until a task exists (True, holding a slot) or the shot is settled otherwise
        (False). Raises NotSent when the provider stays unreachable or busy: no task exists."""
        lost = False
        try:
            return await self._submit_in_turn(shot, provider, account, slot, fresh_uploads)
        except AccountLost:
            lost = True  # nothing was made: the shot is sent through another account, still before its later twins
            raise
        finally:
            if not lost:
                self.answered(shot)

    async def turn(self, shot: PlannedShot) -> None:
        """Takes the provider cannot tell apart (see adopt.py) are sent in take order, each
        after the one before it has its answer: a lost ledger then pairs them with their
        tasks by creation time without doubt. Waited for before a slot is taken, so a
        later take never holds a slot its earlier twin waits for."""
        for twin in self._twins.get(signature(shot), []):
            if twin.fingerprint == shot.fingerprint:
                break
            await self._answered[twin.fingerprint].wait()

    async def _submit_in_turn(self, shot: PlannedShot, provider: Provider, account: Account, slot: SlotHold, fresh_uploads: bool) -> bool:
        await self.turn(shot)  # at once when the caller waited for its turn already
        reach = self._reaches.of(provider)
        await slot.acquire()
        try:
            # Prepared only now, with a slot: files are read (and checked against the
            # plan) just before they are sent, and few bodies wait in memory at once.
            # Uploads have their own, far looser limit (100/s): not the task-query budget.
            backoff = self._run.options.query_backoff.scaled(provider.time.scale)
            prepared = await retrying(lambda: provider.prepare(shot.request, fresh_uploads), backoff, self._run.rng, reach=reach)
        except (ProviderError, Unsendable, OSError) as error:
            slot.release()
            if isinstance(error, ProviderError) and registry.table(provider.name).account_lost(None, error.code):
                raise AccountLost(error.code, error.message) from None  # the account's key, not the shot: nothing recorded
            self._run.ledger.failed(shot.fingerprint, getattr(error, "code", "Unsendable"), str(error))
            self._run.log.event(shot.key, "failed", message=str(error))
            return False
        except Unreachable as error:
            slot.release()
            raise NotSent(str(error)) from None
        backoff = self._run.options.submit_backoff.scaled(provider.time.scale)
        tries = 0  # answers that made no task; a connection never made does not count (the gate paces those)
        while True:
            try:
                await reach.gate()
            except Unreachable as error:
                slot.release()
                raise NotSent(str(error)) from None
            await account.submits.acquire()
            while not self._run.ledger.start_submit(shot.fingerprint, account.id, account.slots.capacity, account.endpoint, key=provider.account):
                await anyio.sleep(self._run.options.poll.interval * provider.time.scale)  # another run's tasks fill the account
            outcome = await self._send(provider, prepared, shot.fingerprint)
            if isinstance(outcome, Unsent) and outcome.unreachable:
                self._run.ledger.not_submitted(shot.fingerprint, "Unreachable", outcome.message)
                reach.failed(outcome.message)
                continue
            if not isinstance(outcome, Unsent):
                reach.answered()
            if isinstance(outcome, Submitted):
                try:
                    self._run.ledger.submitted(shot.fingerprint, outcome.task_id, account.id, shot.spec.model, key=provider.account)
                except LedgerUnreachable:
                    # Paid, and not recorded: said here, and the row stays 'submitting', so the
                    # next run reconciles it with the provider's task list instead of paying again.
                    self._run.log.event(shot.key, "submitted, not recorded", task=outcome.task_id, message="the ledger cannot be reached")
                    raise
                self._run.log.event(shot.key, "submitted", task=outcome.task_id, account=account.name or provider.account)
                return True
            if isinstance(outcome, Refused) and registry.table(provider.name).account_lost(outcome.status, outcome.code):
                slot.release()  # refused for the account's sake: nothing was made; the shot goes elsewhere
                self._run.ledger.not_submitted(shot.fingerprint, outcome.code, outcome.message)
                raise AccountLost(outcome.code, outcome.message)
            if isinstance(outcome, Refused):
                slot.release()
                self._run.ledger.failed(shot.fingerprint, outcome.code, outcome.message)
                self._run.log.event(shot.key, "refused", code=outcome.code, message=outcome.message)
                return False
            tries += 1
            if isinstance(outcome, Unknown):
                self._run.log.event(shot.key, "ambiguous submit", message=outcome.message)
                found = await self.reconcile(shot, provider, account)
                if found is Reconciled.ADOPTED:
                    return True
                if found is Reconciled.AMBIGUOUS:
                    slot.release()
                    return False
            else:  # Busy, or a local connection pool timeout: provably no task
                self._run.ledger.not_submitted(shot.fingerprint, getattr(outcome, "code", "Unsent"), outcome.message)
            if tries >= backoff.attempts:
                slot.release()
                raise NotSent(f"provider busy: {outcome.message}; no task after {tries} tries, nothing billed")
            after = outcome.retry_after if isinstance(outcome, Busy) else None
            if isinstance(outcome, Busy) and outcome.code.startswith("Throttling"):
                account.submits.pause(backoff.delay(0, after, self._run.rng))
            self._run.log.event(shot.key, "retry submit", attempt=tries, message=outcome.message)
            await anyio.sleep(backoff.delay(tries - 1, after, self._run.rng))

    async def _send(self, provider: Provider, prepared: Prepared, fingerprint: str) -> Any:
        """A submit a stop signal cannot interrupt: its answer (the task id) must be recorded."""
        self._sent_at[fingerprint] = anyio.current_time()  # monotonic: the settle window is measured from here
        with anyio.CancelScope(shield=True):
            return await provider.submit(prepared)

    # --- a task's end ------------------------------------------------------------

    def settle(self, job: Job, status: TaskStatus, provider: Provider, resubmit: bool, codes: tuple[str, ...] = ()) -> bool:
        """Record a task's end; True when it failed transiently and may be submitted again."""
        fp = job.fingerprint
        if status.state == "succeeded":
            if not status.video_url:  # billed, so never a failure: ask again later
                raise Stalled("the task succeeded but gave no video URL yet")
            started = status.started or status.submitted
            timing = started_at = None
            if started and status.ended:  # provider times: the generation time the poll schedule learns
                timing = (job.provider, job.model, job.resolution, job.duration, status.ended - started)
                started_at = time.time() - (provider.time.now() - started) * provider.time.scale
            billed, source, money = charge(job, status)
            self._run.ledger.succeeded(fp, status.video_url, status.usage, started_at, timing, billed=status.billed, cost=money)
            self._run.log.event(
                job.key, "succeeded", billed_seconds=billed, billing=source, cost=money, note=status.billing_note,
            )  # fmt: skip
            return False
        code = status.code or status.state.capitalize()
        message = status.message or f"the task ended {status.state}"
        if status.state == "unknown":
            record = self._run.ledger.get(fp)
            sent = record.submitted_at if record is not None else None
            if sent is not None and (time.time() - sent) / provider.time.scale < DAY:
                # The provider keeps tasks a day: one younger is asked through the wrong key or
                # endpoint (the account's key or region changed), not gone. Left for a later run.
                raise Stalled(
                    f"the provider does not know task {record.task_id if record else ''} through this account, though it was made less than 24 hours ago: "
                    "the account's key or region may have changed since; give it back the key and region it had to fetch the task"
                )
            self._run.ledger.expired(fp, "the provider no longer knows the task (tasks are kept 24 hours)")
            self._run.log.event(job.key, "expired")
            return False
        if resubmit and status.state == "failed" and codes and code.startswith(codes):
            self._run.ledger.failed(fp, code, message, retry=True)
            self._run.log.event(job.key, "failed, submitting again", code=code, message=message)
            return True
        self._run.ledger.failed(fp, code, message)
        self._run.log.event(job.key, "failed", code=code, message=message)
        return False

    @staticmethod
    def unreadable_uploads(shot: PlannedShot, status: TaskStatus, account: Account) -> bool:
        """The task failed because the provider could not read media the shot uploaded."""
        uploaded = "upload" in shot.transports.values()
        return uploaded and status.state == "failed" and bool(account.reupload_codes) and (status.code or "").startswith(account.reupload_codes)

    # --- reconciling an unanswered submit ----------------------------------------

    async def reconcile(self, shot: PlannedShot, provider: Provider, account: Account) -> Reconciled:
        """Find the task an unanswered submit may have made: adopted (the shot is
        'submitted'), none (submitting again is safe), or ambiguous (recorded so)."""
        record = self._run.ledger.get(shot.fingerprint)
        assert record is not None
        recorded = self._run.ledger.recorded_task(shot.fingerprint)
        if recorded is not None:  # the answer was written, then the run ended: the list would hide it as known
            task_id, made_by, model = recorded
            self._run.ledger.submitted(shot.fingerprint, task_id, made_by, model)
            self._run.log.event(shot.key, "reconciled", task=task_id, message="its answer was recorded before the run that sent it ended")
            return Reconciled.ADOPTED
        started = record.submit_started or time.time()
        scale = provider.time.scale
        provider_started = provider.time.now() - (time.time() - started) / scale

        async def strangers() -> list[str] | None:
            """Tasks of the model from around the submit that no shot has recorded. The
            window is wide: the prompt decides the match, and clocks may disagree."""
            ids = await account.watcher.query(
                provider,
                lambda: provider.candidates(shot.spec.model, provider_started - RECONCILE_MARGIN, provider.time.now() + RECONCILE_MARGIN),
            )
            if ids is None:
                return None
            known = self._run.ledger.known_tasks(account.id) | self._claimed
            return [task_id for task_id in ids if task_id not in known]

        prompt = shot.prompt
        watched: set[str] = set()
        # The settle window on the monotonic clock, so a wall-clock jump cannot cut it
        # short. A submit of this run is timed from when it went out; one an earlier
        # run left can only be timed by the wall clock the ledger recorded.
        sent = self._sent_at.get(shot.fingerprint)
        since = anyio.current_time() - sent if sent is not None else min(max(0.0, time.time() - started), self._run.options.settle)
        settled_at = anyio.current_time() - since + self._run.options.settle
        # Let a task the submit made reach the provider's list before asking.
        await anyio.sleep(min(5.0, self._run.options.poll.interval) * scale)
        while True:
            asked_at = anyio.current_time()
            found = await strangers()
            if found is None:
                message = f"the submit may have reached {provider.name}, whose task list cannot tell; check its console before forcing a new submit"
                self._run.ledger.ambiguous(shot.fingerprint, message)
                self._run.log.event(shot.key, "ambiguous", message=message)
                return Reconciled.AMBIGUOUS
            fresh = [task_id for task_id in found if task_id not in watched]
            watched.update(fresh)
            if await self._adopt_one(shot, provider, account, fresh, prompt):
                return Reconciled.ADOPTED
            # No task is ours yet. Believe that only once the list was read after the
            # request could no longer be in the works (a server may finish a request
            # whose client is gone); until then look again.
            if asked_at >= settled_at:
                break
            await anyio.sleep(max(0.0, settled_at - anyio.current_time()))
        sent_with = sent_through(self._run.ledger.events(shot.fingerprint))
        if sent_with is not None and sent_with != provider.account and not await self._sees_tasks_of(sent_with, provider, account):
            # An empty list proves nothing was made only when read with a key that sees the
            # tasks of the key the submit went out with: another key may be another
            # account's (a task it made shows in either list and is adopted above).
            raise Stalled(
                f"its unanswered submit went out with another key of account {account.label} than this run holds, which "
                "could not be shown to see that key's tasks; run with the key that sent it to settle it (sending it again could pay twice)"
            )
        self._run.ledger.not_submitted(shot.fingerprint, "Reconciled", "the provider shows no task from the unanswered submit")
        self._run.log.event(shot.key, "reconciled", message="no task was made; submitting again")
        return Reconciled.NO_TASK

    async def _sees_tasks_of(self, key: str, provider: Provider, account: Account) -> bool:
        """Whether this run's key sees the tasks of ``key`` (another key's hash): then both are
        keys of one provider account, whose task list is the same whichever reads it. The
        proof: a recent task that was the answer to a submit sent with ``key``, found in the
        task list read through this key (the list, like the reconciling it settles, shows
        an account's own tasks). Without such a task there is no proof."""
        if (provider.account, key) in self._seen_keys:
            return True
        scale = provider.time.scale
        witness = self._run.ledger.answered_through(account.id, key, time.time() - WITNESS_AGE * scale)
        if witness is None:
            return False
        task_id, recorded = witness
        at = provider.time.now() - (time.time() - recorded) / scale
        listed = await account.watcher.query(provider, lambda: provider.recent_tasks(at - RECONCILE_MARGIN, at + RECONCILE_MARGIN))
        if listed is None or task_id not in {task.task_id for task in listed}:
            return False
        self._seen_keys.add((provider.account, key))
        return True

    async def _adopt_one(self, shot: PlannedShot, provider: Provider, account: Account, candidates: list[str], prompt: Any) -> bool:
        """Watch candidate tasks to their end; adopt the first that is the shot's."""
        ended: dict[str, TaskStatus] = {}
        trouble: list[str] = []
        job = Job.of(shot, self._stores.of(shot))

        gone: list[Unreachable] = []

        async def watch(task_id: str) -> None:
            try:
                ended[task_id] = await account.watcher.follow(job, provider, task_id, None)
            except (Stalled, Transient, ProviderError) as error:
                trouble.append(f"{task_id}: {error}")
            except Unreachable as error:  # raised once, below: not as a group of one per candidate
                gone.append(error)

        async with anyio.create_task_group() as group:
            for task_id in candidates:
                group.start_soon(watch, task_id)
        if gone:
            raise gone[0]
        for task_id in candidates:
            status = ended.get(task_id)
            if status is None:
                continue
            # Only a succeeded task is billed, and it reports its prompt: a failed or
            # unknown stranger costs nothing, whoever made it. A task some shot recorded
            # while we watched is that shot's.
            taken = task_id in self._claimed or task_id in self._run.ledger.known_tasks(account.id)
            if status.state == "succeeded" and status.prompt == prompt and not taken:
                self._claimed.add(task_id)
                try:
                    self._run.ledger.submitted(shot.fingerprint, task_id, account.id, shot.spec.model)
                except TaskTaken:  # a twin's, recorded by another run while we watched
                    continue
                self._run.log.event(shot.key, "reconciled", task=task_id)
                return True
        if trouble:  # a candidate we could not see to its end may be ours: decide later
            raise Stalled(f"could not follow every candidate task ({'; '.join(trouble)})")
        return False

    # --- adopting what a lost ledger forgot --------------------------------------

    async def adopt_existing(self, w: Work, provider: Provider, account: Account) -> str | None:
        """Before a shot is paid for on a new ledger (made this run: lost, deleted, or a
        corrupt one moved aside): a task the provider already made for it (see adopt.py),
        adopted; its id, or None. A ledger that remembers its runs knows every task they
        made (an unanswered submit is reconciled, not adopted); a task it does not know
        is another tool's, and adopting it could take a take's task for its twin's."""
        strangers = await self._strangers(provider, account)
        if strangers is None:
            return None
        shot = w.shot
        # Twins whose task was known when the list was read (recorded, or their video
        # stored) took theirs: the strangers are the others', in the same order.
        twins = [t for t in self._twins.get(signature(shot), [shot]) if t.fingerprint in strangers.open]
        task_id = strangers.match(shot, twins)
        watcher = account.watcher
        if task_id is None and strangers.waiting(shot.spec.model):
            job = Job.of(shot, self._stores.of(shot))
            async with anyio.create_task_group() as group:
                for waiting in strangers.waiting(shot.spec.model):
                    group.start_soon(watcher.watch, job, provider, waiting)
            for waiting in strangers.waiting(shot.spec.model):
                status = watcher.ended.get(waiting)
                if status is not None and status.state == "succeeded":
                    strangers.succeeded[waiting] = status
            strangers.in_progress = [t for t in strangers.in_progress if t.task_id not in watcher.ended]
            task_id = strangers.match(shot, twins)
        if task_id is None or task_id in self._claimed:
            return None
        self._claimed.add(task_id)
        try:
            self._run.ledger.submitted(shot.fingerprint, task_id, account.id, shot.spec.model, adopted=True)
        except TaskTaken:  # another run (or this one, for a twin) recorded it since the list was read
            return None
        self._run.log.event(shot.key, "adopted", task=task_id, message="a task an earlier run paid for: fetched, not made again")
        return task_id

    async def _strangers(self, provider: Provider, account: Account) -> Strangers | None:
        """The account's tasks of the last 24 hours the ledger does not know: one list
        (paged) per account per run, then the detail of each succeeded one."""
        adoption = account.adoption
        async with adoption.looking:
            if not adoption.looked:
                try:
                    adoption.strangers = await self._find_strangers(provider, account)
                except Stalled as error:
                    adoption.unlooked = str(error)  # every shot of the account waits for a later run, not only this one
                adoption.looked = True
        if adoption.unlooked:
            raise Stalled(adoption.unlooked)
        return adoption.strangers

    async def _find_strangers(self, provider: Provider, account: Account) -> Strangers | None:
        # A submit a killed run left on the wire may still become a task: let it reach the list.
        await anyio.sleep(min(5.0, self._run.options.poll.interval) * provider.time.scale)
        now = provider.time.now()
        listed = await self._list_recent(provider, account)
        if listed is None:
            return None
        known = self._run.ledger.known_tasks(account.id) | self._claimed
        # A task the ledger does not know, made moments ago: a run that was just killed may
        # still have a submit on the wire (its ledger gone, no row says so). Give it the
        # settle time to land, then look again. Tasks the ledger knows were made by runs
        # that recorded their submits first: an unanswered one of theirs is a row in
        # ``submitting``, reconciled, not adopted, so they are no reason to wait.
        # (A task known only from the video store proves nothing of the sort: its run's ledger is the one lost.)
        recorded = self._run.ledger.known_tasks(account.id, from_store=False)
        ages = [(now - t.created) * provider.time.scale for t in listed if t.created is not None and t.task_id not in recorded]
        wait = self._run.options.settle - min(ages, default=self._run.options.settle)
        if wait > 0:
            self._run.log.note(f"{provider.name}: a task was made {min(ages):.0f} s ago; waiting {wait:.0f} s for submits a killed run may have left on the wire", "adopt")
            await anyio.sleep(wait)
            listed = await self._list_recent(provider, account) or []
        strangers = Strangers(open={s.fingerprint for s in self._shots if not self._has_task(s)})
        for task in listed:
            if task.task_id in known:
                continue
            if task.state == "succeeded":
                try:
                    strangers.succeeded[task.task_id] = await account.watcher.query(provider, lambda t=task.task_id: provider.status(t))
                except (Transient, ProviderError) as error:  # it may be one of ours: paying before knowing could pay twice
                    raise Stalled(f"could not read task {task.task_id}, which may be one a lost ledger forgot ({error}); a later run tries again") from None
            elif task.state in ("pending", "running"):
                strangers.in_progress.append(task)
        if strangers.succeeded or strangers.in_progress:
            self._run.log.note(
                f"{provider.name}: {len(strangers.succeeded)} finished and {len(strangers.in_progress)} running task(s) of the last 24 h "
                "that the ledger does not know; each is adopted by a shot it matches instead of paying again",
                "adopt",
            )  # fmt: skip
        return strangers

    async def _list_recent(self, provider: Provider, account: Account) -> list[ListedTask] | None:
        now = provider.time.now()
        try:
            return await account.watcher.query(provider, lambda: provider.recent_tasks(now - DAY, now + RECONCILE_MARGIN))
        except ProviderError as error:  # the provider will not list: nothing to adopt from
            self._run.log.note(f"{provider.name} refuses its task list ({error}); tasks a lost ledger forgot cannot be found", "adopt", level="warning")
            return None
        except Transient as error:  # not now: paying before knowing could pay twice
            raise Stalled(f"could not read {provider.name}'s task list to find tasks already paid for ({error}); a later run tries again") from None

    def _has_task(self, shot: PlannedShot) -> bool:
        record = self._run.ledger.get(shot.fingerprint)
        return (record is not None and record.task_id is not None) or self._stores.of(shot).find(shot.fingerprint) is not None



def charge(job: Job, status: TaskStatus) -> tuple[float | None, str, float | None]:
    """What a succeeded task billed, as the report counts it: the provider's seconds where
    it says (its usage), else the plan's, labelled; and their cost at the plan's rate."""
    seconds: Decimal | None = None
    source = "provider"
    if status.billed is not None:
        seconds = Decimal(str(status.billed))
    elif status.usage and isinstance(status.usage.get("duration"), (int, float)):
        seconds = Decimal(str(status.usage["duration"]))
    elif job.shot is not None:
        seconds, source = job.shot.billed.total, "plan"
    if seconds is None:
        return None, "unknown", None
    money = cost(seconds, job.shot.rate) if job.shot is not None else None
    return float(seconds), source, None if money is None else float(money)
