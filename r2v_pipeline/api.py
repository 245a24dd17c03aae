"""The Python API: validate, plan, run, status, history and assemble, with typed results.

For programs that drive r2v (an orchestrator, a notebook, a studio's own
scheduler). Everything here is public and listed in ``__all__``; every other
module of the package is private, free to change between versions. The
functions compose the same parts as the ``r2v`` command line (planner, run
session, pipeline, simulation): a run from here is the run ``r2v run`` makes,
with the same ledger, store, reports and exit codes.

Heavy parts (the runner, HTTP clients, PyAV) are imported by the function
that needs them, so importing the package stays cheap.
"""

from __future__ import annotations

import io
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Mapping, Sequence, TextIO, Union

from . import __version__, config, exits
from .plan.action import Action
from .run.states import LedgerState, ShotStatus

if TYPE_CHECKING:
    from .diagnostics import Diagnostics
    from .plan.planner import Plan as _Plan, PlanOptions
    from .run.selection import Selection
    from .run.ledger_store import LedgerView

__all__ = [
    "__version__",
    "Action",
    "Cut",
    "Diagnostic",
    "Event",
    "InvalidInput",
    "LedgerEntry",
    "LedgerState",
    "Options",
    "Plan",
    "PlannedShot",
    "RunOptions",
    "RunResult",
    "ShotHistory",
    "ShotResult",
    "ShotState",
    "ShotStatus",
    "Simulator",
    "Validation",
    "Version",
    "assemble_episodes",
    "exits",
    "history",
    "make_plan",
    "run_plan",
    "run_plan_async",
    "status",
    "validate",
]

Files = Iterable[Union[str, Path]]

# --- what goes in ------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """Which manifests' shots, planned how. A folder left None comes from the
    environment (R2V_OUTPUT_DIR, R2V_STATE_DIR), else the manifest, else its default."""

    provider: str | None = None  # override the manifests' provider
    region: str | None = None
    base_url: str | None = None
    budget_seconds: Decimal | None = None  # refuse plans billing more
    budget_money: Decimal | None = None
    output_dir: Path | None = None
    state_dir: Path | None = None
    simulated: bool = False  # the ledger and videos of simulated runs (a run with a simulator sets it)
    only: tuple[str, ...] = ()  # glob patterns over id, episode/id or series/episode/id; empty: all
    ledger: str | None = None  # a shared PostgreSQL ledger's URL; None: $R2V_LEDGER_URL, else the state folder's file


@dataclass(frozen=True)
class Simulator:
    """The embedded provider simulator: no API key, nothing billed."""

    time_scale: float = 0.02  # wall seconds per provider second
    seed: int = 0
    faults: str = ""  # as ``r2v sim --faults``


@dataclass(frozen=True)
class RunOptions:
    """How to run, as ``r2v run``'s flags say it."""

    force: tuple[str, ...] = ()  # make matching shots again even if done (bills again)
    retry_failed: bool = False
    remake_reformatted: bool = False
    max_resubmits: int = 2
    settle: float = 120.0  # seconds after an unanswered submit before an empty task list is believed
    give_up_after: float = 300.0  # seconds a provider may stay unreachable
    exclusive: bool = False  # end at once (exits.LOCKED) when another run holds the ledger
    simulator: Simulator | None = None  # run against the embedded simulator
    attach: str | None = None  # or against an ``r2v sim`` at this URL
    report_dir: Path | None = None  # default: the output folder
    junit: Path | None = None
    log: TextIO | None = None  # where the progress lines also go (None: nowhere)
    log_format: Literal["plain", "json"] = "plain"

    @property
    def simulated(self) -> bool:
        return self.simulator is not None or self.attach is not None


# --- what comes out ----------------------------------------------------------------------


@dataclass(frozen=True)
class Diagnostic:
    """A problem in a manifest; line and column count from 1. ``field`` is the manifest
    path the message names (``shots[arrival].duration``), when it names one."""

    file: str
    line: int
    column: int
    field: str | None
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}:{self.column}: {prefix}{self.message}"


class InvalidInput(Exception):
    """The manifests (or the options) cannot be used; nothing was sent or spent."""

    def __init__(self, diagnostics: Sequence[Diagnostic], problems: Sequence[str] = ()):
        self.diagnostics = tuple(diagnostics)
        self.problems = tuple(problems)  # what is wrong beyond a manifest's place (a pattern, the folders)
        super().__init__("\n".join([*(str(d) for d in self.diagnostics if d.severity == "error"), *self.problems]))


