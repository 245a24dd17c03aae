"""``r2v run`` from plan to reports: the one place that wires plan → run → report.

The run layer returns what it did (run/session.py); the report layer turns
that into files (report/). Neither imports the other's machinery: this module
composes them.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from . import exits
from .plan.planner import Plan
from .report.build import build_report, cuts_of, rebased
from .report.html import render_html
from .report.json_text import report_json
from .report.markdown import render_markdown
from .run.history import to_date
from .run.progress import Log
from .run.session import Outcome, Session, run_plan
from .run.states import ShotStatus
from .run.store import write_text
from .simulation import SimulateOptions, opener
from .run.work import RunOptions


@dataclass(frozen=True, kw_only=True)  # by name: the fields grow, and a shifted position would be silent
class RunRequest:
    """How to run a plan: run options, simulator, logging, reports, ledger."""

    options: RunOptions = field(default_factory=RunOptions)
    simulate: SimulateOptions | None = None
    attach: str | None = None  # URL of a simulator started with ``r2v sim``
    log_format: str | None = None  # tty | plain | json; None: tty on a terminal
    run_id: str | None = None  # None: a new one; the log lines, the ledger's history and runs/<id>/ carry it
    report_dir: Path | None = None
    junit: Path | None = None  # a JUnit XML file of the run, one test case per shot
    exclusive: bool = False  # end at once (exits.LOCKED) when another run works on the ledger
    ledger: str | None = None  # a shared PostgreSQL ledger's URL; None: the SQLite file in the state folder

    def session(self, plan: Plan) -> Session:
        simulate = self.simulate
        if simulate is not None:  # the embedded simulator serves each account the manifests name
            named = sorted({name for shot in plan.shots for name in shot.accounts if name})
            simulate = replace(simulate, accounts=tuple(named))
        return Session(self.options, opener(simulate, self.attach), self.exclusive, self.ledger)


RUNS = "runs"  # <report folder>/runs/<run id>/: every run's own reports


def report_dir_of(plan: Plan) -> Path:
    """Beside the videos: <output dir>/report.json links to <series>/<episode>/<shot>.mp4."""
    return plan.shots[0].output.parent.parent.parent if plan.shots else Path.cwd()


def execute(plan: Plan, request: RunRequest, stream: TextIO | None = None) -> int:
    """Run the plan and write its reports; the exit code."""
    return run_and_report(plan, request, stream).code


@dataclass(frozen=True)
class Executed:
    """A run's exit code and its report (as written to report.json); no report when the run could not start."""

    code: int
    report: dict[str, Any] | None
    report_dir: Path


def run_and_report(plan: Plan, request: RunRequest, stream: TextIO | None = None) -> Executed:
    """Run the plan and write its reports; the exit code and the report."""
    log = Log.choose(request.log_format, stream or sys.stderr, run_id=request.run_id)
    log.spend_limit(_money_budget(plan), plan.currency)
    report_dir = request.report_dir or report_dir_of(plan)
    outcome = run_plan(plan, request.session(plan), log, writes=[report_dir])
    if isinstance(outcome, int):
        return Executed(outcome, None, report_dir)
    report = _report(outcome, plan, report_dir)
    try:
        kept = None if _found_nothing_to_do(report) else report_dir / RUNS / outcome.run_id
        _write_reports(report, plan, report_dir, request.junit, kept=kept)
    except OSError as error:
        outcome.log.note(
            f"r2v: could not write the report in {report_dir}: {error.strerror or error}; every video and the ledger are kept",
            "environment", level="error",
        )  # fmt: skip
        return Executed(exits.ENVIRONMENT, report, report_dir)
    outcome.log.note(_summary(report, report_dir))
    return Executed(int(report["run"]["exit_code"]), report, report_dir)


def _report(outcome: Outcome, plan: Plan, report_dir: Path) -> dict[str, Any]:
    result = outcome.result
    report = build_report(
        result.work, outcome.records, report_dir, started=outcome.started, finished=outcome.finished, exit_code=outcome.code,
        interrupted=outcome.interrupted, simulated=outcome.simulated, currency=plan.currency, recovered=result.recovered,
        unreachable=result.unreachable, run_id=outcome.run_id, accounts=result.accounts,
        to_date=to_date(outcome.charges, [f"{s.series}/{s.episode}" for s in plan.shots]),
    )  # fmt: skip
    if outcome.code == exits.OK and report["totals"]["billing_differences"]:
        report["run"]["exit_code"] = exits.FAILED  # billed other than planned: a person should look
    return report


def _money_budget(plan: Plan) -> float | None:
    """The money the run may spend, for the board: the tightest budget that covers everything."""
    overall = [b.money for b in plan.budgets if b.money is not None and b.episode is None]
    if overall:
        return float(min(overall))
    per_episode: dict[tuple[str, str], Any] = {}
    for b in plan.budgets:
        if b.money is not None and b.episode is not None:
            per_episode[b.episode] = min(b.money, per_episode.get(b.episode, b.money))
    return float(sum(per_episode.values())) if per_episode else None


def _found_nothing_to_do(report: dict[str, Any]) -> bool:
    """Every shot was already made and the run ended well: it keeps no reports of its own
    under runs/ (the stable path holds this one; the ledger's history records the run).
    A cron job finding nothing each hour would otherwise keep a full page every hour."""
    shots = report["shots"]
    return report["run"]["exit_code"] == exits.OK and bool(shots) and all(s["status"] == ShotStatus.SKIPPED.value for s in shots)


def _write_reports(report: dict[str, Any], plan: Plan, report_dir: Path, junit: Path | None, kept: Path | None = None) -> None:
    """The reports in ``report_dir``, and the same under ``kept`` (runs/<id>/: each run's
    reports stay there), its paths made relative to that folder. Each file is made once:
    the two differ only in where their paths start, so it is made with a marker there."""
    marker = f"r2v-base-{uuid.uuid4().hex}/"  # found nowhere else in the files
    marked = rebased(report, marker)
    files = {
        "report.json": report_json(marked),
        "report.md": render_markdown(marked),
        "report.html": render_html(report, plan.shots, report_dir, base=marker),  # the report's links, from the marker
    }
    for folder in ([kept] if kept is not None else []) + [report_dir]:
        start = os.path.relpath(report_dir, folder) + "/" if folder != report_dir else ""
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            write_text(folder / name, text.replace(marker, start))
    if junit is not None:
        from .report.junit import write_junit  # XML only when asked for

        write_junit(report, junit)


def relink_cuts(plan: Plan, request: RunRequest) -> None:
    """After ``run --assemble``: the run's report links the cuts and timelines just written."""
    report_dir = request.report_dir or report_dir_of(plan)
    try:
        report = json.loads((report_dir / "report.json").read_text())
        report["cuts"] = cuts_of(plan.shots, report_dir)
        _write_reports(report, plan, report_dir, None)
    except (OSError, ValueError):
        pass  # the report stays as the run wrote it; the cut is on disk all the same


def _summary(report: dict[str, Any], report_dir: Path) -> str:
    totals = report["totals"]
    states = ", ".join(f"{n} {s}" for s, n in totals["by_status"].items())
    return f"{totals['done']}/{totals['shots']} done ({states}); report: {report_dir / 'report.md'}"
