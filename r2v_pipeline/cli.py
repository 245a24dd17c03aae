"""The ``r2v`` command line: parse arguments, call the library, map outcomes to exit codes.

This is the composition root: it wires manifest → plan → run → report (and
assemble, gc) together; the modules below it never import it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Sequence

from typing import TYPE_CHECKING

from . import __version__, argtypes, config, exits
from .exits import PLAN_SPENDS
from .catalog import registry
from .completion import INSTALL, SHELLS
from .diagnostics import Diagnostics

# Each command imports what it uses, inside its function: `r2v --help` and the
# pre-commit hook's `r2v validate` then start without the runner, the
# simulator, HTTP clients, PyAV or sqlite3.
if TYPE_CHECKING:
    from .helper_process import Helper
    from .plan.planner import Plan, PlanOptions
    from .run.actions import Decision
    from .run.ledger_store import LedgerView
    from .run.selection import Selection

SIMULATED = config.SIMULATED  # the namespace (subfolder) of simulated runs' ledger and videos
SIM_HELP = "run the local DashScope + Freepik simulator on a loopback port"  # as sim/command.py says it
SIMULATOR_VARIABLE = "R2V_SIMULATOR"  # a running `r2v sim` for every run (CI, rehearsals of a cron job)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser(with_sim="sim" in argv)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except Invalid:
        return exits.INVALID
    except EnvironmentFailed:
        return exits.ENVIRONMENT
    except KeyboardInterrupt:
        _last_word(args, "r2v: interrupted; the ledger is consistent and the next run resumes", "interrupted")
        return exits.INTERRUPTED
    except BrokenPipeError:
        return exits.OK
    except Exception as err:  # the promise is: no traceback, whatever the input
        if os.environ.get("R2V_DEBUG"):
            raise
        _last_word(args, f"r2v: internal error: {type(err).__name__}: {err} (set R2V_DEBUG=1 for the traceback)", "internal error")
        return exits.INTERNAL


def _last_word(args: argparse.Namespace, message: str, event: str) -> None:
    """How a command ended early, in the command's log format (a JSON log stays JSON)."""
    Say(getattr(args, "log_format", None) == "json")(message, event, "error")