@dataclass(frozen=True)
class Validation:
    """What validating the manifests found: every diagnostic, and how many episodes, shots and requests they hold."""

    diagnostics: tuple[Diagnostic, ...]
    episodes: int
    shots: int
    requests: int  # a shot with takes is several requests

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "error")

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "warning")


@dataclass(frozen=True)
class PlannedShot:
    """One request a run would send, and what a run would do with it now."""

    key: str  # series/episode/shot, with #takeN when the shot has takes
    series: str
    episode: str
    shot: str
    take: int | None
    manifest: str
    provider: str
    model: str
    action: Action
    reason: str
    body: Mapping[str, Any]  # the exact request body
    billed_seconds: Decimal
    billed_exact: bool  # False when the provider's bill can only be estimated
    cost: Decimal | None  # None when the manifests give no price
    fingerprint: str
    output: Path

    @property
    def spends(self) -> bool:
        """A run would submit it, and pay."""
        return self.action.spends


@dataclass(frozen=True)
class Plan:
    """The planned shots (with what each would do now), their currency, and the budgets a run would cross."""

    shots: tuple[PlannedShot, ...]
    currency: str | None
    budget_problems: tuple[str, ...]  # a budget the shots to submit would cross: a run refuses
    warnings: tuple[Diagnostic, ...]

    @property
    def to_submit(self) -> tuple[PlannedShot, ...]:
        return tuple(s for s in self.shots if s.spends)

    @property
    def billed_seconds(self) -> Decimal:
        """What submitting the shots to submit would bill."""
        return sum((s.billed_seconds for s in self.to_submit), Decimal(0))

    @property
    def cost(self) -> Decimal | None:
        costs = [s.cost for s in self.to_submit]
        return None if None in costs else sum((c for c in costs if c is not None), Decimal(0))


@dataclass(frozen=True)
class Event:
    """One line of a run's progress, as the JSON log prints it: an event of a shot
    (``shot`` set: submitted, succeeded, downloaded, failed, ...) or a note about the run."""

    name: str
    time: datetime
    shot: str | None = None  # the shot's key
    level: str = "info"
    message: str | None = None
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # the rest: task, code, path, ...

    def __str__(self) -> str:
        words = [self.time.astimezone().strftime("%H:%M:%S"), *([self.shot] if self.shot else []), self.name]
        words += [f"{k}={v}" for k, v in self.fields.items()]
        return " ".join(words) + (f": {self.message}" if self.message else "")


@dataclass(frozen=True)
class ShotResult:
    """What became of a shot in a run (a row of report.json)."""

    key: str
    status: ShotStatus
    reason: str
    fingerprint: str
    task_id: str | None
    billed_seconds: Decimal
    billed_in_this_run: bool
    cost: Decimal | None
    output: Path | None  # the video, when done


@dataclass(frozen=True)
class RunResult:
    """How a run ended: its exit code, each shot's outcome and where its reports are."""

    exit_code: int  # as ``r2v run`` exits (exits.MEANINGS)
    shots: tuple[ShotResult, ...]  # empty when the run could not start
    report_dir: Path
    simulated: bool

    @property
    def ok(self) -> bool:
        return self.exit_code == exits.OK

    @property
    def billed_seconds(self) -> Decimal:
        """Billed by this run (not by earlier ones)."""
        return sum((s.billed_seconds for s in self.shots if s.billed_in_this_run), Decimal(0))


@dataclass(frozen=True)
class ShotState:
    """A planned shot as the ledger knows it (``r2v status``)."""

    key: str
    fingerprint: str
    state: LedgerState | None  # None: no run has touched this version of the shot
    task_id: str | None
    attempts: int
    code: str | None
    message: str | None
    output: Path | None
    updated: datetime | None
    planned_seconds: Decimal | None
    billed_seconds: Decimal | None  # as the provider's usage says, where it says


@dataclass(frozen=True)
class LedgerEntry:
    """One event of a shot's history in the ledger."""

    at: datetime
    event: str
    detail: str | None


@dataclass(frozen=True)
class Version:
    """One request the ledger recorded for a shot: the shot as it was at some edit."""

    fingerprint: str
    current: bool  # the request the manifests ask for now
    state: LedgerState
    task_id: str | None
    attempts: int
    submitted: datetime | None
    paid_by_run: str | None  # the run that recorded the submit
    planned_seconds: Decimal | None
    billed_seconds: Decimal | None
    entries: tuple[LedgerEntry, ...]


@dataclass(frozen=True)
class ShotHistory:
    """Every version of one shot the ledger knows, newest first."""

    key: str
    versions: tuple[Version, ...]  # newest first; empty when no run touched the shot


