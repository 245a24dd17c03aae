"""``r2v sim``: run the simulator in the foreground until interrupted.

Keys are never taken on the command line (they would show in process lists):
the allow-lists and the webhook secret come from the environment.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

import anyio
import yaml

from .. import argtypes, exits
from .config import Rate, SimConfig
from .embedded import run_simulator
from .facts import read_declarations
from .faults import FaultSpec, FaultSpecError
from .faults import __doc__ as FAULTS_DOC

DEFAULT_PORT = 8765
KEY_VARIABLES = {"dashscope_keys": "R2V_SIM_DASHSCOPE_KEYS", "freepik_keys": "R2V_SIM_FREEPIK_KEYS"}
ACCOUNTS_VARIABLE = "R2V_SIM_DASHSCOPE_ACCOUNTS"
SECRET_VARIABLE = "R2V_SIM_WEBHOOK_SECRET"

EPILOG = f"""\
fault spec (--faults):
{FAULTS_DOC.split("::", 1)[1].split("Determinism:", 1)[0].rstrip()}

environment:
    {KEY_VARIABLES['dashscope_keys']}, {KEY_VARIABLES['freepik_keys']}
        comma-separated keys to accept; unset: any non-empty key is accepted
    {ACCOUNTS_VARIABLE}
        DashScope keys that share one account's quotas, tasks and uploads:
        ACCOUNT=KEY,KEY;ACCOUNT=KEY (default: each key is an account of its own)
    {SECRET_VARIABLE}
        the webhook signing secret (default: sim-webhook-secret)