def _parser(with_sim: bool = True) -> argparse.ArgumentParser:
    """``with_sim=False`` lists ``sim`` without building its parser, which imports the simulator."""
    codes = "; ".join(f"{code} {meaning}" for code, meaning in exits.MEANINGS.items())
    parser = argparse.ArgumentParser(
        prog="r2v",
        description="Reference-to-video generations from YAML manifests.",
        epilog=f"Exit codes: {codes}.",
    )
    parser.add_argument("--version", action="version", version=f"r2v {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser("validate", help="check manifests; every problem at once")
    _plan_arguments(validate)
    validate.add_argument(
        "--dependents", action="store_true",
        help="also check every manifest that extends a given one (the repository's YAML files, as git tracks them): "
        "a series file that loses a cast member breaks the episodes using it",
    )  # fmt: skip
    validate.set_defaults(func=cmd_validate)

    plan = commands.add_parser("plan", help="show the exact requests a run would send, with billed seconds and cost")
    _plan_arguments(plan, view=True)
    _only_argument(plan)
    plan.add_argument("--json", action="store_true", help="print the plan, request bodies included, as JSON")
    _remake_argument(plan)
    _ledger_argument(plan)
    plan.add_argument(
        "--detailed-exitcode", action="store_true",
        help=f"exit {PLAN_SPENDS} when running would submit (spend), 0 when it would not (for scripts)",
    )  # fmt: skip
    plan.set_defaults(func=cmd_plan)

    run = commands.add_parser("run", help="plan, then submit, poll, download and report")
    _plan_arguments(run)
    _only_argument(run)
    run.add_argument("--force", action="append", default=[], metavar="PATTERN", help="make matching shots again even if done (this bills again); repeatable")
    run.add_argument("--retry-failed", action="store_true", help="submit shots that failed before again")
    _remake_argument(run)
    simulated = run.add_argument_group("simulation (no API key, no cost)")
    simulated.add_argument("--simulate", "--simulated", dest="simulate", action="store_true", help="run against the embedded provider simulator")
    simulated.add_argument("--time-scale", type=argtypes.within(0.0, 10.0, says="above 0 and at most 10"), default=0.02, metavar="F", help="simulated wall seconds per provider second (default: %(default)s)")
    simulated.add_argument("--sim-faults", default="", metavar="SPEC", help="faults the simulator injects (see r2v sim --help)")
    simulated.add_argument("--sim-seed", type=int, default=0, metavar="S", help="the simulator's seed")
    simulated.add_argument(
        "--simulator", type=argtypes.url, metavar="URL", default=os.environ.get(SIMULATOR_VARIABLE) or None,
        help=f"run against a simulator started with `r2v sim` at URL (default: ${SIMULATOR_VARIABLE})",
    )  # fmt: skip
    run.add_argument("--max-resubmits", type=int, default=2, metavar="N", help="new submissions after a transient task failure (default: %(default)s)")
    run.add_argument("--settle", type=float, default=120.0, metavar="S", help="seconds after an unanswered submit before an empty task list is believed (default: %(default)s)")
    run.add_argument("--give-up-after", type=argtypes.above_zero, default=300.0, metavar="S", help=f"seconds a provider may stay unreachable before the run ends with exit {exits.UNREACHABLE}, shots not sent left planned (default: %(default)s)")
    run.add_argument(
        "--exclusive", action="store_true",
        help=f"end at once with exit {exits.LOCKED} when another r2v run works on the same ledger (for cron; on a shared --ledger, another run on this host)",
    )  # fmt: skip
    _ledger_argument(run)
    run.add_argument("--assemble", action="store_true", help="afterwards, cut every episode whose shots are all done (as r2v assemble)")
    run.add_argument("--log-format", choices=config.LOG_FORMATS, help=f"progress display (default: ${config.LOG_FORMAT.variable}, else tty on a terminal, plain otherwise); json: every line a JSON object")
    run.add_argument("--log-timezone", type=_zone, metavar="ZONE", help=f"time zone of plain log lines, an IANA name like Europe/Paris (default: ${config.LOG_TIMEZONE.variable}, else the machine's); JSON lines stay UTC")
    run.add_argument("--report", type=Path, metavar="DIR", help="where report.json, report.md and report.html go (default: the output folder)")
    run.add_argument("--junit", type=Path, metavar="FILE", help="also write the run as JUnit XML, one test case per shot (for CI dashboards)")
    run.set_defaults(func=cmd_run)

    status = commands.add_parser("status", help="what the ledger knows of each shot")
    _plan_arguments(status, view=True)
    _only_argument(status)
    status.add_argument("--json", action="store_true", help="print as JSON")
    _ledger_argument(status)
    status.set_defaults(func=cmd_status)

    history = commands.add_parser(
        "history",
        help="the runs the ledger knows, what each billed, and spend by series, episode, account and month",
        description="Every run recorded in the manifests' ledger, oldest first, with the seconds and money it billed; "
        "then sums by series, episode, account and month (UTC). Seconds are the provider's where its usage says, "
        "the plan's otherwise; each figure says which.",
    )  # fmt: skip
    _plan_arguments(history, view=True)
    history.add_argument("--json", action="store_true", help="print as JSON")
    _ledger_argument(history)
    history.set_defaults(func=cmd_history)

    assemble = commands.add_parser(
        "assemble",
        help="join an episode's videos, in manifest order, into one MP4",
        description="Join each episode's videos (the shot's pick: N, else the take picked in review in the episode's "
        "selects file, else the first approved or not rejected take) in manifest order into "
        "<output>/<series>/<episode>.mp4, copying the streams when the shots share a format and re-encoding "
        "them (H.264 + AAC) when they do not, and write the cut for editing software beside it: <episode>.otio "
        "(OpenTimelineIO), <episode>.xml (FCP 7 XML) and <episode>.edl (CMX 3600). A video the store holds for "
        "the shot is put in place first. Exit 1, writing nothing, when a shot's video is missing or every take "
        "of a shot was rejected.",
    )
    _plan_arguments(assemble, view=True)
    _only_argument(assemble, "cut only the matching shots, into <episode>.selection.mp4 unless -o says otherwise")
    assemble.add_argument("-o", "--output", type=Path, metavar="FILE", help="where the cut goes (one episode only; default: <output>/<series>/<episode>.mp4)")
    assemble.set_defaults(func=cmd_assemble)

    review = commands.add_parser(
        "review",
        help="review takes in a browser; picks, approvals, rejections and notes go to each episode's selects file",
        description="Serve a page on 127.0.0.1 with each shot's takes side by side. Pick a take per shot, approve or "
        "reject takes, add a note: each change is written at once to <episode>.selects.yaml beside the episode, "
        "which plan, run, assemble and the report read (a manifest's pick: wins). Ctrl-C ends it.",
    )
    _plan_arguments(review, view=True)
    review.add_argument("--port", type=argtypes.port, default=0, metavar="N", help="port on 127.0.0.1, 1-65535 (default: a free one)")
    review.set_defaults(func=cmd_review)

    gc = commands.add_parser(
        "gc",
        help="list what the video store could free; remove it with --yes",
        description="A stored video is garbage when no given manifest names its request, neither as the files are "
        "now nor at git HEAD, and it belongs to one of the given episodes. Lists each with what it cost; "
        "--yes removes them (and the output files and superseded/ links that are the same video).",
    )
    _plan_arguments(gc, view=True)
    gc.add_argument("--yes", action="store_true", help="remove what is listed")
    gc.set_defaults(func=cmd_gc)

    completion = commands.add_parser(
        "completion", help="print the shell completion script (bash, zsh or fish)",
        description="Print the completion script of r2v for a shell. Install it with one command:\n"
        + "\n".join(f"  {shell}: {line}" for shell, line in INSTALL.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    completion.add_argument("shell", choices=SHELLS)
    completion.set_defaults(func=cmd_completion)

    if with_sim:
        from .sim.command import add_command

        add_command(commands)
    else:
        commands.add_parser("sim", help=SIM_HELP)
    return parser


def _zone(text: str) -> str:
    try:
        return config.time_zone(text)
    except config.BadSetting as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _remake_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--remake-reformatted", action="store_true",
        help="make again the shots whose video an earlier r2v version made from a request it wrote differently (this bills again)",
    )  # fmt: skip


def _ledger_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ledger", metavar="URL",
        help="a PostgreSQL ledger shared by several hosts, postgresql://user[:password]@host[:port]/database "
        "(default: $R2V_LEDGER_URL, else the ledger file in the state folder)",
    )  # fmt: skip


def _only_argument(parser: argparse.ArgumentParser, help: str = "only shots matching (glob over id, episode/id or series/episode/id); repeatable") -> None:
    parser.add_argument("--only", action="append", default=[], metavar="PATTERN", help=help)


def _plan_arguments(parser: argparse.ArgumentParser, view: bool = False) -> None:
    """The arguments of every command that plans; ``view`` adds --simulated (or
    --simulate), for commands that read what simulated runs left."""
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="episode (or standalone) manifest files")
    parser.add_argument("--provider", choices=sorted(registry.names()), help="override the manifests' provider")
    parser.add_argument("--region", choices=sorted({r for e in registry.entries() for r in e.table.regions}), help="override the DashScope region")
    parser.add_argument("--base-url", type=argtypes.url, help="override the provider's API base URL")
    parser.add_argument("--budget-seconds", type=argtypes.amount, metavar="S", help="refuse plans billing more seconds")
    parser.add_argument("--budget-money", type=argtypes.amount, metavar="X", help="refuse plans costing more (needs prices)")
    parser.add_argument("--out", type=Path, help=f"output folder (default: ${config.OUTPUT_DIR.variable}, else the manifests' output.dir)")
    parser.add_argument("--state", type=Path, help=f"state folder of the ledger (default: ${config.STATE_DIR.variable}, else the manifests' output.state)")
    if view:
        parser.add_argument(
            "--simulated", "--simulate", dest="simulated", action="store_true", default=bool(os.environ.get(SIMULATOR_VARIABLE)),
            help=f"look at the ledger and videos of simulated runs (the default when ${SIMULATOR_VARIABLE} is set)",
        )  # fmt: skip