@dataclass(frozen=True)
class Cut:
    """An episode's videos joined in manifest order, or why they could not be."""

    episode: str  # series/episode
    output: Path
    written: bool
    seconds: float | None
    problems: tuple[str, ...]  # a shot not ready (missing, stale), or the join failing


# --- the functions -----------------------------------------------------------------------


def validate(files: Files, options: Options = Options()) -> Validation:
    """Every problem of the manifests at once, as values; nothing is sent."""
    from .diagnostics import Diagnostics
    from .plan.planner import make_plan as plan_of

    found = Diagnostics()
    planned = plan_of(_paths(files), _plan_options(options, False), found)
    shots = len({(s.series, s.episode, s.shot) for s in planned.shots})
    return Validation(_diagnostics(found), len(planned.episodes), shots, len(planned.shots))


def make_plan(files: Files, options: Options = Options()) -> Plan:
    """The requests a run would send, each with what a run would do with it now.
    Raises InvalidInput when the manifests cannot be used."""
    from .plan.budget import over_budget
    from .plan.output import NOT_MADE, to_submit
    from .run.actions import Stores, decide_all

    planned, selection, warnings = _load(files, options, None)
    ledger = _peek(planned, options)
    try:
        decisions = decide_all(planned.shots, ledger, Stores(), selection, time.time())
    finally:
        if ledger:
            ledger.close()
    shots = []
    for s in planned.shots:
        decided = decisions.get(s.key, NOT_MADE)
        shots.append(
            PlannedShot(
                s.key, s.series, s.episode, s.shot, s.take, s.manifest, s.spec.provider, s.spec.model,
                decided.action, decided.reason, MappingProxyType(json.loads(json.dumps(s.body))),
                s.billed.total, s.billed.exact, s.cost, s.fingerprint, s.output,
            )
        )  # fmt: skip
    problems = over_budget(planned.budgets, to_submit(planned, decisions), planned.currency)
    return Plan(tuple(shots), planned.currency, tuple(problems), warnings)


def run_plan(
    files: Files, options: Options = Options(), run_options: RunOptions = RunOptions(), on_event: Callable[[Event], None] | None = None
) -> RunResult:
    """Plan, submit, poll, download and write the reports, as ``r2v run`` does; the
    progress goes to ``on_event``, one Event a line of the run's log. Raises
    InvalidInput (nothing sent) when the manifests or options cannot be used.
    Inside a running event loop (a notebook, an async service) use ``run_plan_async``."""
    from .pipeline import RunRequest, run_and_report
    from .run.open_ledger import ledger_url
    from .run.reach_policy import ReachPolicy
    from .run.work import RunOptions as Settings
    from .simulation import SimulateOptions

    planned, selection, _ = _load(files, options, run_options)
    sim = run_options.simulator
    how = run_options
    settings = Settings(selection, how.max_resubmits, settle=how.settle, reach=ReachPolicy(patience=how.give_up_after))
    simulate = SimulateOptions(sim.time_scale, sim.seed, sim.faults) if sim is not None else None
    # The log is written as JSON and read back into Events: the same lines a JSON log prints.
    request = RunRequest(
        options=settings, simulate=simulate, attach=how.attach, log_format="json", report_dir=how.report_dir,
        junit=how.junit, exclusive=how.exclusive, ledger=ledger_url(options.ledger),
    )  # fmt: skip
    sink = _EventSink(on_event, run_options.log, run_options.log_format)
    done = run_and_report(planned, request, sink)
    shots = tuple(_shot_result(s, done.report_dir) for s in (done.report or {}).get("shots", ()))
    return RunResult(done.code, shots, done.report_dir, run_options.simulated)


async def run_plan_async(
    files: Files, options: Options = Options(), run_options: RunOptions = RunOptions(), on_event: Callable[[Event], None] | None = None
) -> RunResult:
    """``run_plan`` for asyncio or trio programs: the run works in a thread of its own
    and ``on_event`` is called in the caller's event loop. Cancelling the awaiting task
    does not stop a run that has begun (a paid task is never dropped halfway): the
    call returns when the run ends, and an interrupted run resumes on the next."""
    import anyio.from_thread
    import anyio.to_thread

    relay: Callable[[Event], None] | None = None
    if on_event is not None:
        handler = on_event

        def relay(event: Event) -> None:
            anyio.from_thread.run_sync(handler, event)

    def work() -> RunResult:
        return run_plan(files, options, run_options, relay)

    return await anyio.to_thread.run_sync(work)