state (--state DIR):
    the simulator keeps its tasks, uploaded files, task-id counters, clock and the
    ledger's tasks in DIR (SQLite and files), written as they change; started again
    on DIR (even after kill -9) it answers as the same provider: tasks keep their
    status and ids, result URLs and oss:// keys stay valid until they expire (24 h
    and 48 h of provider time). With --port 0 it asks for its previous port first.
    --clock-while-stopped says what provider time did while it was stopped:
      wall    it went on at the time scale, like an outage in which generation went
              on: tasks finish and expire meanwhile (the default here)
      paused  it resumes where it stood, as if the provider had not existed
              meanwhile (r2v run --simulate keeps its simulator's state this way)

introspection: GET /_sim/health, GET /_sim/ledger, POST /_sim/advance?seconds=N,
POST /_sim/media (body: a file; answers the URL the simulator serves it at),
POST /_sim/facts (body: {{URL: {{kind, format, bytes, width, height, seconds, audio}}}}:
what a remote URL holds; the simulator has no network, and a remote URL it was
told nothing of fails its task as undownloadable, as the provider's would)
"""


def add_command(subparsers: Any) -> None:
    """Register ``sim`` on the ``r2v`` command's subparsers."""
    parser = subparsers.add_parser(
        "sim",
        help="run the local DashScope + Freepik simulator on a loopback port",
        description="A local DashScope + Freepik simulator: real HTTP on loopback, scaled time, seeded faults.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SimConfig()
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=argtypes.port, default=DEFAULT_PORT, help="port; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--time-scale", type=argtypes.above_zero, default=1.0, metavar="F", help="wall seconds per provider second: 0.01 makes a 2-minute generation take 1.2 s (default: 1)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of every random choice: task ids, generation times, faults (default: 0)")
    parser.add_argument("--faults", type=_fault_spec, default="", metavar="SPEC", help="faults to inject; grammar below")
    parser.add_argument("--generation-seconds", type=_span, default=defaults.generation_seconds, metavar="LO:HI", help="generation time, uniform, provider seconds (default: 60:300)")
    parser.add_argument("--generation-by", choices=("task", "prompt"), default=defaults.generation_by, help="what fixes a task's generation time within the spread: its id, or its prompt so two clients get the same times (default: %(default)s)")
    parser.add_argument("--max-running", type=int, default=defaults.max_running, metavar="N", help="DashScope tasks in progress per account; 0: no limit (default: %(default)s)")
    parser.add_argument(
        "--account-max-running", action="append", default=[], type=_account_count, metavar="ACCOUNT=N",
        help="an account's own limit of tasks in progress (ACCOUNT as R2V_SIM_DASHSCOPE_ACCOUNTS names it); repeatable",
    )  # fmt: skip
    parser.add_argument("--submit-rate", type=int, default=defaults.submit_rate[0].count, metavar="N", help="DashScope submissions per second per account (default: %(default)s)")
    parser.add_argument("--query-rate", type=int, default=defaults.query_rate[0].count, metavar="N", help="DashScope task queries per second per account (default: %(default)s)")
    parser.add_argument("--rate-clock", choices=("wall", "provider"), default=defaults.rate_clock, help="the clock rate windows run on (default: %(default)s)")
    parser.add_argument("--pending-seconds", type=argtypes.not_negative, default=defaults.pending_seconds, metavar="S", help="provider seconds a new task waits as PENDING before it may start (default: %(default)s)")
    parser.add_argument("--billing-offset", type=float, default=defaults.billing_offset_seconds, metavar="S", help="for tests only: report S more input seconds in each succeeded task's usage than the billing rules give (default: 0)")
    parser.add_argument("--moderation-reject-word", default=defaults.moderation_reject_word, metavar="WORD", help="a prompt with this word is refused at submit (default: %(default)s)")
    parser.add_argument("--moderation-fail-word", default=defaults.moderation_fail_word, metavar="WORD", help="a prompt with this word makes the task fail moderation (default: %(default)s)")
    parser.add_argument("--media-facts", type=Path, metavar="FILE", help="YAML or JSON {URL: {kind, format, bytes, width, height, seconds, audio}}: what remote URLs hold (the simulator has no network; see POST /_sim/facts)")
    parser.add_argument("--cache-dir", type=Path, metavar="DIR", help="where generated videos are kept (default: STATE/videos with --state, else a temporary folder)")
    parser.add_argument("--state", type=Path, metavar="DIR", help="keep the simulator's state in DIR, so a restart on DIR is the same provider (default: memory only)")
    parser.add_argument("--clock-while-stopped", choices=("paused", "wall"), default="wall", help="with --state: how provider time passed while stopped (default: %(default)s)")
    parser.add_argument("--log-requests", action="store_true", help="print a line per request (never a key)")


def config_from_args(args: argparse.Namespace, environ: Any = os.environ) -> SimConfig:
    """A SimConfig from parsed arguments; ValueError names what is wrong."""
    secrets: dict[str, Any] = {field: frozenset(k.strip() for k in environ[var].split(",") if k.strip()) for field, var in KEY_VARIABLES.items() if environ.get(var)}
    if environ.get(SECRET_VARIABLE):
        secrets["webhook_secret"] = environ[SECRET_VARIABLE]
    if environ.get(ACCOUNTS_VARIABLE):
        secrets["accounts"] = parse_accounts(environ[ACCOUNTS_VARIABLE])
    return SimConfig(
        host=args.host,
        port=args.port,
        time_scale=args.time_scale,
        seed=args.seed,
        faults=args.faults,
        generation_seconds=args.generation_seconds,
        generation_by=args.generation_by,
        max_running=args.max_running or None,
        account_max_running=dict(args.account_max_running),
        submit_rate=(Rate(args.submit_rate, 1.0),),
        query_rate=(Rate(args.query_rate, 1.0),),
        rate_clock=args.rate_clock,
        remote_media=read_media_facts(args.media_facts) if args.media_facts else {},
        pending_seconds=args.pending_seconds,
        billing_offset_seconds=args.billing_offset,
        moderation_reject_word=args.moderation_reject_word,
        moderation_fail_word=args.moderation_fail_word,
        cache_dir=args.cache_dir,
        state_dir=args.state,
        clock_while_stopped=args.clock_while_stopped,
        **secrets,
    )


def read_media_facts(path: Path) -> dict[str, Any]:
    """The URL -> facts mapping in a YAML (or JSON) file; ValueError names the file."""
    try:
        found = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"--media-facts {path}: {err}") from None
    if not isinstance(found, dict):
        raise ValueError(f"--media-facts {path}: expected a mapping of URL -> facts")
    try:
        read_declarations(found)
    except ValueError as err:
        raise ValueError(f"--media-facts {path}: {err}") from None
    return found


def _account_count(text: str) -> tuple[str, int]:
    name, eq, count = text.partition("=")
    if not eq or not name.strip() or not count.strip().isdigit() or int(count) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected ACCOUNT=N, N a whole number of 1 or more")
    return name.strip(), int(count)


def parse_accounts(text: str) -> dict[str, str]:
    """``ACCOUNT=KEY,KEY;ACCOUNT=KEY`` as key -> account; ValueError never shows a key."""
    accounts: dict[str, str] = {}
    for group in filter(None, (g.strip() for g in text.split(";"))):
        name, eq, keys = group.partition("=")
        listed = [k.strip() for k in keys.split(",") if k.strip()]
        if not eq or not name.strip() or not listed:
            raise ValueError(f"{ACCOUNTS_VARIABLE}: each group is ACCOUNT=KEY[,KEY…]")
        accounts.update((key, name.strip()) for key in listed)
    return accounts


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ValueError as err:
        print(f"r2v sim: {err}", file=sys.stderr)
        return exits.INVALID
    if args.log_requests:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        anyio.run(_serve_until_signal, config)
    except KeyboardInterrupt:
        pass
    except Exception as err:
        cause = _sole_cause(err)
        if isinstance(cause, ValueError):  # a state folder that cannot be used
            print(f"r2v sim: {cause}", file=sys.stderr)
            return exits.INVALID
        if isinstance(cause, OSError):
            print(f"r2v sim: cannot listen on {config.host}:{config.port}: {cause}", file=sys.stderr)
            return exits.ENVIRONMENT
        raise
    return exits.OK


def _sole_cause(err: BaseException) -> BaseException:
    """The one error inside task-group wrappers (start-up errors arrive wrapped)."""
    while isinstance(getattr(err, "exceptions", None), tuple) and len(err.exceptions) == 1:  # type: ignore[attr-defined]
        err = err.exceptions[0]  # type: ignore[attr-defined]
    return err


async def _serve_until_signal(config: SimConfig) -> None:
    async with anyio.create_task_group() as group:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            state = await group.start(run_simulator, config)
            print(
                f"r2v sim: listening on {state.base_url} (DashScope {state.base_url}/api/v1, Freepik {state.base_url}); "
                f"seed {config.seed}, time scale {config.time_scale}, faults {config.faults or 'none'}"
                + (f", state {config.state_dir} (clock {config.clock_while_stopped} while stopped)" if config.state_dir else ""),
                flush=True,
            )
            async for _ in signals:
                break
        group.cancel_scope.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m r2v_pipeline.sim``."""
    parser = argparse.ArgumentParser(prog="python -m r2v_pipeline.sim", description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


def _fault_spec(text: str) -> str:
    try:
        FaultSpec.parse(text)
    except FaultSpecError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _span(text: str) -> tuple[float, float]:
    lo, colon, hi = text.partition(":")
    try:
        span = (float(lo), float(hi if colon else lo))
    except ValueError:
        raise argparse.ArgumentTypeError("must be LO:HI in seconds") from None
    if not 0 <= span[0] <= span[1]:
        raise argparse.ArgumentTypeError("must be 0 <= LO <= HI")
    return span
