"""What happens next to one shot: read its ledger state, take the one step it calls for, repeat.

* the task id is committed to the ledger before the first poll (submitter.py);
* a row with a task (or a submit that may have made one) never turns into a
  failure because of trouble asking about it: the run lets go of it, and a
  later run resumes it;
* shots asking the very same request share one video: the copy waits for the
  shot that makes it.
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field
from typing import Awaitable, Callable, Sequence

import anyio

from ..plan.changes import request_record
from ..plan.planner import PlannedShot
from ..providers.base import ProviderError, Transient
from .actions import Stores
from .downloader import Downloader
from .ledger_store import LedgerUnreachable, Lost, ShotRecord
from .pacing import SlotHold
from .reach import Unreachable
from .states import Action, LedgerState, Reconciled, ShotStatus
from .submitter import Submitter
from .pool import AccountLost, Pool
from .task_watch import Account
from .work import Job, NotSent, RunContext, Stalled, Work

_REMADE = (LedgerState.FAILED, LedgerState.AMBIGUOUS, LedgerState.EXPIRED, LedgerState.DOWNLOADED)  # made again on the user's word
_SETTLED_ELSEWHERE = (LedgerState.DOWNLOADED, LedgerState.FAILED, LedgerState.AMBIGUOUS, LedgerState.EXPIRED)  # another run's end of a shot
HOLDER_CHECK = 2.0  # wall seconds between looks at a shot another run holds on a shared ledger


@dataclass(frozen=True)
class Outcome:
    """What became of a shot when its walk ended other than by its ledger state."""

    status: ShotStatus
    reason: str


@dataclass
class ShotMachine:
    """Carries each shot of a run from its ledger state to its end (or lets go of it)."""

    run: RunContext
    work: InitVar[Sequence[Work]]
    pool: Pool
    submitter: Submitter
    downloader: Downloader
    stores: Stores
    recovered: list[dict[str, object]]  # orphans fetched (or tried) by this run
    _settled: dict[str, anyio.Event] = field(init=False)  # fingerprint -> set when this run is done with it

    def __post_init__(self, work: Sequence[Work]) -> None:
        self._settled = {w.shot.fingerprint: anyio.Event() for w in work}

    # --- a planned shot -------------------------------------------------------

    async def carry(self, w: Work) -> None:
        shot = w.shot
        try:
            first = self.pool.first(shot)  # until the shot is sent: then the account it goes through
            output = str(shot.output.resolve())  # the ledger outlives the working folder
            files = {url: f.info.sha256 for url, f in shot.files.items()}

            def claim() -> ShotRecord | None:
                return self.run.ledger.enter(
                    shot.fingerprint, shot.key, shot.spec.provider, shot.spec.model, first.id, first.endpoint, output,
                    request=request_record(shot.spec, shot.body, files), planned_seconds=float(shot.billed.total),
                )

            claimed = claim()
            if claimed is None and self.run.ledger.shared:
                claimed = await self._await_holder(w, claim)
                if claimed is None:
                    return
            if claimed is None:
                w.status, w.reason = ShotStatus.ELSEWHERE, "another r2v run took it"
                return
            ended: list[Outcome] = []
            await self._guarded(shot.fingerprint, shot.key, lambda: self._walk(w, ended))
            if ended:
                w.status, w.reason = ended[0].status, ended[0].reason
            else:
                record = self.run.ledger.get(shot.fingerprint)
                w.status = ShotStatus.of_record(record.state if record else None)
        finally:
            self.submitter.answered(shot)
            self._settled[shot.fingerprint].set()

    async def _await_holder(self, w: Work, claim: Callable[[], ShotRecord | None]) -> ShotRecord | None:
        """On a shared ledger, a shot another live run holds: wait until that run is done
        with it (its end is this shot's status) or gone (its lease lapsed: the shot is
        taken over and carried on from its state, never made again). None: settled."""
        while True:
            await anyio.sleep(HOLDER_CHECK)
            record = self.run.ledger.get(w.shot.fingerprint)
            if record is not None and record.state in _SETTLED_ELSEWHERE:
                w.status = ShotStatus.SKIPPED if record.state is LedgerState.DOWNLOADED else ShotStatus.of_record(record.state)
                w.reason = "made by another r2v run on the shared ledger" if w.status is ShotStatus.SKIPPED else (record.message or str(record.state))
                return None
            claimed = claim()
            if claimed is not None:
                self.run.log.event(w.shot.key, "taken over", message=f"its run left it {claimed.state}; carried on from there")
                w.action = Action.SUBMIT if claimed.state is LedgerState.PLANNED else Action.RESUME  # never a remake
                return claimed

    async def place(self, w: Work) -> None:
        """A paid video from the store; a copy after the shot that makes it is done."""
        try:
            if w.source is not None:
                await self._settled[w.source.fingerprint].wait()
            w.status, w.reason = self.downloader.place(w)
        finally:
            self._settled[w.shot.fingerprint].set()

    async def _guarded(self, fingerprint: str, key: str, walk: Callable[[], Awaitable[None]]) -> None:
        """Run one shot's walk; whatever goes wrong stays with that shot. Its ledger row
        keeps its state (a failure is recorded only where nothing was sent or billed)
        and this run lets go of it, so a later run resumes where this one stopped."""
        try:
            await walk()
        except LedgerUnreachable:
            raise  # nothing can be recorded any more: the whole run stops (session.py)
        except (Stalled, Transient, ProviderError, Unreachable, Lost) as error:
            self._let_go(fingerprint, key, str(error))
        except Exception as error:  # a bug must not cancel the other shots' work
            self._let_go(fingerprint, key, f"internal error: {type(error).__name__}: {error}")

    def _let_go(self, fingerprint: str, key: str, why: str) -> None:
        self.run.ledger.note(fingerprint, "stalled", why)
        self.run.ledger.release(fingerprint)
        self.run.log.event(key, "stalled", message=why)

    def _not_sent(self, shot: PlannedShot, why: str) -> Outcome:
        self.run.ledger.release(shot.fingerprint)
        self.run.log.event(shot.key, "not sent", message=why)
        return Outcome(ShotStatus.UNSENT, why)

    async def _walk(self, w: Work, ended: list[Outcome]) -> None:
        """Move one shot through its states until it is downloaded or settled; an end
        its ledger state does not tell (unsent, taken over) goes into ``ended``. A shot
        not yet sent takes whichever account the pool gives; a task is followed through
        the account its ledger row names."""
        shot = w.shot
        job = Job.of(shot, self.stores.of(shot))
        holds: list[SlotHold] = []  # the one slot held while the shot's task is (or may be) in progress
        resubmits = 0
        remake = w.action is Action.SUBMIT  # a done or failed row is made again once, at the start
        uploads_again = False  # once the provider could not read the shot's uploads

        def hold(account: Account) -> SlotHold:
            if holds and holds[0].slots is account.slots:
                return holds[0]
            for old in holds:
                old.release()
            holds[:] = [SlotHold(account.slots)]
            return holds[0]

        try:
            while True:
                record = self.run.ledger.get(shot.fingerprint)
                assert record is not None
                state = record.state
                if state is LedgerState.PLANNED or (remake and state in _REMADE):
                    if state is not LedgerState.PLANNED:
                        self.run.ledger.reset(shot.fingerprint, w.reason)
                    elif self.submitter.fresh and record.attempts == 0 and not self.run.options.selection.forced(shot):
                        try:
                            adopted = await self._adopt_existing(w)
                        except Unreachable as error:
                            ended.append(self._not_sent(shot, str(error)))
                            return
                        if adopted is not None:
                            w.adopted = adopted
                            continue  # a task an earlier run paid for: follow it instead of paying again
                    remake = False
                    for old in holds:
                        old.release()
                    await self.submitter.turn(shot)
                    try:
                        account, slot = await self.pool.choose(shot)
                    except NotSent as error:
                        self.submitter.answered(shot)
                        ended.append(self._not_sent(shot, str(error)))
                        return
                    holds[:] = [slot]
                    try:
                        if not await self.submitter.submit(shot, account.provider, account, slot, fresh_uploads=uploads_again):
                            return
                    except AccountLost as error:
                        self.pool.lose(account, error, shot.key)
                        continue  # nothing was made: the shot goes to another account
                    except NotSent as error:
                        ended.append(self._not_sent(shot, str(error)))
                        return
                    except Lost as error:
                        ended.append(Outcome(ShotStatus.ELSEWHERE, f"{error}: it judged this run gone"))
                        self.run.log.event(shot.key, "taken over", message=str(error))
                        return
                elif state is LedgerState.SUBMITTING:
                    account = self.pool.bound(record.account)
                    slot = hold(account)
                    slot.take()  # a task the submit may have made occupies a slot
                    found = await self.submitter.reconcile(shot, account.provider, account)
                    if found is Reconciled.AMBIGUOUS:
                        return
                    if found is Reconciled.NO_TASK:  # the shot is planned again
                        slot.release()
                elif state is LedgerState.SUBMITTED:
                    account = self.pool.bound(record.account)
                    slot = hold(account)
                    slot.take()
                    status = await account.watcher.follow(job, account.provider, record.task_id or "", record.submitted_at)
                    slot.release()
                    if not uploads_again and self.submitter.unreadable_uploads(shot, status, account):
                        # Failed tasks bill nothing: upload afresh and send once more.
                        uploads_again = True
                        self.run.ledger.failed(shot.fingerprint, status.code or "Failed", status.message or "", retry=True)
                        self.run.log.event(shot.key, "uploading again", code=status.code, message="the provider could not read the uploaded files")
                        continue
                    may_resubmit = resubmits < self.run.options.max_resubmits
                    if self.submitter.settle(job, status, account.provider, resubmit=may_resubmit, codes=account.resubmit_codes):
                        resubmits += 1
                    elif status.state != "succeeded":
                        return
                elif state is LedgerState.SUCCEEDED or (state is LedgerState.DOWNLOADED and w.action is Action.DOWNLOAD):
                    await self.downloader.download(job, self._downloading(record.account, shot).provider)
                    return
                else:
                    return
        finally:
            for old in holds:
                old.release()

    def _downloading(self, ledger_account: str, shot: PlannedShot) -> Account:
        """The account a result is fetched through: the one that made the task, else (a video
        the store knew before its ledger row, its account unrecorded) the shot's first."""
        try:
            return self.pool.bound(ledger_account)
        except Stalled:
            return self.pool.first(shot)

    async def _adopt_existing(self, w: Work) -> str | None:
        """On a new ledger: a task an earlier run paid for, looked up in each account the shot may use."""
        for account in self.pool.candidates(w.shot):
            adopted = await self.submitter.adopt_existing(w, account.provider, account)
            if adopted is not None:
                return adopted
        return None

    # --- an earlier version's paid task ---------------------------------------

    async def recover(self, record: ShotRecord, shot: PlannedShot) -> None:
        taken = self.run.ledger.adopt(record.fingerprint)
        if taken is None:
            return
        record = taken  # as it stands now: another run may have moved it on since the run began
        if not record.state.unfinished:
            return
        job = Job.orphan(record, shot, self.stores.of(shot))
        self.run.log.event(job.key, "recovering", task=record.task_id, message="an earlier version of the shot, already paid for")

        async def walk() -> None:
            # The account that made the task follows it; a result is fetched through it too.
            account = self.pool.bound(record.account) if record.state is LedgerState.SUBMITTED else self._downloading(record.account, shot)
            provider = account.provider
            if record.state is LedgerState.SUBMITTED:
                slot = SlotHold(account.slots)
                slot.take()
                try:
                    status = await account.watcher.follow(job, provider, record.task_id or "", record.submitted_at)
                finally:
                    slot.release()
                self.submitter.settle(job, status, provider, resubmit=False)
            if (self.run.ledger.get(job.fingerprint) or record).state is LedgerState.SUCCEEDED:
                await self.downloader.download(job, provider)

        await self._guarded(job.fingerprint, job.key, walk)
        final = self.run.ledger.get(job.fingerprint)
        self.recovered.append(
            {
                "key": job.key,
                "fingerprint": job.fingerprint,
                "task_id": record.task_id,
                "state": (final.state if final else record.state).value,
                "output": final.output if final and final.state is LedgerState.DOWNLOADED else None,
            }
        )
