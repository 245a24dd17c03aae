"""One ``r2v run`` from plan to report: providers, ledger, runner, signals, report files."""

from __future__ import annotations

import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

import anyio
import httpx

from .. import exits
from ..plan.planner import Plan
from ..providers.http import MissingKey
from ..report.build import build_report
from ..report.html import render_html
from ..report.junit import write_junit
from ..report.markdown import render_markdown
from .ledger import Ledger, Locked, Unusable
from .progress import Log
from .reach import Unreachable
from .runner import Runner, RunOptions
from .store import VideoStore, sweep, write_json, write_text
from ..simulation import SimulateOptions, declare_public_media, simulation
from .targets import build_providers

DONE = ("downloaded", "skipped", "copied", "reused", "unselected")
SIMULATOR_STATE = "simulator"  # the embedded simulator's state, under the ledger's folder


@dataclass(frozen=True)
class RunRequest:
    options: RunOptions = field(default_factory=RunOptions)
    simulate: SimulateOptions | None = None
    attach: str | None = None  # URL of a simulator started with ``r2v sim``
    log_format: str | None = None  # tty | plain | json; None: tty on a terminal
    report_dir: Path | None = None
    junit: Path | None = None  # a JUnit XML file of the run, one test case per shot
    exclusive: bool = False  # end at once (exits.LOCKED) when another run works on the ledger


def state_dir_of(plan: Plan) -> Path | None:
    """The one ledger folder the plan's shots share (None when there are no shots)."""
    folders = {s.state_dir.resolve() for s in plan.shots}
    if len(folders) > 1:
        raise ValueError("the episodes keep their ledgers in different folders (output.state); run them apart")
    return next(iter(folders), None)


def report_dir_of(plan: Plan) -> Path:
    """Beside the videos: <output dir>/report.json links to <series>/<episode>/<shot>.mp4."""
    return plan.shots[0].output.parent.parent.parent if plan.shots else Path.cwd()


def execute(plan: Plan, request: RunRequest, stream: TextIO | None = None) -> int:
    stream = stream or sys.stderr
    log = Log.choose(request.log_format, stream)
    folder = state_dir_of(plan)
    if folder is None:
        log.note("r2v: nothing to run: the manifests have no shots")
        return exits.OK
    report_dir = request.report_dir or report_dir_of(plan)
    problem = unusable_folder([*{s.store_dir for s in plan.shots}, *{s.output.parent for s in plan.shots}, report_dir])
    if problem is not None:
        log.note(f"r2v: {problem}; nothing was sent", "environment", level="error")
        return exits.ENVIRONMENT
    try:
        ledger = Ledger.open(folder, exclusive=request.exclusive)
    except Locked as error:
        log.note(f"r2v: {error}; nothing was done (--exclusive)", "locked", level="error")
        return exits.LOCKED
    except Unusable as error:
        log.note(f"r2v: {error}; nothing was sent", "environment", level="error")
        return exits.ENVIRONMENT
    try:
        _begin(plan, ledger, log)
        outcome = _run(plan, request, ledger, log, folder)
        if isinstance(outcome, int):
            return outcome
        runner, interrupted, simulated = outcome
        code = _exit_code(runner, interrupted)
        report = build_report(
            runner.work, ledger, report_dir, started=runner.started, finished=time.time(), exit_code=code,
            interrupted=interrupted, simulated=simulated, currency=plan.currency, recovered=runner.recovered,
            unreachable=runner.unreachable,
        )
        if code == exits.OK and report["totals"]["billing_differences"]:
            code = report["run"]["exit_code"] = exits.FAILED  # billed other than planned: a person should look
    finally:
        ledger.close()
    try:
        _write_reports(report, plan, report_dir, request.junit)
    except OSError as error:
        log.note(
            f"r2v: could not write the report in {report_dir}: {error.strerror or error}; every video and the ledger are kept",
            "environment", level="error",
        )  # fmt: skip
        return exits.ENVIRONMENT
    log.note(_summary(report, report_dir))
    return code


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