# --- talking to people and to log collectors --------------------------------------


class Say:
    """A command's messages on stderr: plain lines, or (``json``) one JSON object a
    line, like the run's log (the same logging path, logs.py), so a JSON log stays
    machine-readable throughout."""

    def __init__(self, json_lines: bool = False, run_id: str | None = None):
        self.json_lines = json_lines
        self.run_id = run_id  # ``r2v run``'s lines before the run starts carry its id too
        self._logger: Any = None  # made on the first line: a clean `r2v validate` never loads logging

    def __call__(self, message: str, event: str = "note", level: str = "info", **fields: Any) -> None:
        from .logs import emit, make_logger

        if self._logger is None:
            self._logger, _, _ = make_logger(sys.stderr, self.json_lines)
        emit(self._logger, level, event, message, run_id=self.run_id, fields=fields)

    def diagnostics(self, diagnostics: Diagnostics) -> None:
        for d in diagnostics.sorted():
            if self.json_lines:
                where = d.position
                self(d.message, "diagnostic", d.severity, file=where.file, line=where.line, col=where.col)
            else:
                self(str(d), "diagnostic", d.severity)
        errors, warnings = len(diagnostics.errors), len(diagnostics.warnings)
        if errors:
            self(f"{errors} error(s){f', {warnings} warning(s)' if warnings else ''}; nothing was sent", "invalid", "error")


