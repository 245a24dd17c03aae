"""Submit, poll, download: each planned shot carried to a video, inside the quotas.

One coroutine per shot walks it through the ledger's states. The money rules
are kept here:

* a submit is retried only when it provably created no task (never reached the
  server, or the provider itself answered 429/5xx); a submit that may have
  arrived is reconciled against the provider's task list, or reported as
  ambiguous;
* the task id is committed to the ledger before the first poll;
* a row with a task (or a submit that may have made one) never turns into a
  failure because of trouble asking about it: the run lets go of it, and a
  later run resumes it;
* a FAILED task is submitted again only for transient codes, a bounded number
  of times (failed tasks are not billed);
* shots asking the very same request share one video;
* downloads retry generously; a video only lands once verified, and a
  different video at its path is moved aside, never deleted.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping

import anyio
import httpx

from .. import __version__, catalog
from ..catalog.billing import as_number
from ..catalog.wire import read_body
from ..manifest.load import display_name
from ..media.probe import MediaInfo
from ..plan.budget import fit
from ..plan.changes import request_record
from ..plan.planner import Plan, PlannedShot
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
from .actions import Selection, Stores, decide_all
from .adopt import DAY, Strangers, signature
from .download import BadVideo, DiskTrouble, DownloadFailed, Expired, fetch_video
from .ledger import Ledger, Lost, ShotRecord
from .pacing import Backoff, RateLimit, SlotHold, Slots
from .polling import PollPolicy, relevant
from .progress import Log
from .reach import Reach, ReachPolicy, Unreachable
from .store import VideoStore

HEARTBEAT = 10.0  # wall seconds between the run's signs of life in the ledger
CARRIED = ("submit", "reconcile", "resume", "download", "reuse", "copy")  # actions this run carries out
OFFLINE = ("reuse", "copy")  # carried out from the video store, without the provider
RECONCILE_MARGIN = 15 * 60.0  # provider seconds around an unanswered submit to look for its task (clocks drift)


@dataclass(frozen=True)
class RunOptions:
    selection: Selection = Selection()
    max_resubmits: int = 2  # new submissions after transient task failures
    submit_backoff: Backoff = Backoff(base=1.0, cap=60.0, attempts=8)
    query_backoff: Backoff = Backoff(base=1.0, cap=30.0, attempts=20)
    download_backoff: Backoff = Backoff(base=2.0, cap=120.0, attempts=12)
    poll: PollPolicy = PollPolicy()
    reach: ReachPolicy = ReachPolicy()  # how long an unreachable provider is waited for
    # Wall seconds after an unanswered submit before an empty task list is believed:
    # a server may still be working on a request whose client is gone.
    settle: float = 120.0
    # Provider seconds a run keeps watching one task (DashScope gives up on a task
    # after 3 hours); then it lets go, and a later run picks the task up.
    patience: float = 4 * 3600.0
    seed: int | None = None  # for the jitter, so tests can repeat a run exactly


@dataclass
class Work:
    """One planned shot and what this run does with it."""

    shot: PlannedShot
    action: str
    reason: str
    source: PlannedShot | None = None  # for "copy": the shot whose video this one shares
    changes: tuple[str, ...] = ()  # for a shot made again: what changed since its last version
    status: str = "pending"  # what became of it, for the report (see report.STATUSES)
    held: bool = False
    adopted: str | None = None  # a task an earlier run paid for, found at the provider instead of paying again


@dataclass(frozen=True)
class Job:
    """What following a task and fetching its video need: from a planned shot, or
    from a ledger row of an earlier version of a planned shot (an orphan: paid,
    not yet fetched; its video goes to the store and a superseded/ link)."""

    fingerprint: str
    key: str
    provider: str
    model: str
    resolution: str  # with duration, which past tasks the poll schedule learns from
    duration: int
    output: Path  # the shot's output path
    store: VideoStore
    shot: PlannedShot | None = None  # None for an orphan: nothing to submit, only to finish

    @classmethod
    def of(cls, shot: PlannedShot, store: VideoStore) -> Job:
        return cls(shot.fingerprint, shot.key, shot.spec.provider, shot.spec.model, shot.resolution, int(shot.billed.output), shot.output, store, shot)

    @classmethod
    def orphan(cls, record: ShotRecord, shot: PlannedShot, store: VideoStore) -> Job:
        return cls(record.fingerprint, record.key, record.provider, record.model, "", 0, shot.output, store)


class Stalled(Exception):
    """This run cannot carry a shot further; its ledger row stays as it is for a later run."""


class NotSent(Exception):
    """A shot's request provably created no task and this run stops trying (the provider
    is unreachable or stays busy): it stays planned, and the next run sends it."""


class _Account:
    """The quotas of one provider account, shared by its shots."""

    def __init__(self, provider: str, quota: Mapping[str, float]):
        self.slots = Slots(int(quota["in_progress"]))
        self.submits = RateLimit.per_second(quota["submits_per_second"])
        self.queries = RateLimit.per_second(quota["queries_per_second"])
        self.resubmit_codes = catalog.RESUBMIT_CODES.get(provider, ())
        self.reupload_codes = catalog.REUPLOAD_CODES.get(provider, ())
        self.strangers: Strangers | None = None  # tasks the ledger does not know, read once a run
        self.looked = False
        self.unlooked: str | None = None  # why the task list could not be read
        self.looking = anyio.Lock()


class Runner:
    def __init__(
        self,
        plan: Plan,
        ledger: Ledger,
        log: Log,
        options: RunOptions = RunOptions(),
        providers: Mapping[tuple[str, str], Provider] | None = None,
        downloads: httpx.AsyncClient | None = None,
    ):
        self.plan = plan
        self.providers: Mapping[tuple[str, str], Provider] = providers or {}
        self.ledger = ledger
        self.log = log
        self.options = options
        self.downloads = downloads or httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True)
        self.rng = random.Random(options.seed)
        self.accounts: dict[str, _Account] = {}
        self.claimed: set[str] = set()  # task ids adopted by reconciliation in this run
        self.recovered: list[dict[str, Any]] = []  # orphans fetched (or tried) by this run
        self.settled: dict[str, anyio.Event] = {}  # fingerprint -> set when this run is done with it
        self.stores = Stores()
        self.fresh = ledger.fresh  # the ledger may not know tasks already made: adopt before paying
        self.twins: dict[Any, list[PlannedShot]] = {}  # what the provider shows -> planned shots alike in it, in order
        for shot in plan.shots:
            self.twins.setdefault(signature(shot), []).append(shot)
        self.answered: dict[str, anyio.Event] = {}  # fingerprint -> set once its submit has an answer (or none is coming)
        self.reaches: dict[str, Reach] = {}  # endpoint -> whether it can be reached
        self.sent_at: dict[str, float] = {}  # fingerprint -> monotonic time this run last sent its submit
        self.environment: list[str] = []  # what this machine could not do (disk full, permissions)
        self.watching: dict[str, anyio.Event] = {}  # task id -> set when a shared watch of it ended
        self.watched: dict[str, TaskStatus] = {}
        self.started = time.time()
        self.work = self._decide()

    # --- deciding ---------------------------------------------------------------

    def _decide(self) -> list[Work]:
        decided = decide_all(self.plan.shots, self.ledger, self.stores, self.options.selection, time.time())
        for shot, d in zip(self.plan.shots, decided):
            if d.earlier is not None:  # written differently by an earlier version: its task and video are this shot's
                self.ledger.refingerprint(d.earlier, shot.fingerprint, d.reason)
                self.stores.of(shot).alias(d.earlier, shot.fingerprint, d.reason)
                self.log.event(shot.key, "format changed", message=d.reason)
        work = [Work(shot, d.action, d.reason, d.source, d.changes) for shot, d in zip(self.plan.shots, decided)]
        # The budget counts what would be billed anew; what fits is kept in plan order.
        new = [w for w in work if w.action == "submit"]
        _, held = fit(self.plan.budgets, [w.shot for w in new])
        held_keys = {s.fingerprint for s in held}
        for w in work:
            if w.shot.fingerprint in held_keys and w.action in ("submit", "copy"):
                w.action, w.reason, w.held = "held", "held back: it would cross the budget", True
        return work

    def shots_needing_providers(self) -> list[PlannedShot]:
        return [w.shot for w in self.work if w.action in CARRIED and w.action not in OFFLINE] + [
            shot for shot, _ in self._orphan_rows()
        ]

    def provider_for(self, shot: PlannedShot) -> Provider:
        return self.providers[(shot.target.provider, shot.target.base_url)]

    def _reach(self, provider: Provider) -> Reach:
        where = f"{provider.name} {provider.base_url}"
        if where not in self.reaches:
            self.reaches[where] = Reach(where, lambda message, fields: self.log.note(message, "unreachable", level="warning", **fields), self.options.reach)
        return self.reaches[where]

    @property
    def unreachable(self) -> list[str]:
        """The endpoints this run gave up on."""
        return [reach.reason for reach in self.reaches.values() if reach.gave_up]

    def _account(self, provider: Provider, quota: Mapping[str, float]) -> _Account:
        if provider.account not in self.accounts:
            self.accounts[provider.account] = _Account(provider.name, {**catalog.QUOTAS[provider.name], **quota})
        return self.accounts[provider.account]

    # --- running ----------------------------------------------------------------

    async def run(self) -> list[Work]:
        self.log.total = sum(1 for w in self.work if w.action in CARRIED)
        for w in self.work:
            self.settled.setdefault(w.shot.fingerprint, anyio.Event())
            # Set at once for shots this run will not submit: twins wait only on those it will.
            answered = self.answered.setdefault(w.shot.fingerprint, anyio.Event())
            if w.action not in ("submit", "reconcile"):
                answered.set()
        async with anyio.create_task_group() as group:
            group.start_soon(self._heartbeat)
            group.start_soon(self._tick)
            async with anyio.create_task_group() as shots:
                for shot, record in self._orphan_rows():
                    shots.start_soon(self._recover, record, shot)
                # Tasks already in progress first: they hold provider slots now.
                order = sorted(self.work, key=lambda w: w.action not in ("resume", "reconcile"))
                for w in order:
                    if w.action in CARRIED:
                        shots.start_soon(self._place if w.action in OFFLINE else self._carry, w)
                    else:
                        w.status = _settled_status(w.action)
            group.cancel_scope.cancel()
        looked = [a for a in self.accounts.values() if a.looked]
        if self.fresh and looked and not any(a.unlooked for a in looked):
            self.ledger.looked_over()  # the provider's tasks are known now: later runs need not look
        return self.work

    def _orphan_rows(self) -> list[tuple[PlannedShot, ShotRecord]]:
        """Tasks earlier runs left in progress or unfetched for an earlier version of a
        shot this run plans: paid for, so fetched into superseded/. Rows of shots this
        run does not plan (another episode's, say) are left to the runs that do."""
        by_key = {s.key: s for s in self.plan.shots}
        planned = {s.fingerprint for s in self.plan.shots}
        return [
            (by_key[r.key], r)
            for r in self.ledger.unfinished_elsewhere()
            if r.key in by_key and r.fingerprint not in planned and r.state in ("submitted", "succeeded")
            and r.endpoint in (None, by_key[r.key].target.base_url)
        ]

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

    async def _carry(self, w: Work) -> None:
        shot = w.shot
        try:
            provider = self.provider_for(shot)
            account = self._account(provider, shot.target.quota)
            output = str(shot.output.resolve())  # the ledger outlives the working folder
            files = {url: f.info.sha256 for url, f in shot.files.items()}
            claimed = self.ledger.enter(
                shot.fingerprint, shot.key, shot.spec.provider, shot.spec.model, provider.account, shot.target.base_url, output,
                request=request_record(shot.spec, shot.body, files), planned_seconds=float(shot.billed.total),
            )
            if claimed is None:
                w.status, w.reason = "elsewhere", "another r2v run took it"
                return
            await self._guarded(shot.fingerprint, shot.key, lambda: self._walk(w, provider, account))
            if w.status not in ("unsent", "elsewhere"):
                w.status = _final_status(self.ledger.get(shot.fingerprint))
        finally:
            self._answered(shot)
            self.settled[shot.fingerprint].set()

    async def _guarded(self, fingerprint: str, key: str, walk: Callable[[], Awaitable[None]]) -> None:
        """Run one shot's walk; whatever goes wrong stays with that shot. Its ledger row
        keeps its state (a failure is recorded only where nothing was sent or billed)
        and this run lets go of it, so a later run resumes where this one stopped."""
        try:
            await walk()
        except (Stalled, Transient, ProviderError, Unreachable) as error:
            self._let_go(fingerprint, key, str(error))
        except Exception as error:  # a bug must not cancel the other shots' work
            self._let_go(fingerprint, key, f"internal error: {type(error).__name__}: {error}")

    def _let_go(self, fingerprint: str, key: str, why: str) -> None:
        self.ledger.note(fingerprint, "stalled", why)
        self.ledger.release(fingerprint)
        self.log.event(key, "stalled", message=why)

    async def _walk(self, w: Work, provider: Provider, account: _Account) -> None:
        """Move one shot through its states until it is downloaded or settled."""
        shot = w.shot
        job = Job.of(shot, self.stores.of(shot))
        slot = SlotHold(account.slots)  # held while the shot's task is (or may be) in progress
        resubmits = 0
        uploads_again = False  # once the provider could not read the shot's uploads
        try:
            while True:
                record = self.ledger.get(shot.fingerprint)
                assert record is not None
                state = record.state
                if state == "planned" or (w.action == "submit" and state in ("failed", "ambiguous", "expired", "downloaded")):
                    if state != "planned":
                        self.ledger.reset(shot.fingerprint, w.reason)
                    elif self.fresh and record.attempts == 0 and not self.options.selection.forced(shot):
                        try:
                            if await self._adopt_existing(w, provider, account):
                                continue  # a task an earlier run paid for: follow it instead of paying again
                        except Unreachable as error:
                            w.status, w.reason = "unsent", str(error)
                            self.ledger.release(shot.fingerprint)
                            self.log.event(shot.key, "not sent", message=str(error))
                            return
                    w.action = "submitting"
                    try:
                        if not await self._submit(shot, provider, account, slot, fresh_uploads=uploads_again):
                            return
                    except NotSent as error:
                        w.status, w.reason = "unsent", str(error)
                        self.ledger.release(shot.fingerprint)
                        self.log.event(shot.key, "not sent", message=str(error))
                        return
                    except Lost as error:
                        w.status, w.reason = "elsewhere", f"{error}: it judged this run gone"
                        self.log.event(shot.key, "taken over", message=str(error))
                        return
                elif state == "submitting":
                    slot.take()  # a task the submit may have made occupies a slot
                    adopted = await self._reconcile(shot, provider, account)
                    if adopted is None:
                        return
                    if not adopted:  # no task was made: the shot is planned again
                        slot.release()
                elif state == "submitted":
                    slot.take()
                    status = await self._follow(job, provider, account, record.task_id or "", record.submitted_at)
                    slot.release()
                    if not uploads_again and self._unreadable_uploads(shot, status, account):
                        # Failed tasks bill nothing: upload afresh and send once more.
                        uploads_again = True
                        self.ledger.failed(shot.fingerprint, status.code or "Failed", status.message or "", retry=True)
                        self.log.event(shot.key, "uploading again", code=status.code, message="the provider could not read the uploaded files")
                        continue
                    may_resubmit = resubmits < self.options.max_resubmits
                    if self._settle(job, status, provider, resubmit=may_resubmit, codes=account.resubmit_codes):
                        resubmits += 1
                    elif status.state != "succeeded":
                        return
                elif state == "succeeded" or (state == "downloaded" and w.action == "download"):
                    await self._download(job, provider)
                    return
                else:
                    return
        finally:
            slot.release()

    async def _adopt_existing(self, w: Work, provider: Provider, account: _Account) -> bool:
        """Before a shot is paid for on a new ledger (made this run: lost, deleted, or a
        corrupt one moved aside): a task the provider already made for it (see adopt.py),
        adopted. A ledger that remembers its runs knows every task they made (an
        unanswered submit is reconciled, not adopted); a task it does not know is
        another tool's, and adopting it could take a take's task for its twin's."""
        strangers = await self._strangers(provider, account)
        if strangers is None:
            return False
        shot = w.shot
        # Twins whose task was known when the list was read (recorded, or their video
        # stored) took theirs: the strangers are the others', in the same order.
        twins = [t for t in self.twins.get(signature(shot), [shot]) if t.fingerprint in strangers.open]
        task_id = strangers.match(shot, twins)
        if task_id is None and strangers.waiting(shot.spec.model):
            async with anyio.create_task_group() as group:
                for waiting in strangers.waiting(shot.spec.model):
                    group.start_soon(self._watch, shot, provider, account, waiting)
            for waiting in strangers.waiting(shot.spec.model):
                status = self.watched.get(waiting)
                if status is not None and status.state == "succeeded":
                    strangers.succeeded[waiting] = status
            strangers.in_progress = [t for t in strangers.in_progress if t.task_id not in self.watched]
            task_id = strangers.match(shot, twins)
        if task_id is None or task_id in self.claimed:
            return False
        self.claimed.add(task_id)
        self.ledger.submitted(shot.fingerprint, task_id, provider.account, shot.spec.model, adopted=True)
        w.adopted = task_id
        self.log.event(shot.key, "adopted", task=task_id, message="a task an earlier run paid for: fetched, not made again")
        return True

    async def _strangers(self, provider: Provider, account: _Account) -> Strangers | None:
        """The account's tasks of the last 24 hours the ledger does not know: one list
        (paged) per account per run, then the detail of each succeeded one."""
        async with account.looking:
            if not account.looked:
                try:
                    account.strangers = await self._find_strangers(provider, account)
                except Stalled as error:
                    account.unlooked = str(error)  # every shot of the account waits for a later run, not only this one
                account.looked = True
        if account.unlooked:
            raise Stalled(account.unlooked)
        return account.strangers

    async def _find_strangers(self, provider: Provider, account: _Account) -> Strangers | None:
        # A submit a killed run left on the wire may still become a task: let it reach the list.
        await anyio.sleep(min(5.0, self.options.poll.interval) * provider.time.scale)
        now = provider.time.now()
        listed = await self._list_recent(provider, account)
        if listed is None:
            return None
        known = self.ledger.known_tasks(provider.account) | self.claimed
        # A task made moments ago: a run that was just killed may still have a submit on
        # the wire (its ledger gone, no row says so). Give it the settle time to land, then look again.
        ages = [(now - t.created) * provider.time.scale for t in listed if t.created is not None]
        wait = self.options.settle - min(ages, default=self.options.settle)
        if wait > 0:
            self.log.note(f"{provider.name}: a task was made {min(ages):.0f} s ago; waiting {wait:.0f} s for submits a killed run may have left on the wire", "adopt")
            await anyio.sleep(wait)
            listed = await self._list_recent(provider, account) or []
        strangers = Strangers(open={s.fingerprint for s in self.plan.shots if not self._has_task(s)})
        for task in listed:
            if task.task_id in known:
                continue
            if task.state == "succeeded":
                try:
                    strangers.succeeded[task.task_id] = await self._retrying_query(account, provider, lambda t=task.task_id: provider.status(t))
                except (Transient, ProviderError) as error:  # it may be one of ours: paying before knowing could pay twice
                    raise Stalled(f"could not read task {task.task_id}, which may be one a lost ledger forgot ({error}); a later run tries again") from None
            elif task.state in ("pending", "running"):
                strangers.in_progress.append(task)
        if strangers.succeeded or strangers.in_progress:
            self.log.note(
                f"{provider.name}: {len(strangers.succeeded)} finished and {len(strangers.in_progress)} running task(s) of the last 24 h "
                "that the ledger does not know; each is adopted by a shot it matches instead of paying again",
                "adopt",
            )  # fmt: skip
        return strangers

    async def _list_recent(self, provider: Provider, account: _Account) -> list[ListedTask] | None:
        now = provider.time.now()
        try:
            return await self._retrying_query(account, provider, lambda: provider.recent_tasks(now - DAY, now + RECONCILE_MARGIN))
        except ProviderError as error:  # the provider will not list: nothing to adopt from
            self.log.note(f"{provider.name} refuses its task list ({error}); tasks a lost ledger forgot cannot be found", "adopt", level="warning")
            return None
        except Transient as error:  # not now: paying before knowing could pay twice
            raise Stalled(f"could not read {provider.name}'s task list to find tasks already paid for ({error}); a later run tries again") from None

    async def _watch(self, shot: PlannedShot, provider: Provider, account: _Account, task_id: str) -> None:
        """Follow a task to its end once, however many shots wait on it."""
        done = self.watching.get(task_id)
        if done is not None:
            await done.wait()
            return
        done = self.watching[task_id] = anyio.Event()
        try:
            self.watched[task_id] = await self._follow(Job.of(shot, self.stores.of(shot)), provider, account, task_id, None)
        except (Stalled, Transient, ProviderError, Unreachable):
            pass  # not seen to its end: not adopted by this run (a later run looks again)
        finally:
            done.set()

    def _has_task(self, shot: PlannedShot) -> bool:
        record = self.ledger.get(shot.fingerprint)
        return (record is not None and record.task_id is not None) or self.stores.of(shot).find(shot.fingerprint) is not None

    def _answered(self, shot: PlannedShot) -> None:
        self.answered[shot.fingerprint].set()

    def _unreadable_uploads(self, shot: PlannedShot, status: TaskStatus, account: _Account) -> bool:
        """The task failed because the provider could not read media the shot uploaded."""
        uploaded = "upload" in shot.transports.values()
        return uploaded and status.state == "failed" and bool(account.reupload_codes) and (status.code or "").startswith(account.reupload_codes)

    async def _place(self, w: Work) -> None:
        """Put a paid video in place from the store: a shot whose request's video is
        stored ("reuse": an undone edit, a renamed shot), or one asking the very same
        request as another shot of this run ("copy": after the other is done)."""
        shot = w.shot
        try:
            if w.source is not None:
                await self.settled[w.source.fingerprint].wait()
            store = self.stores.of(shot)
            if store.find(shot.fingerprint) is None:
                w.status, w.reason = "failed", f"the shot it shares a video with ({w.source.key if w.source else '?'}) has no video"
                return
            store.materialise(shot.fingerprint, shot.output, {"key": shot.key})
            w.status = "copied" if w.action == "copy" else "reused"
            self.log.event(shot.key, w.status, path=display_name(shot.output))
        except OSError as error:
            w.status, w.reason = "failed", f"placing the stored video failed: {error.strerror or error}"

    async def _recover(self, record: ShotRecord, shot: PlannedShot) -> None:
        provider = self.provider_for(shot)
        account = self._account(provider, shot.target.quota)
        if self.ledger.adopt(record.fingerprint) is None:
            return
        job = Job.orphan(record, shot, self.stores.of(shot))
        self.log.event(job.key, "recovering", task=record.task_id, message="an earlier version of the shot, already paid for")

        async def walk() -> None:
            if record.state == "submitted":
                slot = SlotHold(account.slots)
                slot.take()
                try:
                    status = await self._follow(job, provider, account, record.task_id or "", record.submitted_at)
                finally:
                    slot.release()
                self._settle(job, status, provider, resubmit=False)
            if (self.ledger.get(job.fingerprint) or record).state == "succeeded":
                await self._download(job, provider)

        await self._guarded(job.fingerprint, job.key, walk)
        final = self.ledger.get(job.fingerprint)
        self.recovered.append(
            {
                "key": job.key,
                "fingerprint": job.fingerprint,
                "task_id": record.task_id,
                "state": final.state if final else record.state,
                "output": final.output if final and final.state == "downloaded" else None,
            }
        )

    # --- submitting --------------------------------------------------------------

    async def _submit(self, shot: PlannedShot, provider: Provider, account: _Account, slot: SlotHold, fresh_uploads: bool = False) -> bool:
        """Submit until a task exists (True, holding a slot) or the shot is settled otherwise
        (False). Raises NotSent when the provider stays unreachable or busy: no task exists."""
        try:
            return await self._submit_in_turn(shot, provider, account, slot, fresh_uploads)
        finally:
            self._answered(shot)

    async def _submit_in_turn(self, shot: PlannedShot, provider: Provider, account: _Account, slot: SlotHold, fresh_uploads: bool) -> bool:
        """Takes the provider cannot tell apart (see adopt.py) are sent in take order, each
        after the one before it has its answer: a lost ledger then pairs them with their
        tasks by creation time without doubt."""
        for twin in self.twins.get(signature(shot), []):
            if twin.fingerprint == shot.fingerprint:
                break
            await self.answered[twin.fingerprint].wait()
        reach = self._reach(provider)
        await slot.acquire()
        try:
            # Prepared only now, with a slot: files are read (and checked against the
            # plan) just before they are sent, and few bodies wait in memory at once.
            # Uploads have their own, far looser limit (100/s): not the task-query budget.
            prepared = await self._retrying(lambda: provider.prepare(shot.request, fresh_uploads), provider.time.scale, reach=reach)
        except (ProviderError, Unsendable, OSError) as error:
            slot.release()
            self.ledger.failed(shot.fingerprint, getattr(error, "code", "Unsendable"), str(error))
            self.log.event(shot.key, "failed", message=str(error))
            return False
        except Unreachable as error:
            slot.release()
            raise NotSent(str(error)) from None
        backoff = self.options.submit_backoff.scaled(provider.time.scale)
        tries = 0  # answers that made no task; a connection never made does not count (the gate paces those)
        while True:
            try:
                await reach.gate()
            except Unreachable as error:
                slot.release()
                raise NotSent(str(error)) from None
            await account.submits.acquire()
            while not self.ledger.start_submit(shot.fingerprint, provider.account, account.slots.capacity):
                await anyio.sleep(self.options.poll.interval * provider.time.scale)  # another run's tasks fill the account
            outcome = await self._send(provider, prepared, shot.fingerprint)
            if isinstance(outcome, Unsent) and outcome.unreachable:
                self.ledger.not_submitted(shot.fingerprint, "Unreachable", outcome.message)
                reach.failed(outcome.message)
                continue
            if not isinstance(outcome, Unsent):
                reach.answered()
            if isinstance(outcome, Submitted):
                self.ledger.submitted(shot.fingerprint, outcome.task_id, provider.account, shot.spec.model)
                self.log.event(shot.key, "submitted", task=outcome.task_id)
                return True
            if isinstance(outcome, Refused):
                slot.release()
                self.ledger.failed(shot.fingerprint, outcome.code, outcome.message)
                self.log.event(shot.key, "refused", code=outcome.code, message=outcome.message)
                return False
            tries += 1
            if isinstance(outcome, Unknown):
                self.log.event(shot.key, "ambiguous submit", message=outcome.message)
                adopted = await self._reconcile(shot, provider, account)
                if adopted:
                    return True
                if adopted is None:
                    slot.release()
                    return False
            else:  # Busy, or a local connection pool timeout: provably no task
                self.ledger.not_submitted(shot.fingerprint, getattr(outcome, "code", "Unsent"), outcome.message)
            if tries >= backoff.attempts:
                slot.release()
                raise NotSent(f"provider busy: {outcome.message}; no task after {tries} tries, nothing billed")
            after = outcome.retry_after if isinstance(outcome, Busy) else None
            if isinstance(outcome, Busy) and outcome.code.startswith("Throttling"):
                account.submits.pause(backoff.delay(0, after, self.rng))
            self.log.event(shot.key, "retry submit", attempt=tries, message=outcome.message)
            await anyio.sleep(backoff.delay(tries - 1, after, self.rng))

    async def _send(self, provider: Provider, prepared: Prepared, fingerprint: str) -> Any:
        """A submit a stop signal cannot interrupt: its answer (the task id) must be recorded."""
        self.sent_at[fingerprint] = anyio.current_time()  # monotonic: the settle window is measured from here
        with anyio.CancelScope(shield=True):
            return await provider.submit(prepared)

    async def _reconcile(self, shot: PlannedShot, provider: Provider, account: _Account) -> bool | None:
        """Find the task an unanswered submit may have made. True: adopted (the shot is
        'submitted'); False: no such task, submitting again is safe; None: ambiguous."""
        record = self.ledger.get(shot.fingerprint)
        assert record is not None
        started = record.submit_started or time.time()
        scale = provider.time.scale
        provider_started = provider.time.now() - (time.time() - started) / scale

        async def strangers() -> list[str] | None:
            """Tasks of the model from around the submit that no shot has recorded. The
            window is wide: the prompt decides the match, and clocks may disagree."""
            ids = await self._retrying_query(
                account,
                provider,
                lambda: provider.candidates(shot.spec.model, provider_started - RECONCILE_MARGIN, provider.time.now() + RECONCILE_MARGIN),
            )
            if ids is None:
                return None
            known = self.ledger.known_tasks(provider.account) | self.claimed
            return [task_id for task_id in ids if task_id not in known]

        prompt = read_body(shot.spec, shot.body).prompt
        watched: set[str] = set()
        # The settle window on the monotonic clock, so a wall-clock jump cannot cut it
        # short. A submit of this run is timed from when it went out; one an earlier
        # run left can only be timed by the wall clock the ledger recorded.
        sent = self.sent_at.get(shot.fingerprint)
        since = anyio.current_time() - sent if sent is not None else min(max(0.0, time.time() - started), self.options.settle)
        settled_at = anyio.current_time() - since + self.options.settle
        # Let a task the submit made reach the provider's list before asking.
        await anyio.sleep(min(5.0, self.options.poll.interval) * scale)
        while True:
            asked_at = anyio.current_time()
            found = await strangers()
            if found is None:
                message = f"the submit may have reached {provider.name}, whose task list cannot tell; check its console before forcing a new submit"
                self.ledger.ambiguous(shot.fingerprint, message)
                self.log.event(shot.key, "ambiguous", message=message)
                return None
            fresh = [task_id for task_id in found if task_id not in watched]
            watched.update(fresh)
            if await self._adopt_one(shot, provider, account, fresh, prompt):
                return True
            # No task is ours yet. Believe that only once the list was read after the
            # request could no longer be in the works (a server may finish a request
            # whose client is gone); until then look again.
            if asked_at >= settled_at:
                break
            await anyio.sleep(max(0.0, settled_at - anyio.current_time()))
        self.ledger.not_submitted(shot.fingerprint, "Reconciled", "the provider shows no task from the unanswered submit")
        self.log.event(shot.key, "reconciled", message="no task was made; submitting again")
        return False

    async def _adopt_one(self, shot: PlannedShot, provider: Provider, account: _Account, candidates: list[str], prompt: Any) -> bool:
        """Watch candidate tasks to their end; adopt the first that is the shot's."""
        ended: dict[str, TaskStatus] = {}
        trouble: list[str] = []

        async def watch(task_id: str) -> None:
            try:
                ended[task_id] = await self._follow(Job.of(shot, self.stores.of(shot)), provider, account, task_id, None)
            except (Stalled, Transient, ProviderError) as error:
                trouble.append(f"{task_id}: {error}")

        async with anyio.create_task_group() as group:
            for task_id in candidates:
                group.start_soon(watch, task_id)
        for task_id in candidates:
            status = ended.get(task_id)
            if status is None:
                continue
            # Only a succeeded task is billed, and it reports its prompt: a failed or
            # unknown stranger costs nothing, whoever made it. A task some shot recorded
            # while we watched is that shot's.
            taken = task_id in self.claimed or task_id in self.ledger.known_tasks(provider.account)
            if status.state == "succeeded" and status.prompt == prompt and not taken:
                self.claimed.add(task_id)
                self.ledger.submitted(shot.fingerprint, task_id, provider.account, shot.spec.model)
                self.log.event(shot.key, "reconciled", task=task_id)
                return True
        if trouble:  # a candidate we could not see to its end may be ours: decide later
            raise Stalled(f"could not follow every candidate task ({'; '.join(trouble)})")
        return False

    # --- polling -----------------------------------------------------------------

    async def _follow(self, job: Job, provider: Provider, account: _Account, task_id: str, since: float | None) -> TaskStatus:
        """Poll a task until it ends, at the times the learned schedule gives. Trouble
        asking (an outage) is waited out up to the patience; then the run lets go."""
        scale = provider.time.scale
        anchor = anyio.current_time() - (time.time() - since if since else 0.0)
        samples = relevant(self.ledger.timings(job.provider, job.model), job.resolution, job.duration)
        rebased = False
        last_asked = float("-inf")
        for elapsed in self.options.poll.times(samples):
            if elapsed > self.options.patience:
                raise Stalled(f"task {task_id} is not done after {self.options.patience:.0f} s; a later run resumes it")
            due = anchor + elapsed * scale
            if due <= last_asked:  # a point that passed while we waited or were away
                continue
            if due > anyio.current_time():
                await anyio.sleep(due - anyio.current_time())
            last_asked = anyio.current_time()
            try:
                status = await self._retrying_query(account, provider, lambda: provider.status(task_id))
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

    async def _retrying_query(self, account: _Account, provider: Provider, call: Any) -> Any:
        """A task query (status, list), inside the account's query rate, retried generously."""
        return await self._retrying(call, provider.time.scale, account.queries, self._reach(provider))

    async def _retrying(self, call: Any, scale: float, limit: RateLimit | None = None, reach: Reach | None = None) -> Any:
        """``call`` until it answers. Failures to connect at all are the endpoint's
        reach's business (it paces them and gives up with Unreachable); other
        transient trouble is retried on the backoff, a bounded number of times."""
        backoff = self.options.query_backoff.scaled(scale)
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
                    limit.pause(backoff.delay(0, error.retry_after, self.rng))
                await anyio.sleep(backoff.delay(attempt, error.retry_after, self.rng))
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

    def _settle(self, job: Job, status: TaskStatus, provider: Provider, resubmit: bool, codes: tuple[str, ...] = ()) -> bool:
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
            self.ledger.succeeded(fp, status.video_url, status.usage, started_at, timing, billed=status.billed)
            self.log.event(job.key, "succeeded", billed_seconds=status.billed, note=status.billing_note)
            return False
        code = status.code or status.state.capitalize()
        message = status.message or f"the task ended {status.state}"
        if status.state == "unknown":
            self.ledger.expired(fp, "the provider no longer knows the task (tasks are kept 24 hours)")
            self.log.event(job.key, "expired")
            return False
        if resubmit and status.state == "failed" and codes and code.startswith(codes):
            self.ledger.failed(fp, code, message, retry=True)
            self.log.event(job.key, "failed, submitting again", code=code, message=message)
            return True
        self.ledger.failed(fp, code, message)
        self.log.event(job.key, "failed", code=code, message=message)
        return False

    # --- downloading -------------------------------------------------------------

    def _disk_trouble(self, job: Job, why: str) -> Stalled:
        """This machine cannot keep a paid video now: the run says so and ends with
        exits.ENVIRONMENT; the task stays succeeded, so the next run fetches it."""
        message = f"cannot keep the video on this machine: {why}"
        self.environment.append(message)
        return Stalled(message)

    async def _download(self, job: Job, provider: Provider) -> None:
        record = self.ledger.get(job.fingerprint)
        assert record is not None and record.result_url
        backoff = self.options.download_backoff.scaled(provider.time.scale)
        for leftover in job.output.parent.glob(f".{job.output.name}.*.part"):  # beside the output: before the store
            leftover.unlink(missing_ok=True)
        try:
            fetched = await fetch_video(
                self.downloads, record.result_url, job.store.object_path(job.fingerprint), task=record.task_id or job.fingerprint,
                backoff=backoff, sleep=anyio.sleep, rng=self.rng,
            )
        except Expired as error:
            self.ledger.expired(job.fingerprint, f"the result URL no longer serves the video ({error})")
            self.log.event(job.key, "expired", message=str(error))
            return
        except (BadVideo, DownloadFailed) as error:
            # The task is paid for and its URL lives 24 hours: keep it to be fetched again.
            raise Stalled(f"download: {error}") from None
        except DiskTrouble as error:
            raise self._disk_trouble(job, str(error)) from None
        try:
            stored = job.store.put(job.fingerprint, fetched.path, _provenance(job, record, fetched.info, self.plan.currency))
            if job.shot is None:  # an earlier version of the shot: a link in superseded/
                placed = job.store.superseded_view(job.fingerprint, job.output)
            else:
                job.store.materialise(job.fingerprint, job.output, {"key": job.key})
                placed = job.output
        except OSError as error:
            fetched.path.unlink(missing_ok=True)
            raise self._disk_trouble(job, f"{error.strerror or error}: {error.filename or job.output}") from None
        self.ledger.downloaded(job.fingerprint, str(placed.resolve()), stored.sha256 or "", fetched.info.bytes)
        self.log.event(job.key, "downloaded", path=display_name(placed))


def _settled_status(action: str) -> str:
    return {"skip": "skipped", "held": "held", "unselected": "unselected"}.get(action, action)


def _final_status(record: ShotRecord | None) -> str:
    if record is None:
        return "failed"
    return {"downloaded": "downloaded", "failed": "failed", "ambiguous": "ambiguous", "expired": "expired"}.get(
        record.state, "unfinished"
    )


def _provenance(job: Job, record: ShotRecord, info: MediaInfo, currency: str | None) -> dict[str, Any]:
    """What the store keeps of a video: the request (local files by path and hash, no
    secrets), the task and the run that paid for it, what was billed, when, and the
    file itself. An orphan's request is no longer planned: the ledger remembers it."""
    shot = job.shot
    recorded = record.request_data or {}
    return {
        "r2v_version": __version__,
        "key": job.key,
        "fingerprint": job.fingerprint,
        "provider": job.provider,
        "model": job.model,
        "task_id": record.task_id,
        "paid_by_run": record.submitted_by,
        "request": shot.body if shot else recorded.get("body"),
        "files": {url: {"path": f.shown, "sha256": f.info.sha256} for url, f in shot.files.items()} if shot else {},
        "usage": record.usage_data,
        "billed_seconds": {"planned": float(shot.billed.total)} if shot else {},
        "cost": as_number(shot.cost) if shot and shot.cost is not None else None,
        "currency": currency,
        "timestamps": {
            "submitted": record.submitted_at,
            "started": record.started_at,
            "finished": record.finished_at,
            "downloaded": time.time(),
        },
        "video": {"bytes": info.bytes, "width": info.width, "height": info.height, "seconds": info.seconds},
    }
