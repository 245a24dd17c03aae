"""Runs and spend over time: each run's report kept under its id, `r2v history` summing
what the ledger recorded, and JSON log lines a log shipper can sum spend from."""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, strategies as st

from r2v_pipeline.run.history import by, episode_of, history, history_text, month_of, of_episodes, to_date, total
from r2v_pipeline.run.ledger import Ledger
from r2v_pipeline.run.ledger_store import Charge, RunRecord

from .test_everyday_loop import cli
from .test_run import StartSim, fast_sim

REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO / "schemas" / "report.schema.json").read_text())


@pytest.fixture
def series(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "manifests" / "lighthouse", tmp_path / "lighthouse")
    return tmp_path / "lighthouse"


def sim_billed(sim: Any, since: int) -> tuple[Decimal, list[str]]:
    """Seconds the simulator billed for the tasks made after the first ``since``, and their ids."""
    tasks = sim.ledger.tasks()[since:]
    return sum((t.billed_seconds for t in tasks if t.billed_seconds is not None), Decimal(0)), [t.task_id for t in tasks]


def test_three_runs_history_matches_what_the_simulator_billed(tmp_path: Path, series: Path, start_sim: StartSim) -> None:
    """A first run, one shot edited, a run with nothing to do: `r2v history --json` lists the
    three with what each billed, exactly the simulator's figures, and sums them."""
    sim = fast_sim(start_sim)
    episode = series / "ep01-the-storm.yaml"
    folders = ["--out", str(tmp_path / "out"), "--state", str(tmp_path / "state")]
    where = ["--simulator", sim.base_url, *folders]
    billed: list[Decimal] = []
    logs: list[list[dict[str, Any]]] = []
    reports: list[dict[str, Any]] = []

    def run() -> None:
        before = len(sim.ledger.tasks())
        code, _, err = cli("run", str(episode), "--log-format", "json", *where)
        assert code == 0, err
        billed.append(sim_billed(sim, before)[0])
        logs.append([json.loads(line) for line in err.splitlines()])  # every line parses
        reports.append(json.loads((tmp_path / "out" / "simulated" / "report.json").read_text()))

    run()
    episode.write_text(episode.read_text().replace("bursts through the door, soaked.", "bursts through the door, dripping."))
    run()
    run()
    assert billed[0] > 0 and 0 < billed[1] < billed[0] and billed[2] == 0  # the edit remade one shot; the no-op nothing

    code, out, _ = cli("history", str(episode), "--json", "--simulated", *folders)
    assert code == 0
    data = json.loads(out)
    ids = [r["run_id"] for r in data["runs"]]
    assert ids == [r["run"]["id"] for r in reports] and len(set(ids)) == 3
    assert [Decimal(str(r["billed_seconds"])) for r in data["runs"]] == billed  # exactly the simulator's
    assert [r["tasks"] for r in data["runs"]] == [6, 1, 0]
    assert all(r["ended"] and r["exit_code"] == 0 and r["episodes"] == ["lighthouse/ep01"] for r in data["runs"])
    assert {r["source"] for r in data["runs"][:2]} == {"provider"} and data["runs"][2]["source"] == "none"
    assert Decimal(str(data["total"]["billed_seconds"])) == sum(billed)
    for group in ("by_series", "by_episode", "by_account", "by_month"):
        assert sum(Decimal(str(s["billed_seconds"])) for s in data[group].values()) == sum(billed), group
    assert list(data["by_series"]) == ["lighthouse"] and list(data["by_episode"]) == ["lighthouse/ep01"]
    assert len(data["by_month"]) == 1
    costs = [r["totals"]["cost_this_run"] for r in reports]
    assert [r["cost"] for r in data["runs"]] == pytest.approx(costs)

    # Each run's reports stay under its id (one that found nothing to do keeps none: the
    # history above records it); the stable path holds the latest.
    stable = tmp_path / "out" / "simulated"
    assert not (stable / "runs" / reports[2]["run"]["id"]).exists()
    for report in reports[:2]:
        kept = stable / "runs" / report["run"]["id"]
        assert {p.name for p in kept.iterdir()} >= {"report.json", "report.md", "report.html"}
        kept_report = json.loads((kept / "report.json").read_text())
        assert kept_report["totals"] == report["totals"]
        jsonschema.validate(report, SCHEMA)
        # Its links start from its own folder and reach the same videos.
        outputs = [s["output"] for s in report["shots"] if s["output"]]
        assert outputs and [(kept / s["output"]).resolve() for s in kept_report["shots"] if s["output"]] == [(stable / o).resolve() for o in outputs]
        sources = re.findall(r'<video[^>]* src="([^"]+)"', (kept / "report.html").read_text())
        assert [(kept / src).resolve() for src in sources] == [(stable / o).resolve() for o in outputs]
        assert all((kept / src).is_file() for src in sources)
    latest = (stable / "report.html").read_text()
    assert re.findall(r'<video[^>]* src="([^"]+)"', latest) == [s["output"] for s in reports[2]["shots"] if s["output"]]
    # The run with nothing to do asked no provider anything, and says it was simulated all the same.
    assert reports[2]["run"]["simulated"] and not any("simulated providers at" in line.get("message", "") for line in logs[2])
    # The no-op run's header: nothing this run, the episode's whole spend to date.
    last = reports[2]
    assert last["totals"]["billed_seconds_this_run"] == 0
    assert Decimal(str(last["episodes_to_date"]["lighthouse/ep01"]["billed_seconds"])) == sum(billed)
    markdown = (tmp_path / "out" / "simulated" / "report.md").read_text()
    assert "- this run: 0 s billed" in markdown and f"- this episode to date (lighthouse/ep01): {data['total']['billed_seconds']} s billed" in markdown
    html = (tmp_path / "out" / "simulated" / "report.html").read_text()
    assert 'data-spend="this-run"' in html and "lighthouse/ep01 to date" in html

    # The JSON log: level, time (UTC), event, run id on every line; its spend sums to the report's.
    for log, report in zip(logs, reports):
        for line in log:
            assert line["level"] in ("info", "warning", "error") and line["event"] and line["run_id"] == report["run"]["id"], line
            assert datetime.fromisoformat(line["time"]).utcoffset().total_seconds() == 0, line
            assert "shot" in line
        succeeded = [line for line in log if line["event"] == "succeeded"]
        assert all(line["shot"] for line in succeeded)
        assert sum(Decimal(str(line["billed_seconds"])) for line in succeeded) == Decimal(str(report["totals"]["billed_seconds_this_run"]))
        assert sum(Decimal(str(line["cost"])) for line in succeeded) == Decimal(str(report["totals"]["cost_this_run"]))

    code, text, _ = cli("history", str(episode), "--simulated", *folders)
    assert code == 0 and all(run_id in text for run_id in ids) and "by episode:" in text and "lighthouse/ep01" in text