# --- loading ----------------------------------------------------------------------------


def _options(args: argparse.Namespace) -> PlanOptions:
    from .plan.planner import PlanOptions

    simulated = getattr(args, "simulate", False) or getattr(args, "simulator", None) or getattr(args, "simulated", False)
    return PlanOptions(
        namespace=SIMULATED if simulated else None,
        provider=args.provider,
        region=args.region,
        base_url=args.base_url,
        budget_seconds=args.budget_seconds,
        budget_money=args.budget_money,
        output_dir=config.given(config.OUTPUT_DIR, args.out, Path),
        state_dir=config.given(config.STATE_DIR, args.state, Path),
    )


def _selection(args: argparse.Namespace) -> Selection:
    from .run.selection import Selection

    return Selection(
        tuple(getattr(args, "only", ())), tuple(getattr(args, "force", ())), getattr(args, "retry_failed", False),
        getattr(args, "remake_reformatted", False),
    )  # fmt: skip


class Invalid(Exception):
    """The input cannot be used; every problem has been said."""


class EnvironmentFailed(Exception):
    """The machine failed the command (the ledger's server cannot be reached); said already."""


def _ledger_url(args: argparse.Namespace, say: Say) -> str | None:
    """The shared ledger's URL (--ledger, $R2V_LEDGER_URL); None: the SQLite file."""
    from .run.open_ledger import BadLedgerUrl, ledger_url

    try:
        return ledger_url(getattr(args, "ledger", None))
    except BadLedgerUrl as error:
        say(f"r2v: {error}", "invalid", "error")
        raise Invalid from None


def _peek(args: argparse.Namespace, plan: Plan, say: Say) -> LedgerView | None:
    """The ledger of the plan's shots for reading only; None when no run has made one."""
    from .plan.planner import state_dir_of
    from .run.ledger_store import LedgerUnreachable
    from .run.open_ledger import peek_store

    simulated = bool(getattr(args, "simulate", False) or getattr(args, "simulator", None) or getattr(args, "simulated", False))
    try:
        return peek_store(_ledger_url(args, say), state_dir_of(plan), simulated)
    except LedgerUnreachable as error:
        say(f"r2v: {error}", "environment", "error")
        raise EnvironmentFailed from None


def _load(args: argparse.Namespace, say: Say) -> tuple[Plan, Selection]:
    """The plan and the selection; raises Invalid (every problem said) when the input is unusable."""
    from .plan.plan_cache import cached_plan
    from .plan.planner import state_dir_of

    diagnostics = Diagnostics()
    plan = cached_plan(args.files, _options(args), diagnostics)
    say.diagnostics(diagnostics)
    if diagnostics.errors:
        raise Invalid
    selection = _selection(args)
    unmatched = selection.unmatched(plan.shots)
    for problem in unmatched:
        say(f"r2v: {problem}", "invalid", "error")
    if unmatched:
        raise Invalid
    try:
        state_dir_of(plan)
    except ValueError as error:
        say(f"r2v: {error}", "invalid", "error")
        raise Invalid from None
    return plan, selection


