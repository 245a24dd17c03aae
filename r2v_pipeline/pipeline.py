"""``r2v run`` from plan to reports: the one place that wires plan → run → report.

The run layer returns what it did (run/session.py); the report layer turns
that into files (report/). Neither imports the other's machinery: this module
composes them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from . import exits
from .plan.planner import Plan
from .report.build import build_report
from .report.html import render_html
from .report.junit import write_junit
from .report.markdown import render_markdown
from .run.progress import Log
from .run.session import Outcome, Session, run_plan
from .run.store import write_json, write_text
from .simulation import SimulateOptions, opener
from .run.work import RunOptions


@dataclass(frozen=True)
class RunRequest:
    options: RunOptions = field(default_factory=RunOptions)
    simulate: SimulateOptions | None = None
    attach: str | None = None  # URL of a simulator started with ``r2v sim``
    log_format: str | None = None  # tty | plain | json; None: tty on a terminal
    report_dir: Path | None = None
    junit: Path | None = None  # a JUnit XML file of the run, one test case per shot
    exclusive: bool = False  # end at once (exits.LOCKED) when another run works on the ledger

    def session(self, plan: Plan) -> Session:
        simulate = self.simulate
        if simulate is not None:  # the embedded simulator serves each account the manifests name
            named = sorted({name for shot in plan.shots for name in shot.accounts if name})
            simulate = replace(simulate, accounts=tuple(named))
        return Session(self.options, opener(simulate, self.attach), self.exclusive)


def report_dir_of(plan: Plan) -> Path:
    """Beside the videos: <output dir>/report.json links to <series>/<episode>/<shot>.mp4."""
    return plan.shots[0].output.parent.parent.parent if plan.shots else Path.cwd()


def execute(plan: Plan, request: RunRequest, stream: TextIO | None = None) -> int:
    """Run the plan and write its reports; the exit code."""
    log = Log.choose(request.log_format, stream or sys.stderr)
    report_dir = request.report_dir or report_dir_of(plan)
    outcome = run_plan(plan, request.session(plan), log, writes=[report_dir])
    if isinstance(outcome, int):
        return outcome
    report = _report(outcome, plan, report_dir)
    try:
        _write_reports(report, plan, report_dir, request.junit)
    except OSError as error:
        outcome.log.note(
            f"r2v: could not write the report in {report_dir}: {error.strerror or error}; every video and the ledger are kept",
            "environment", level="error",
        )  # fmt: skip
        return exits.ENVIRONMENT
    outcome.log.note(_summary(report, report_dir))
    return int(report["run"]["exit_code"])


def _report(outcome: Outcome, plan: Plan, report_dir: Path) -> dict[str, Any]:
    result = outcome.result
    report = build_report(
        result.work, outcome.records, report_dir, started=outcome.started, finished=outcome.finished, exit_code=outcome.code,
        interrupted=outcome.interrupted, simulated=outcome.simulated, currency=plan.currency, recovered=result.recovered,
        unreachable=result.unreachable, accounts=result.accounts,
    )  # fmt: skip
    if outcome.code == exits.OK and report["totals"]["billing_differences"]:
        report["run"]["exit_code"] = exits.FAILED  # billed other than planned: a person should look
    return report


def _write_reports(report: dict[str, Any], plan: Plan, report_dir: Path, junit: Path | None) -> None:
    write_json(report_dir / "report.json", report)
    write_text(report_dir / "report.md", render_markdown(report))
    write_text(report_dir / "report.html", render_html(report, plan.shots, report_dir))
    if junit is not None:
        write_junit(report, junit)


def _summary(report: dict[str, Any], report_dir: Path) -> str:
    totals = report["totals"]
    states = ", ".join(f"{n} {s}" for s, n in totals["by_status"].items())
    return f"{totals['done']}/{totals['shots']} done ({states}); report: {report_dir / 'report.md'}"