def test_history_keeps_only_what_concerns_the_episodes_asked() -> None:
    runs = [RunRecord("r1", "h", 1.0, 2.0, 0, ("s/e1",)), RunRecord("r2", "h", 3.0, 4.0, 0, ("t/x",)), RunRecord("r3", "h", 5.0, 6.0, 0, ("s/e1", "t/x"))]
    charges = [Charge(r, f"task-{r}-{k}", k, "dashscope", "m", "acct", 5.0, 5.0, 1.0, 1.0) for r, k in (("r1", "s/e1/a"), ("r2", "t/x/b"), ("r3", "t/x/c"), ("r3", "s/e1/d"))]
    kept_runs, kept_charges = of_episodes(runs, charges, {"s/e1"})
    assert [r.run_id for r in kept_runs] == ["r1", "r3"]
    assert [c.key for c in kept_charges] == ["s/e1/a", "s/e1/d"]
    assert of_episodes(runs, charges, set()) == ([], [])


def test_history_of_a_ledger_with_no_runs_says_so(tmp_path: Path, series: Path) -> None:
    code, out, _ = cli("history", str(series / "ep01-the-storm.yaml"), "--out", str(tmp_path / "out"), "--state", str(tmp_path / "state"))
    assert code == 0 and "(no runs recorded yet)" in out and "total: 0 s" in out