def _simulated_hint(plan: Plan, args: argparse.Namespace) -> str | None:
    """When only simulated runs have touched these shots, how to see them."""
    from .run.ledger import Ledger
    from .plan.planner import state_dir_of

    if getattr(args, "simulated", False) or not plan.shots or getattr(args, "ledger", None) or os.environ.get("R2V_LEDGER_URL"):
        return None  # a shared ledger keeps simulated runs apart by itself
    folder = state_dir_of(plan)
    ledger = Ledger.peek(folder / SIMULATED) if folder else None
    if ledger is None:
        return None
    try:
        known = ledger.records([s.fingerprint for s in plan.shots])
    finally:
        ledger.close()
    real = Ledger.peek(folder) if folder else None
    if real is not None:
        try:
            if real.records([s.fingerprint for s in plan.shots]):
                return None
        finally:
            real.close()
    if not known:
        return None
    return f"r2v: only simulated runs have made these shots ({len(known)} of {len(plan.shots)}); add --simulated to see them"


# --- commands ----------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    say = Say()
    if args.dependents:
        from .manifest.dependents import dependents, manifests_near
        from .manifest.load import display_name

        extra = dependents(args.files, manifests_near(args.files))
        args.files = [*args.files, *extra]
        if extra:
            say(f"also checking {len(extra)} manifest(s) that extend them: {', '.join(display_name(p) for p in extra)}")
    plan, _ = _load(args, say)
    shots = len({(s.series, s.episode, s.shot) for s in plan.shots})
    print(f"ok: {len(plan.episodes)} episode(s), {shots} shot(s), {len(plan.shots)} request(s)")
    return exits.OK


def _decisions(plan: Plan, selection: Selection, args: argparse.Namespace, say: Say) -> dict[str, Decision]:
    """What a run would do with each shot (by key), from what the ledger and the store remember."""
    from .run.actions import Stores, decide_all

    ledger = _peek(args, plan, say)
    try:
        return decide_all(plan.shots, ledger, Stores(), selection, time.time())
    finally:
        if ledger:
            ledger.close()


def cmd_plan(args: argparse.Namespace) -> int:
    from .plan.budget import over_budget
    from .plan.output import plan_json, plan_table, to_submit

    say = Say()
    plan, selection = _load(args, say)
    decisions = _decisions(plan, selection, args, say)
    if args.json:
        print(json.dumps(plan_json(plan, decisions), indent=2, ensure_ascii=False))
    else:
        print(plan_table(plan, decisions))
    hint = _simulated_hint(plan, args)
    if hint:
        say(hint)
    submit = to_submit(plan, decisions)
    problems = over_budget(plan.budgets, submit, plan.currency)
    for problem in problems:
        say(f"r2v: over budget: {problem}", "over budget", "error")
    if problems:
        return exits.FAILED
    return PLAN_SPENDS if args.detailed_exitcode and submit else exits.OK


def cmd_run(args: argparse.Namespace) -> int:
    from .pipeline import RunRequest, execute, relink_cuts
    from .run.progress import new_run_id
    from .run.reach_policy import ReachPolicy
    from .run.work import RunOptions
    from .simulation import SimulateOptions

    try:
        log_format = config.given(config.LOG_FORMAT, args.log_format, config.log_format)
        zone = config.given(config.LOG_TIMEZONE, args.log_timezone, config.time_zone)
    except config.BadSetting as error:
        print(f"r2v: {error}", file=sys.stderr)
        return exits.INVALID
    if zone is not None:  # plain lines print local time: this process's local time is the zone's
        os.environ["TZ"] = zone
        time.tzset()
        from . import logs

        logs.use_time_zone(zone)  # JSON lines carry the zone's offset
    run_id = new_run_id()
    say = Say(log_format == "json", run_id)
    plan, selection = _load(args, say)
    request = RunRequest(
        options=RunOptions(
            selection=selection,
            max_resubmits=args.max_resubmits,
            settle=args.settle,
            reach=ReachPolicy(patience=args.give_up_after),
        ),
        simulate=SimulateOptions(args.time_scale, args.sim_seed, args.sim_faults) if args.simulate else None,
        attach=args.simulator,
        log_format=log_format,
        run_id=run_id,
        report_dir=args.report,
        junit=args.junit,
        exclusive=args.exclusive,
        ledger=_ledger_url(args, say),
    )
    code = execute(plan, request)
    if args.assemble and code in (exits.OK, exits.FAILED, exits.UNREACHABLE):
        cut = _assemble_ready(plan, say)
        relink_cuts(plan, request)
        code = exits.FAILED if cut == exits.FAILED and code == exits.OK else code
    return code


