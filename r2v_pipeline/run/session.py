"""One ``r2v run`` of a plan: ledger, providers, runner and signals, to its outcome.

What the run did goes back to its caller (pipeline.py), which writes the reports:
this layer knows nothing of them.
"""

from __future__ import annotations

import signal
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from typing import TYPE_CHECKING

from .. import exits
from ..plan.planner import Plan, state_dir_of
from .actions import Stores
from .ledger import Locked, Unusable
from .ledger_store import Charge, LedgerStore, LedgerUnreachable, Records
from .open_ledger import open_store
from .progress import Log
from .reach_policy import Unreachable
from .states import ShotStatus
from .store import VideoStore, sweep
from .work import RunOptions, RunResult, decide_work, orphan_rows, shots_needing_providers

# The runner, the provider clients, HTTP and the event loop are imported only once a
# shot must be sent, asked about or fetched: a rerun that finds nothing to do (a cron
# job's usual case) ends without loading them.
if TYPE_CHECKING:
    from .runner import Runner
    from .targets import OpenRedirect

@dataclass(frozen=True)
class Session:
    """How to run: the run's options and which providers it talks to."""

    options: RunOptions = field(default_factory=RunOptions)
    redirect: OpenRedirect | None = None  # providers answering elsewhere (a simulator), opened by the caller's wiring
    exclusive: bool = False  # end at once (exits.LOCKED) when another run works on the ledger
    ledger_url: str | None = None  # a shared PostgreSQL ledger (open_ledger.py); None: the SQLite file in the state folder


@dataclass(frozen=True)
class Outcome:
    """What a run did, the ledger's rows of its shots as it ended, and the exit code its facts give."""

    result: RunResult
    records: Records
    started: float
    finished: float
    interrupted: bool
    simulated: bool
    code: int
    log: Log  # the run's log, which keeps the provider keys out
    run_id: str = ""
    charges: tuple[Charge, ...] = ()  # every billed task the ledger knows, this run's included (spend to date)


def run_plan(plan: Plan, session: Session, log: Log, writes: Sequence[Path] = ()) -> Outcome | int:
    """Run the plan; an exit code when it could not start. ``writes``: the other folders
    the caller will write, checked with the run's own before anything is sent."""
    folder = state_dir_of(plan)
    if folder is None:
        log.note("r2v: nothing to run: the manifests have no shots")
        return exits.OK
    problem = unusable_folder([*{s.store_dir for s in plan.shots}, *{s.output.parent for s in plan.shots}, *writes])
    if problem is not None:
        log.note(f"r2v: {problem}; nothing was sent", "environment", level="error")
        return exits.ENVIRONMENT
    try:
        ledger = open_store(session.ledger_url, folder, exclusive=session.exclusive, simulated=session.redirect is not None, run_id=log.run_id)
    except Locked as error:
        log.note(f"r2v: {error}; nothing was done (--exclusive)", "locked", level="error")
        return exits.LOCKED
    except (Unusable, LedgerUnreachable) as error:
        log.note(f"r2v: {error}; nothing was sent", "environment", level="error")
        return exits.ENVIRONMENT
    try:
        _begin(plan, ledger, log)
        return _run(plan, session, ledger, log, folder)
    except Exception as error:
        gone = ledger_gone(error)
        if gone is None:
            raise
        # Nothing more can be recorded, so nothing more was sent. A submit already on the
        # wire stays 'submitting' in the ledger: the next run finds its task at the provider.
        log.note(
            f"r2v: {gone}; the run stopped and sent nothing more. Submits whose answer could not be recorded "
            "are reconciled with the provider's task list by the next run, not paid again",
            "environment", level="error",
        )  # fmt: skip
        return exits.ENVIRONMENT
    finally:
        ledger.close()


def ledger_gone(error: BaseException) -> LedgerUnreachable | None:
    """The lost ledger server behind an error, also inside the groups a task group raises."""
    if isinstance(error, LedgerUnreachable):
        return error
    for inner in getattr(error, "exceptions", ()):
        found = ledger_gone(inner)
        if found is not None:
            return found
    return None


def unusable_folder(folders: list[Path]) -> str | None:
    """Why one of the folders a run writes cannot be written (not a folder, no permission,
    a full disk), before anything is sent; None when all can be."""
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".r2v-probe-"):
                pass
        except OSError as error:
            return f"cannot write to {folder}: {error.strerror or error}"
    return None