def test_a_charge_is_recorded_once_per_task_under_the_run_that_saw_it_billed(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path, run_id="run-one")
    ledger.enter("fp", "s/e/a", "dashscope", "m", "acct", "http://x", "a.mp4", planned_seconds=5.0)
    assert ledger.start_submit("fp", "acct", 5)
    ledger.submitted("fp", "task-1", "acct", "m")
    ledger.succeeded("fp", "http://x/v.mp4", None, cost=0.5)
    ledger.succeeded("fp", "http://x/v.mp4", None, cost=0.5)  # the same end recorded again (two runs racing)
    ledger.ended(1.0, 2.0, 0, ["s/e"])
    ledger.close()
    again = Ledger.peek(tmp_path)
    assert again is not None
    (charge,) = again.charges()
    assert (charge.run_id, charge.task_id, charge.key, charge.account, charge.seconds, charge.source, charge.cost) == ("run-one", "task-1", "s/e/a", "acct", 5.0, "plan", 0.5)
    assert again.runs() == [RunRecord("run-one", again.host, 1.0, 2.0, 0, ("s/e",))]
    again.close()


charges = st.lists(
    st.builds(
        Charge,
        run_id=st.sampled_from(["r1", "r2", "r3"]),
        task_id=st.uuids().map(str),
        key=st.sampled_from(["a/e1/s1", "a/e1/s2#take2", "a/e2/s1", "b/e1/s1"]),
        provider=st.just("dashscope"),
        model=st.just("m"),
        account=st.sampled_from(["acct-1", "acct-2"]),
        planned_seconds=st.integers(1, 15).map(float),
        billed_seconds=st.one_of(st.none(), st.integers(1, 15).map(float)),
        cost=st.one_of(st.none(), st.decimals("0", "5", places=2).map(float)),
        at=st.floats(1.6e9, 1.9e9),
    ),
    max_size=20,
)


@given(charges)
def test_every_grouping_sums_to_the_total(found: list[Charge]) -> None:
    whole = total(found)
    for group in (lambda c: c.run_id, lambda c: episode_of(c.key), lambda c: c.account, lambda c: month_of(c.at)):
        sums = by(found, group).values()
        assert sum((s.seconds for s in sums), Decimal(0)) == whole.seconds
        assert sum(s.tasks for s in sums) == whole.tasks == len(found)
        assert (whole.cost is None) == any(s.cost is None for s in sums)
    assert whole.source in ("provider", "plan", "provider+plan", "none")
    assert (whole.source == "none") == (not found)
    episodes = to_date(found, ["a/e1", "z/none"])
    assert episodes["z/none"].tasks == 0 and episodes["a/e1"].tasks == sum(1 for c in found if c.key.startswith("a/e1/"))
    data = history([], found)
    assert sum(r["tasks"] for r in data["runs"]) == len(found) and not any(r["ended"] for r in data["runs"])
    assert "total:" in history_text(data)


def test_where_the_provider_gives_no_usage_history_sums_the_plans_figures_and_says_so(tmp_path: Path, series: Path, start_sim: StartSim) -> None:
    """Freepik reports no billed seconds: the plan's figure stands, labelled "plan"."""
    sim = fast_sim(start_sim)
    episode = series / "ep02-the-letter.yaml"
    folders = ["--out", str(tmp_path / "out"), "--state", str(tmp_path / "state")]
    code, _, err = cli("run", str(episode), "--log-format", "json", "--simulator", sim.base_url, *folders)
    assert code == 0, err
    succeeded = [line for line in map(json.loads, err.splitlines()) if line["event"] == "succeeded"]
    assert {line["billing"] for line in succeeded} == {"plan"}
    code, out, _ = cli("history", str(episode), "--json", "--simulated", *folders)
    data = json.loads(out)
    (run,) = data["runs"]
    assert run["source"] == "plan" and data["by_episode"]["lighthouse/ep02"]["source"] == "plan"
    assert Decimal(str(run["billed_seconds"])) == sim_billed(sim, 0)[0] == sum(Decimal(str(line["billed_seconds"])) for line in succeeded)