def cmd_history(args: argparse.Namespace) -> int:
    from .run.history import episode_of, history, history_text, of_episodes
    from .run.ledger_store import LedgerUnreachable

    say = Say()
    plan, _ = _load(args, say)
    ledger = _peek(args, plan, say)
    try:
        try:
            runs, charges = (ledger.runs(), ledger.charges()) if ledger else ([], [])
        except LedgerUnreachable as error:
            say(f"r2v: {error}", "environment", "error")
            return exits.ENVIRONMENT
        data = history(*of_episodes(runs, charges, {episode_of(s.key) for s in plan.shots}), plan.currency)
    finally:
        if ledger:
            ledger.close()
    print(json.dumps(data, indent=2) if args.json else history_text(data))
    hint = _simulated_hint(plan, args)
    if hint:
        say(hint)
    return exits.OK


def _assemble_ready(plan: Plan, say: Say) -> int:
    """Cut every episode whose shots are all done; say which are not and why."""
    from .assemble import assemble, plan_cuts  # PyAV's muxing: only when cutting
    from .media.concat import ConcatError

    code = exits.OK
    for cut in plan_cuts(plan):
        if cut.not_ready:
            say(f"not cut: {cut.key}: {len(cut.not_ready)} of {len(cut.parts)} shots not ready", "not assembled", "warning", episode=cut.key)
            continue
        try:
            say(assemble(cut).summary(), "assembled", episode=cut.key)
        except ConcatError as error:
            say(f"r2v: cannot assemble {cut.key}: {error}", "not assembled", "error", episode=cut.key)
            code = exits.FAILED
    return code


def cmd_status(args: argparse.Namespace) -> int:
    from .plan.planner import Plan
    from .run.ledger_store import LedgerUnreachable
    from .run.status import status_json, status_table

    say = Say()
    plan, selection = _load(args, say)
    shown = Plan([s for s in plan.shots if selection.selected(s)], plan.episodes, plan.currency, plan.budgets)
    ledger = _peek(args, plan, say)
    try:
        try:
            records = ledger.records() if ledger else {}
            holders = ledger.holders() if ledger else {}
        except LedgerUnreachable as error:
            say(f"r2v: {error}", "environment", "error")
            return exits.ENVIRONMENT
        if args.json:
            print(json.dumps(status_json(shown, records, holders), indent=2))
        else:
            print(status_table(shown, records, holders))
    finally:
        if ledger:
            ledger.close()
    hint = _simulated_hint(plan, args)
    if hint:
        say(hint)
    return exits.OK


def cmd_assemble(args: argparse.Namespace) -> int:
    from .helper_process import Helper
    from .media.timeline_parts import TIMELINES

    # Started first, before this process imports PyAV and plans: the helper's own start
    # and OpenTimelineIO's import then overlap all of that, on another core.
    with Helper.start(TIMELINES) as helper:
        return _assemble(args, helper)


def _assemble(args: argparse.Namespace, helper: Helper) -> int:
    from .assemble import assemble, plan_cuts  # PyAV's muxing: only when cutting
    from .media.concat import ConcatError

    say = Say()
    plan, selection = _load(args, say)
    cuts = plan_cuts(plan, args.output, keep=selection.selected if selection.only else None)
    if not cuts:
        say("r2v: nothing to assemble: the manifests have no shots")
        return exits.INVALID
    if args.output is not None and len(cuts) > 1:
        say(f"r2v: -o names one file, but the manifests hold {len(cuts)} episodes; assemble them one at a time")
        return exits.INVALID
    if args.output is not None and args.output.is_dir():
        say(f"r2v: -o {args.output} is a folder; name the file to write")
        return exits.INVALID
    if args.output is not None and args.output.resolve() in {p.shot.output.resolve() for p in cuts[0].parts}:
        say(f"r2v: -o {args.output} is one of the shots' videos; name another file")
        return exits.INVALID
    waiting = [c for c in cuts if c.not_ready]
    if waiting:  # every problem at once, and nothing written
        for cut in waiting:
            say(f"r2v: cannot assemble {cut.key}: {len(cut.not_ready)} of {len(cut.parts)} shots not ready; nothing was written")
            for part in cut.not_ready:
                say(f"  {part.label}: {part.problem}")
        say(f"r2v: run `{_run_command(args)}` first")
        hint = _simulated_hint(plan, args)
        if hint:
            say(hint)
        return exits.FAILED
    for cut in cuts:
        try:
            print(assemble(cut, helper).summary())
        except ConcatError as error:
            say(f"r2v: cannot assemble {cut.key}: {error}")
            return exits.FAILED
    return exits.OK


