"""The ``r2v`` command line: parse arguments, call the library, map outcomes to exit codes."""

from __future__ import annotations

import argparse
import json
import os
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Callable, Sequence

from . import __version__
from .catalog import PROVIDERS
from .catalog.dashscope import REGIONS
from .diagnostics import Diagnostics
from .plan.output import plan_json, plan_table
from .plan.planner import Plan, PlanOptions, make_plan
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
        print("r2v: interrupted", file=sys.stderr)
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
    _plan_arguments(plan)
    plan.add_argument("--json", action="store_true", help="print the plan, request bodies included, as JSON")
    plan.set_defaults(func=cmd_plan)

    add_sim_command(commands)
    return parser


def _plan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="episode (or standalone) manifest files")
    parser.add_argument("--provider", choices=sorted(PROVIDERS), help="override the manifests' provider")
    parser.add_argument("--region", choices=sorted(REGIONS), help="override the DashScope region")
    parser.add_argument("--base-url", type=_url, help="override the provider's API base URL")
    parser.add_argument("--budget-seconds", type=_positive, metavar="S", help="refuse plans billing more seconds")
    parser.add_argument("--budget-money", type=_positive, metavar="X", help="refuse plans costing more (needs prices)")
    parser.add_argument("--out", type=Path, help="output folder (default: the manifests' output.dir)")
    parser.add_argument("--state", type=Path, help="state folder of the ledger (default: the manifests' output.state)")


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError("must be an http:// or https:// URL")
    return text


def _positive(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError("must be a number") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return value


def _options(args: argparse.Namespace) -> PlanOptions:
    return PlanOptions(
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


def cmd_plan(args: argparse.Namespace) -> int:
    plan, diagnostics = _load_plan(args)
    _print_diagnostics(diagnostics)
    if diagnostics.errors:
        return EXIT_INVALID
    if args.json:
        print(json.dumps(plan_json(plan), indent=2, ensure_ascii=False))
    else:
        print(plan_table(plan))
    problems = plan.over_budget()
    for problem in problems:
        print(f"r2v: over budget: {problem}", file=sys.stderr)
    return EXIT_FAILED if problems else EXIT_OK


Command = Callable[[argparse.Namespace], int]