def _begin(plan: Plan, ledger: LedgerStore, log: Log) -> None:
    """Before deciding anything: say what became of a corrupt ledger, let a new ledger
    learn the paid videos from the store, and clear what killed runs left behind."""
    if ledger.moved_aside is not None:
        log.note(
            f"r2v: the ledger could not be read; it was moved aside to {ledger.moved_aside} (kept, never deleted) "
            "and a new one begun from the video store; tasks in flight are looked up at the provider",
            "ledger", level="error",
        )  # fmt: skip
    stores = {root: VideoStore(root) for root in {folder.resolve() for folder in {s.store_dir for s in plan.shots}}}
    if ledger.fresh:
        added = ledger.rebuild([(v.fingerprint, v.meta, str(v.path)) for store in stores.values() for v in store.objects()])
        if added:
            log.note(f"r2v: a new ledger: {added} paid video(s) found in the video store")
    now = time.time()
    for store in stores.values():
        store.sweep(now)
    for folder in {s.output.parent for s in plan.shots}:
        sweep(folder, lambda _: False, now)


def _run(plan: Plan, session: Session, ledger: LedgerStore, log: Log, folder: Path) -> Outcome | int:
    """The run itself, or an exit code when it could not start."""
    with ExitStack() as stack:
        started = time.time()
        stores = Stores()
        work = decide_work(plan, ledger, stores, session.options.selection, log, started)
        orphans = orphan_rows(plan, ledger)  # read once: the providers built are the ones these need
        needed = shots_needing_providers(work, orphans)
        if not orphans and not any(w.carried for w in work):
            # Nothing to send, ask, fetch or place (a rerun, nothing changed): each shot ends as
            # decided, and no simulator, provider, HTTP client or event loop is started.
            for w in work:
                w.status = ShotStatus.settled(w.action)
            log.finish()  # a terminal's board comes down, as after any run
            return _ended(plan, session, ledger, log, RunResult(work, [], [], []), started, interrupted=False)
        import anyio

        from ..providers.http import MissingKey, download_client
        from .runner import Runner
        from .targets import build_providers

        try:
            sim = stack.enter_context(session.redirect(folder)) if session.redirect and needed else None  # none for offline work
        except ValueError as error:  # the simulator's state folder cannot be used, e.g. another simulated run holds it
            log.note(f"r2v: {error}", "invalid", level="error")
            return exits.INVALID
        except Unreachable as error:
            log.note(f"r2v: {error}; nothing was sent", "unreachable", level="error")
            return exits.UNREACHABLE
        try:
            providers, keys = build_providers(needed, ledger, sim)
        except MissingKey as error:
            log.note(f"r2v: {error} (or try the simulator: r2v run --simulate)", "invalid", level="error")
            return exits.INVALID
        log = log.redacting(keys)
        if sim is not None:
            try:
                sim.declare(needed)
            except Unreachable as error:
                log.note(f"r2v: {error}; nothing was sent", "unreachable", level="error")
                return exits.UNREACHABLE
            log.note(f"simulated providers at {sim.where} (time scale {sim.time.scale})")
        downloads = download_client(local=sim is not None)
        runner = Runner(plan, ledger, log, work, orphans, providers, session.options, stores, downloads)
        try:
            interrupted = anyio.run(_run_until_signal, runner)
        finally:
            log.finish()
    return _ended(plan, session, ledger, log, runner.result(), started, interrupted)


def _ended(plan: Plan, session: Session, ledger: LedgerStore, log: Log, result: RunResult, started: float, interrupted: bool) -> Outcome:
    """The run's end in the ledger (its history row) and its outcome."""
    records = ledger.records([w.shot.fingerprint for w in result.work])
    finished, code = time.time(), exit_code(result, interrupted)
    ledger.ended(started, finished, code, sorted({f"{s.series}/{s.episode}" for s in plan.shots}))
    return Outcome(result, records, started, finished, interrupted, session.redirect is not None, code, log, ledger.run_id, tuple(ledger.charges()))


async def _run_until_signal(runner: Runner) -> bool:
    """Run; on SIGINT/SIGTERM stop submitting and end (submits in flight still get
    their answer recorded). True when a signal stopped the run."""
    import anyio

    stopped = False
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            nonlocal stopped
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    stopped = True
                    runner.log.note("stopping: no new submits; tasks already submitted resume on the next run")
                    group.cancel_scope.cancel()
                    return

        # Only the main thread may take signals; a run in a worker thread (the Python
        # API's run_async) leaves them to the program that started it.
        if threading.current_thread() is threading.main_thread():
            group.start_soon(watch)
        try:
            await runner.run()
        finally:
            group.cancel_scope.cancel()
            await runner.aclose()
    return stopped


def exit_code(result: RunResult, interrupted: bool) -> int:
    """Interrupted beats everything; then a machine that could not keep a video; then a
    shot that needs a person (failed, held, ambiguous); an outage that left shots
    unsent or unfinished is its own code."""
    if interrupted:
        return exits.INTERRUPTED
    if result.environment:
        return exits.ENVIRONMENT
    waiting = [w for w in result.work if w.status.needs_attention]
    if not waiting:
        return exits.OK
    if result.unreachable and all(w.status in (ShotStatus.UNSENT, ShotStatus.UNFINISHED) for w in waiting):
        return exits.UNREACHABLE
    return exits.FAILED