def cmd_review(args: argparse.Namespace) -> int:
    from .review.server import start
    from .review.state import Review

    say = Say()
    plan, _ = _load(args, say)
    try:
        server = start(Review(plan), args.port)
    except OSError as error:
        say(f"r2v: cannot listen on 127.0.0.1:{args.port}: {error.strerror or error}")
        return exits.ENVIRONMENT
    takes = len(plan.shots)
    print(f"review {takes} take(s) of {len(plan.episodes)} episode(s) at {server.url}  (Ctrl-C ends it)", flush=True)
    hint = _simulated_hint(plan, args)
    if hint:
        say(hint)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        say("review ended; the selects files hold every change")
    finally:
        server.server.server_close()
    return exits.OK


def _fingerprints_at_head(args: argparse.Namespace) -> set[str] | None:
    """The requests the given manifests ask for as committed at git HEAD (None outside git)."""
    from .manifest.git import at_head
    from .plan.planner import make_plan

    with at_head(args.files) as files:
        if files is None:
            return None
        return {s.fingerprint for s in make_plan(files, _options(args), Diagnostics()).shots} if files else set()


def _run_command(args: argparse.Namespace) -> str:
    """The ``r2v run`` that makes what is missing, with this command's folders."""
    words = ["r2v", "run"] + (["--simulate"] if args.simulated else [])
    for flag, value in (("--out", args.out), ("--state", args.state)):
        if value is not None:
            words += [flag, str(value)]
    return shlex.join(words + [str(f) for f in args.files])


def cmd_gc(args: argparse.Namespace) -> int:
    from .run.gc import collect, remove
    from .run.store import VideoStore
    from .manifest.load import display_name

    say = Say()
    plan, _ = _load(args, say)
    referenced = {s.fingerprint for s in plan.shots}
    at_head = _fingerprints_at_head(args)
    if at_head is not None:
        referenced |= at_head
    stores = {s.store_dir.resolve(): VideoStore(s.store_dir.resolve()) for s in plan.shots}
    found = collect(stores.values(), referenced, {(s.series, s.episode) for s in plan.shots})
    total = sum(g.bytes for g in found.garbage)
    seconds = sum((g.billed_seconds or Decimal(0) for g in found.garbage), Decimal(0))
    costs = [g.cost for g in found.garbage if g.cost is not None]
    money = f", {sum(costs, Decimal(0)):.2f}{' ' + plan.currency if plan.currency else ''} paid" if costs else ""
    verb = "removed" if args.yes else "would free"
    print(f"{verb} {len(found.garbage)} video(s), {total / 1e6:.1f} MB, {seconds.normalize():f} billed s{money}")
    for g in found.garbage:
        paid = (g.stored.meta.get("timestamps") or {}).get("submitted")
        when = f"  paid {datetime.fromtimestamp(paid):%Y-%m-%d}" if isinstance(paid, (int, float)) else ""
        print(f"  {g.stored.fingerprint[:12]}  {g.key}  {g.bytes / 1e6:.1f} MB  {g.billed_seconds or '?'} s{when}")
        for link in g.links:
            print(f"    and {display_name(link)}")
    print(f"kept: {found.named} video(s) the manifests name" + (" (at git HEAD too)" if at_head is not None else ""))
    if found.elsewhere:
        print(f"not considered: videos of {', '.join(found.elsewhere)} (give their manifests to consider them)")
    if args.yes:
        remove(found, stores)
    elif found.garbage:
        print("run again with --yes to remove them")
    return exits.OK


def cmd_completion(args: argparse.Namespace) -> int:
    from .completion import script

    print(script(_parser(with_sim=False), args.shell), end="")
    return exits.OK