def _begin(plan: Plan, ledger: Ledger, log: Log) -> None:
    """Before deciding anything: say what became of a corrupt ledger, let a new ledger
    learn the paid videos from the store, and clear what killed runs left behind."""
    if ledger.moved_aside is not None:
        log.note(
            f"r2v: the ledger could not be read; it was moved aside to {ledger.moved_aside} (kept, never deleted) "
            "and a new one begun from the video store; tasks in flight are looked up at the provider",
            "ledger", level="error",
        )  # fmt: skip
    stores = {s.store_dir.resolve(): VideoStore(s.store_dir.resolve()) for s in plan.shots}
    if ledger.fresh:
        added = ledger.rebuild([(v.fingerprint, v.meta, str(v.path)) for store in stores.values() for v in store.objects()])
        if added:
            log.note(f"r2v: a new ledger: {added} paid video(s) found in the video store")
    now = time.time()
    for store in stores.values():
        store.sweep(now)
    for folder in {s.output.parent for s in plan.shots}:
        sweep(folder, lambda _: False, now)


def _run(plan: Plan, request: RunRequest, ledger: Ledger, log: Log, folder: Path) -> int | tuple[Runner, bool, bool]:
    """The run itself: (runner, interrupted, simulated), or an exit code when it could not start."""
    simulate = request.simulate
    if simulate is not None and simulate.state_dir is None:
        # Beside the (simulated) ledger: the next run meets the simulator that knows its tasks.
        simulate = replace(simulate, state_dir=folder / SIMULATOR_STATE)
    with ExitStack() as stack:
        try:
            sim = stack.enter_context(simulation(simulate, request.attach))
        except ValueError as error:  # the simulator's state folder cannot be used, e.g. another simulated run holds it
            log.note(f"r2v: {error}", "invalid", level="error")
            return exits.INVALID
        except Unreachable as error:
            log.note(f"r2v: {error}; nothing was sent", "unreachable", level="error")
            return exits.UNREACHABLE
        downloads = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True, trust_env=sim is None)
        runner = Runner(plan, ledger, log, request.options, downloads=downloads)
        try:
            providers, keys = build_providers(runner.shots_needing_providers(), ledger, sim)
        except MissingKey as error:
            log.note(f"r2v: {error} (or try the simulator: r2v run --simulate)", "invalid", level="error")
            return exits.INVALID
        runner.providers = providers
        runner.log.secrets = keys
        if sim is not None:
            try:
                declare_public_media(sim, runner.shots_needing_providers())
            except Unreachable as error:
                log.note(f"r2v: {error}; nothing was sent", "unreachable", level="error")
                return exits.UNREACHABLE
            runner.log.note(f"simulated providers at {sim.dashscope_url.rsplit('/api', 1)[0]} (time scale {sim.time.scale})")
        try:
            interrupted = anyio.run(_run_until_signal, runner)
        finally:
            runner.log.finish()
    return runner, interrupted, sim is not None


def _write_reports(report: dict, plan: Plan, report_dir: Path, junit: Path | None) -> None:
    write_json(report_dir / "report.json", report)
    write_text(report_dir / "report.md", render_markdown(report))
    write_text(report_dir / "report.html", render_html(report, plan.shots, report_dir))
    if junit is not None:
        write_junit(report, junit)


async def _run_until_signal(runner: Runner) -> bool:
    """Run; on SIGINT/SIGTERM stop submitting and end (submits in flight still get
    their answer recorded). True when a signal stopped the run."""
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

        group.start_soon(watch)
        try:
            await runner.run()
        finally:
            group.cancel_scope.cancel()
            await runner.aclose()
    return stopped


def _exit_code(runner: Runner, interrupted: bool) -> int:
    """Interrupted beats everything; then a machine that could not keep a video; then a
    shot that needs a person (failed, held, ambiguous); an outage that left shots
    unsent or unfinished is its own code."""
    if interrupted:
        return exits.INTERRUPTED
    if runner.environment:
        return exits.ENVIRONMENT
    waiting = [w for w in runner.work if w.status not in DONE]
    if not waiting:
        return exits.OK
    if runner.unreachable and all(w.status in ("unsent", "unfinished") for w in waiting):
        return exits.UNREACHABLE
    return exits.FAILED


def _summary(report: dict, report_dir: Path) -> str:
    totals = report["totals"]
    states = ", ".join(f"{n} {s}" for s, n in totals["by_status"].items())
    return f"{totals['done']}/{totals['shots']} done ({states}); report: {report_dir / 'report.md'}"