def status(files: Files, options: Options = Options()) -> tuple[ShotState, ...]:
    """Each planned shot (``options.only`` applies) as the ledger knows it."""
    planned, selection, _ = _load(files, options, None)
    ledger = _peek(planned, options)
    try:
        records = ledger.records() if ledger else {}
    finally:
        if ledger:
            ledger.close()
    states = []
    for s in planned.shots:
        if not selection.selected(s):
            continue
        r = records.get(s.fingerprint)
        states.append(
            ShotState(
                s.key, s.fingerprint, r.state if r else None, r.task_id if r else None, r.attempts if r else 0,
                r.code if r else None, r.message if r else None,
                Path(r.output) if r and r.output and r.state is LedgerState.DOWNLOADED else None,
                _when(r.updated_at) if r else None, _decimal(r.planned_seconds) if r else None,
                _decimal(r.billed_seconds) if r else None,
            )
        )  # fmt: skip
    return tuple(states)


def history(files: Files, options: Options = Options()) -> tuple[ShotHistory, ...]:
    """What the ledger remembers of each planned shot: every version of its request
    (one per edit that changed what is sent), newest first, with the ledger's events."""
    planned, selection, _ = _load(files, options, None)
    shots = [s for s in planned.shots if selection.selected(s)]
    current = {s.fingerprint for s in shots}
    ledger = _peek(planned, options)
    if ledger is None:
        return tuple(ShotHistory(s.key, ()) for s in shots)
    from .run.ledger_store import SENT_THROUGH

    try:
        found = ledger.versions([s.key for s in shots])
        result = []
        for s in shots:
            versions = tuple(
                Version(
                    r.fingerprint, r.fingerprint in current, r.state, r.task_id, r.attempts,
                    _when(r.submitted_at) if r.submitted_at else None, r.submitted_by,
                    _decimal(r.planned_seconds), _decimal(r.billed_seconds),
                    tuple(
                        LedgerEntry(_when(at), event, detail) for at, event, detail in ledger.events(r.fingerprint) if event != SENT_THROUGH
                    ),  # (which key a submit went out with is the ledger's own bookkeeping)
                )
                for r in found.get(s.key, [])
            )  # fmt: skip
            result.append(ShotHistory(s.key, versions))
        return tuple(result)
    finally:
        ledger.close()


def assemble_episodes(files: Files, options: Options = Options()) -> tuple[Cut, ...]:
    """Join each episode's videos into <output>/<series>/<episode>.mp4 (``options.only``:
    <episode>.selection.mp4), as ``r2v assemble``. When any episode has a shot not
    ready, nothing is written and each cut says what is missing."""
    from .assemble import assemble, plan_cuts
    from .media.concat import ConcatError

    planned, selection, _ = _load(files, options, None)
    cuts = plan_cuts(planned, keep=selection.selected if selection.only else None)
    if any(c.not_ready for c in cuts):
        return tuple(Cut(c.key, c.output, False, None, tuple(f"{p.label}: {p.problem}" for p in c.not_ready)) for c in cuts)
    result = []
    for c in cuts:
        try:
            made = assemble(c)
        except ConcatError as error:
            result.append(Cut(c.key, c.output, False, None, (str(error),)))
            continue
        seconds = made.info.seconds if made.info.seconds is not None else made.joined.seconds
        result.append(Cut(c.key, c.output, True, seconds, ()))
    return tuple(result)


# --- private -----------------------------------------------------------------------------


def _paths(files: Files) -> list[Path]:
    return [Path(f) for f in files]


def _plan_options(options: Options, simulated: bool) -> PlanOptions:
    from .plan.planner import PlanOptions

    same: dict[str, Any] = {name: getattr(options, name) for name in ("provider", "region", "base_url", "budget_seconds", "budget_money")}
    return PlanOptions(
        namespace=config.SIMULATED if simulated or options.simulated else None,
        output_dir=config.given(config.OUTPUT_DIR, options.output_dir, Path),
        state_dir=config.given(config.STATE_DIR, options.state_dir, Path),
        **same,
    )


def _peek(planned: _Plan, options: Options) -> LedgerView | None:
    """The plan's ledger for reading (the shared one when a URL is given, here or in
    $R2V_LEDGER_URL); None when no run has made it. Raises ValueError (a bad URL) or
    LedgerUnreachable (the server cannot be reached)."""
    from .plan.planner import state_dir_of
    from .run.open_ledger import ledger_url, peek_store

    return peek_store(ledger_url(options.ledger), state_dir_of(planned), options.simulated)


