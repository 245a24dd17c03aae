"""The ``r2v`` command line: parse arguments, call the library, map outcomes to exit codes."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Sequence

from . import __version__
from .catalog import PROVIDERS
from .catalog.dashscope import REGIONS
from .diagnostics import Diagnostics
from .plan.output import plan_json, plan_table
from .plan.planner import Plan, PlanOptions, make_plan
from .run.actions import Selection, Stores, decide_all
from .run.ledger import Ledger
from .run.runner import RunOptions
from .run.session import RunRequest, execute, state_dir_of
from .run.status import status_json, status_table
from .run.targets import SimulateOptions
from .assemble import add_command as add_assemble_command
from .sim.command import add_command as add_sim_command

EXIT_OK = 0  # everything done
EXIT_FAILED = 1  # some shot failed or was held back (budget)
EXIT_INVALID = 2  # invalid input or usage; nothing was sent
EXIT_INTERNAL = 3  # a bug in r2v itself
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("r2v: interrupted; the ledger is consistent and the next run resumes", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as err:  # the promise is: no traceback, whatever the input
        if os.environ.get("R2V_DEBUG"):
            raise
        print(f"r2v: internal error: {type(err).__name__}: {err} (set R2V_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="r2v",
        description="Reference-to-video generations from YAML manifests.",
        epilog="Exit codes: 0 all done, 1 some shot failed or was held back, 2 invalid input or usage.",
    )
    parser.add_argument("--version", action="version", version=f"r2v {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser("validate", help="check manifests; every problem at once")
    _plan_arguments(validate)
    validate.set_defaults(func=cmd_validate)

    plan = commands.add_parser("plan", help="show the exact requests a run would send, with billed seconds and cost")
    _plan_arguments(plan, simulated_view=True)
    plan.add_argument("--json", action="store_true", help="print the plan, request bodies included, as JSON")
    plan.set_defaults(func=cmd_plan)

    run = commands.add_parser("run", help="plan, then submit, poll, download and report")
    _plan_arguments(run)
    _selection_arguments(run)
    simulated = run.add_argument_group("simulation (no API key, no cost)")
    simulated.add_argument("--simulate", action="store_true", help="run against the embedded provider simulator")
    simulated.add_argument("--time-scale", type=_fraction, default=0.02, metavar="F", help="simulated wall seconds per provider second (default: %(default)s)")
    simulated.add_argument("--sim-faults", default="", metavar="SPEC", help="faults the simulator injects (see r2v sim --help)")
    simulated.add_argument("--sim-seed", type=int, default=0, metavar="S", help="the simulator's seed")
    simulated.add_argument("--simulator", type=_url, metavar="URL", help="run against a simulator started with `r2v sim` at URL")
    run.add_argument("--max-resubmits", type=int, default=2, metavar="N", help="new submissions after a transient task failure (default: %(default)s)")
    run.add_argument("--settle", type=float, default=120.0, metavar="S", help="seconds after an unanswered submit before an empty task list is believed (default: %(default)s)")
    run.add_argument("--log-format", choices=("tty", "plain", "json"), help="progress display (default: tty on a terminal, plain otherwise)")
    run.add_argument("--report", type=Path, metavar="DIR", help="where report.json, report.md and report.html go (default: the output folder)")
    run.add_argument("--junit", type=Path, metavar="FILE", help="also write the run as JUnit XML, one test case per shot (for CI dashboards)")
    run.set_defaults(func=cmd_run)

    status = commands.add_parser("status", help="what the ledger knows of each shot")
    _plan_arguments(status, simulated_view=True)
    status.add_argument("--json", action="store_true", help="print as JSON")
    status.set_defaults(func=cmd_status)

    add_assemble_command(commands)
    add_sim_command(commands)
    return parser


def _selection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", action="append", default=[], metavar="PATTERN", help="run only shots matching (glob over id, episode/id or series/episode/id); repeatable")
    parser.add_argument("--force", action="append", default=[], metavar="PATTERN", help="make matching shots again even if done (this bills again); repeatable")
    parser.add_argument("--retry-failed", action="store_true", help="submit shots that failed before again")


def _plan_arguments(parser: argparse.ArgumentParser, simulated_view: bool = False) -> None:
    """The arguments of every command that plans; ``simulated_view`` adds --simulated,
    for commands that read what simulated runs left (plan, status, assemble)."""
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="episode (or standalone) manifest files")
    parser.add_argument("--provider", choices=sorted(PROVIDERS), help="override the manifests' provider")
    parser.add_argument("--region", choices=sorted(REGIONS), help="override the DashScope region")
    parser.add_argument("--base-url", type=_url, help="override the provider's API base URL")
    parser.add_argument("--budget-seconds", type=_positive, metavar="S", help="refuse plans billing more seconds")
    parser.add_argument("--budget-money", type=_positive, metavar="X", help="refuse plans costing more (needs prices)")
    parser.add_argument("--out", type=Path, help="output folder (default: the manifests' output.dir)")
    parser.add_argument("--state", type=Path, help="state folder of the ledger (default: the manifests' output.state)")
    if simulated_view:
        parser.add_argument("--simulated", action="store_true", help="look at the ledger and videos of simulated runs")


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError("must be an http:// or https:// URL")
    return text


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number") from None
    if not 0 < value <= 10:
        raise argparse.ArgumentTypeError("must be above 0 and at most 10")
    return value


def _positive(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError("must be a number") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return value


def _options(args: argparse.Namespace) -> PlanOptions:
    simulated = getattr(args, "simulate", False) or getattr(args, "simulator", None) or getattr(args, "simulated", False)
    return PlanOptions(
        namespace="simulated" if simulated else None,
        provider=args.provider,
        region=args.region,
        base_url=args.base_url,
        budget_seconds=args.budget_seconds,
        budget_money=args.budget_money,
        output_dir=args.out,
        state_dir=args.state,
    )


def _load_plan(args: argparse.Namespace) -> tuple[Plan, Diagnostics]:
    diagnostics = Diagnostics()
    plan = make_plan(args.files, _options(args), diagnostics)
    return plan, diagnostics


def _print_diagnostics(diagnostics: Diagnostics) -> None:
    for d in diagnostics.sorted():
        print(d, file=sys.stderr)
    errors, warnings = len(diagnostics.errors), len(diagnostics.warnings)
    if errors:
        print(f"{errors} error(s){f', {warnings} warning(s)' if warnings else ''}; nothing was sent", file=sys.stderr)


def cmd_validate(args: argparse.Namespace) -> int:
    plan, diagnostics = _load_plan(args)
    _print_diagnostics(diagnostics)
    if diagnostics.errors:
        return EXIT_INVALID
    shots = len({(s.series, s.episode, s.shot) for s in plan.shots})
    print(f"ok: {len(plan.episodes)} episode(s), {shots} shot(s), {len(plan.shots)} request(s)")
    return EXIT_OK


def _apply_ledger(plan: Plan, selection: Selection) -> None:
    """Mark each shot with what a run would do, from what the ledger (if any) remembers."""
    try:
        folder = state_dir_of(plan)
    except ValueError:
        return
    ledger = Ledger.peek(folder) if folder else None
    for shot, decision in zip(plan.shots, decide_all(plan.shots, ledger, Stores(), selection, time.time())):
        shot.action, shot.reason, shot.changes = decision.action, decision.reason, decision.changes
    if ledger:
        ledger.close()


def cmd_plan(args: argparse.Namespace) -> int:
    plan, diagnostics = _load_plan(args)
    _print_diagnostics(diagnostics)
    if diagnostics.errors:
        return EXIT_INVALID
    _apply_ledger(plan, Selection())
    if args.json:
        print(json.dumps(plan_json(plan), indent=2, ensure_ascii=False))
    else:
        print(plan_table(plan))
    problems = plan.over_budget()
    for problem in problems:
        print(f"r2v: over budget: {problem}", file=sys.stderr)
    return EXIT_FAILED if problems else EXIT_OK


def _plan_with_ledger(args: argparse.Namespace) -> tuple[Plan, Path | None] | None:
    """The plan and its one ledger folder; None (problems printed) when invalid."""
    plan, diagnostics = _load_plan(args)
    _print_diagnostics(diagnostics)
    if diagnostics.errors:
        return None
    try:
        return plan, state_dir_of(plan)
    except ValueError as error:
        print(f"r2v: {error}", file=sys.stderr)
        return None


def cmd_run(args: argparse.Namespace) -> int:
    loaded = _plan_with_ledger(args)
    if loaded is None:
        return EXIT_INVALID
    plan, _ = loaded
    request = RunRequest(
        options=RunOptions(
            selection=Selection(tuple(args.only), tuple(args.force), args.retry_failed),
            max_resubmits=args.max_resubmits,
            settle=args.settle,
        ),
        simulate=SimulateOptions(args.time_scale, args.sim_seed, args.sim_faults) if args.simulate else None,
        attach=args.simulator,
        log_format=args.log_format,
        report_dir=args.report,
        junit=args.junit,
    )
    return execute(plan, request)


def cmd_status(args: argparse.Namespace) -> int:
    loaded = _plan_with_ledger(args)
    if loaded is None:
        return EXIT_INVALID
    plan, folder = loaded
    ledger = Ledger.peek(folder) if folder else None
    try:
        records = ledger.records() if ledger else {}
        if args.json:
            print(json.dumps(status_json(plan, records), indent=2))
        else:
            print(status_table(plan, records))
    finally:
        if ledger:
            ledger.close()
    return EXIT_OK