def _load(files: Files, options: Options, run_options: RunOptions | None) -> tuple[_Plan, Selection, tuple[Diagnostic, ...]]:
    """The plan, the selection and the warnings; raises InvalidInput when unusable."""
    from .diagnostics import Diagnostics
    from .plan.planner import make_plan as plan_of, state_dir_of
    from .run.selection import Selection

    found = Diagnostics()
    planned = plan_of(_paths(files), _plan_options(options, bool(run_options and run_options.simulated)), found)
    diagnostics = _diagnostics(found)
    if found.errors:
        raise InvalidInput(diagnostics)
    how = run_options or RunOptions()
    selection = Selection(options.only, how.force, how.retry_failed, how.remake_reformatted)
    problems = selection.unmatched(planned.shots)
    try:
        state_dir_of(planned)
    except ValueError as error:
        problems.append(str(error))
    if problems:
        raise InvalidInput(diagnostics, problems)
    return planned, selection, tuple(d for d in diagnostics if d.severity == "warning")


def _diagnostics(found: Diagnostics) -> tuple[Diagnostic, ...]:
    return tuple(
        Diagnostic(d.position.file, d.position.line, d.position.col, _field_of(d.message), d.message, d.severity) for d in found.sorted()
    )


# The manifest path a message names: its opening words ("shots[a].duration must ...",
# "cast.leo: ...", 'defaults.resolution "720p" is ...'), or an unknown or bad key's place.
_PATH = r"[A-Za-z_][\w-]*(?:\[[^\]]*\]|\.[A-Za-z_][\w-]*)*"
_UNKNOWN_KEY = re.compile(rf'^unknown key "([^"]+)"(?: in ({_PATH}))?')
_BAD_KEY = re.compile(rf'^({_PATH}) key "([^"]+)"')
_LEADING = re.compile(rf'^({_PATH})(?::| "| (?:must|needs|is|are|has|cannot|should|names|takes|gives|holds)\b)')


def _field_of(message: str) -> str | None:
    key = _UNKNOWN_KEY.match(message)
    if key:
        return f"{key.group(2)}.{key.group(1)}" if key.group(2) else key.group(1)
    key = _BAD_KEY.match(message)
    if key:
        return f"{key.group(1)}.{key.group(2)}"
    leading = _LEADING.match(message)
    return leading.group(1) if leading else None


def _when(t: float) -> datetime:
    return datetime.fromtimestamp(t, timezone.utc)


def _decimal(n: float | int | None) -> Decimal | None:
    return None if n is None else Decimal(str(n))


def _shot_result(row: Mapping[str, Any], report_dir: Path) -> ShotResult:
    output = row.get("output")
    return ShotResult(
        key=str(row["key"]),
        status=ShotStatus(row["status"]),
        reason=str(row["reason"]),
        fingerprint=str(row["fingerprint"]),
        task_id=row.get("task_id"),
        billed_seconds=Decimal(str(row["billed_seconds"])),
        billed_in_this_run=bool(row["billed_in_this_run"]),
        cost=_decimal(row.get("cost")),
        output=report_dir / str(output) if output else None,
    )


_KNOWN = {"time", "event", "shot", "level", "message"}


def _event(line: str) -> Event | None:
    """An Event from one JSON log line (None for a line that is not one)."""
    try:
        record = json.loads(line)
        when = datetime.fromisoformat(str(record["time"]).replace("Z", "+00:00"))
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(record, dict):
        return None
    fields = {str(k): str(v) for k, v in record.items() if k not in _KNOWN and v is not None}
    shot = record.get("shot")
    message = record.get("message")
    return Event(
        str(record.get("event", "note")), when, str(shot) if shot else None, str(record.get("level", "info")),
        str(message) if message is not None else None, MappingProxyType(fields),
    )  # fmt: skip


class _EventSink(io.StringIO):
    """Where the run's JSON log is written: each line becomes an Event for the callback,
    and goes on to ``echo`` (as it is, or as a plain line)."""

    def __init__(self, on_event: Callable[[Event], None] | None, echo: TextIO | None, echo_format: str):
        super().__init__()
        self._on_event = on_event
        self._echo = echo
        self._echo_json = echo_format == "json"
        self._partial = ""

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            event = _event(line)
            if event is None:
                continue
            if self._on_event is not None:
                self._on_event(event)
            if self._echo is not None:
                self._echo.write((line if self._echo_json else str(event)) + "\n")
        return len(text)

    def flush(self) -> None:
        if self._echo is not None:
            self._echo.flush()
