"""Account pools: several accounts of one provider, each with its own key and quotas.

The manifest's checks are planned without a provider; the runs talk HTTP to the
simulator on loopback, which is told which keys make which account.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any, Callable

import anyio
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from r2v_pipeline import exits
from r2v_pipeline.diagnostics import Diagnostics
from r2v_pipeline.pipeline import RunRequest, execute
from r2v_pipeline.plan.planner import PlanOptions, make_plan
from r2v_pipeline.run.ledger import Ledger
from r2v_pipeline.run.work import RunOptions
from r2v_pipeline.sim import Simulator
from r2v_pipeline.sim.faults import FaultSpec, FaultSpecError, decide

from .test_run import FAST, plan_of, run

StartSim = Callable[..., Simulator]
KEYS = {"R2V_TEST_KEY_A": "key-a", "R2V_TEST_KEY_B": "key-b1", "R2V_TEST_KEY_C": "key-c"}
# The simulator's key -> account: account b answers to two keys (they share its quotas).
SIM_ACCOUNTS = {"key-a": "a", "key-b1": "b", "key-b2": "b", "key-c": "c"}

POOL = """\
provider:
  name: dashscope
  accounts:
    - {name: a, key_env: R2V_TEST_KEY_A}
    - {name: b, key_env: R2V_TEST_KEY_B}
    - {name: c, key_env: R2V_TEST_KEY_C, quota: {in_progress: 2}}
"""


def episode(shots: int, provider: str = POOL, pins: dict[int, str] | None = None) -> str:
    lines = [provider.rstrip(), "cast: {x: {image: m/x.png}}", "defaults: {model: wan2.7-r2v, resolution: 720P, duration: 5}", "shots:"]
    for i in range(shots):
        pin = f", account: {pins[i]}" if pins and i in pins else ""
        lines.append(f"  - {{id: s{i:02d}, prompt: '{{{{ x }}}} walks, take {i}'{pin}}}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, key in KEYS.items():
        monkeypatch.setenv(name, key)


def pool_sim(start_sim: StartSim, **fields: Any) -> Simulator:
    """Real time, 200 times faster; 5 tasks in progress per account, 2 for account c."""
    return start_sim(time_scale=0.005, rate_clock="wall", accounts=SIM_ACCOUNTS, account_max_running={"c": 2}, **fields)


def peaks(sim: Simulator) -> dict[str, int]:
    """The most tasks each account had waiting or running at once, as the simulator counted."""
    health = httpx.get(sim.base_url + "/_sim/health", trust_env=False).json()
    return {name.split("/", 1)[1]: n for name, n in health["peak_in_flight_by_account"].items()}


def billed_twice(sim: Simulator) -> int:
    fingerprints = [t.fingerprint for t in sim.ledger.tasks() if t.status == "SUCCEEDED"]
    return len(fingerprints) - len(set(fingerprints))


def plan_errors(path: Path) -> list[str]:
    diagnostics = Diagnostics()
    make_plan([path], PlanOptions(output_dir=path.parent / "out", state_dir=path.parent / "state"), diagnostics)
    return [f"{d.position}: {d.message}" for d in diagnostics.errors]


# --- the manifest -------------------------------------------------------------------


def test_an_unknown_pinned_account_is_named_with_its_place(write: Callable[[str, str], Path], media: Callable[[str, str], Path]) -> None:
    media("m/x.png", "png")
    ep = write("ep.yaml", episode(2, pins={1: "bb"}))
    errors = plan_errors(ep)
    assert len(errors) == 1
    assert "ep.yaml:11:" in errors[0], errors  # where the shot's account: stands
    assert 'shots[s01].account: no account "bb"' in errors[0] and 'did you mean "b"' in errors[0]


def test_a_pin_without_accounts_says_where_to_name_them(write: Callable[[str, str], Path], media: Callable[[str, str], Path]) -> None:
    media("m/x.png", "png")
    ep = write("ep.yaml", episode(1, provider="provider: {name: dashscope}").replace("defaults: {", "defaults: {account: main, "))
    errors = plan_errors(ep)
    assert len(errors) == 1 and "defaults.account" in errors[0] and "provider.accounts names none" in errors[0], errors


def test_duplicate_account_names_and_shared_key_variables_are_refused(write: Callable[[str, str], Path], media: Callable[[str, str], Path]) -> None:
    media("m/x.png", "png")
    pool = POOL + "    - {name: a, key_env: R2V_TEST_KEY_D}\n    - {name: d, key_env: R2V_TEST_KEY_B}\n"
    errors = plan_errors(write("ep.yaml", episode(1, provider=pool)))
    assert any("ep.yaml:7:" in e and 'duplicate account "a" (first at line 4)' in e for e in errors), errors
    assert any("ep.yaml:8:" in e and "R2V_TEST_KEY_B is also account \"b\"'s key" in e for e in errors), errors


def test_an_account_without_a_key_variable_is_a_schema_error(write: Callable[[str, str], Path], media: Callable[[str, str], Path]) -> None:
    media("m/x.png", "png")
    pool = "provider:\n  accounts:\n    - {name: a}\n    - {name: b, key_env: 'not a variable'}\n"
    errors = plan_errors(write("ep.yaml", episode(1, provider=pool)))
    assert any("ep.yaml:3:" in e and "provider.accounts[0] needs 'key_env'" in e for e in errors), errors
    assert any("ep.yaml:4:" in e and "provider.accounts[1].key_env" in e for e in errors), errors


def test_the_account_is_not_in_the_fingerprint(tmp_path: Path, write: Callable[[str, str], Path], media: Callable[[str, str], Path]) -> None:
    """Moving a shot between accounts (or naming accounts at all) is not an edit."""
    media("m/x.png", "png")
    alone = plan_of([write("one.yaml", episode(3, provider="provider: {name: dashscope}"))], tmp_path)
    pooled = plan_of([write("pool.yaml", episode(3, pins={0: "c", 2: "b"}))], tmp_path)
    assert [s.fingerprint for s in alone.shots] == [s.fingerprint for s in pooled.shots]
    assert [s.accounts for s in pooled.shots] == [("c",), ("a", "b", "c"), ("b",)]


def test_a_missing_key_variable_stops_the_run_before_anything_is_sent(
    tmp_path: Path, write: Callable[[str, str], Path], media: Callable[[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    media("m/x.png", "png")
    monkeypatch.setenv("R2V_TEST_KEY_A", "key-a")
    monkeypatch.delenv("R2V_TEST_KEY_B", raising=False)
    plan = plan_of([write("ep.yaml", episode(2))], tmp_path)
    log = io.StringIO()
    code = execute(plan, RunRequest(options=FAST, log_format="plain", report_dir=tmp_path / "out"), stream=log)
    assert code == exits.INVALID
    assert "ep.yaml:5:" in log.getvalue() and "provider.accounts[b].key_env" in log.getvalue() and "R2V_TEST_KEY_B" in log.getvalue()
    assert not (tmp_path / "out" / "report.json").exists()


# --- runs -----------------------------------------------------------------------------


def test_shots_spread_over_three_accounts_each_inside_its_quota(
    tmp_path: Path, start_sim: StartSim, write: Callable[[str, str], Path], media: Callable[[str, str], Path], keys: None
) -> None:
    media("m/x.png", "png")
    sim = pool_sim(start_sim)
    ep = write("ep.yaml", episode(24, pins={3: "c", 17: "a"}))
    code, report, log = run([ep], tmp_path, sim)
    assert code == 0, log
    assert all(s["status"] == "downloaded" for s in report["shots"]), log
    assert billed_twice(sim) == 0 and sim.ledger.duplicate_submissions() == {}
    peak = peaks(sim)
    assert set(peak) == {"acct-a", "acct-b", "acct-c"}, peak  # every account worked
    assert peak["acct-a"] <= 5 and peak["acct-b"] <= 5 and peak["acct-c"] <= 2, peak
    assert peak["acct-a"] + peak["acct-b"] >= 6, peak  # shots ran on several accounts at once
    by_shot = {s["shot"]: s["account"] for s in report["shots"]}
    assert by_shot["s03"] == "c" and by_shot["s17"] == "a"  # pinned shots went to their accounts
    tasks = {t.task_id: t.account for t in sim.ledger.tasks()}
    assert all(tasks[s["task_id"]] == f"acct-{s['account']}" for s in report["shots"])
    accounts = {a["account"]: a for a in report["accounts"]}
    assert sum(a["shots"] for a in accounts.values()) == 24 and not any(a["lost"] for a in accounts.values())
    assert sum(a["billed_seconds_this_run"] for a in accounts.values()) == report["totals"]["billed_seconds_this_run"]


def test_each_account_watches_its_own_tasks_with_one_list_per_cycle(
    tmp_path: Path, start_sim: StartSim, write: Callable[[str, str], Path], media: Callable[[str, str], Path], keys: None
) -> None:
    """The task-list watcher per account: each account's tasks are followed by lists read
    through that account (its own key, inside its own query quota), not per-task polls."""
    media("m/x.png", "png")
    sim = pool_sim(start_sim, generation_seconds=(60.0, 300.0))
    code, report, log = run([write("ep.yaml", episode(15))], tmp_path, sim)
    assert code == 0, log
    assert all(s["status"] == "downloaded" for s in report["shots"]), log
    for account in ("acct-a", "acct-b", "acct-c"):
        tasks = sim.ledger.tasks(account=account)
        lists, queries = sim.ledger.requests("list", account=account), sim.ledger.requests("query", account=account)
        assert tasks, account
        assert len(lists) >= 3, (account, len(lists))  # its own list loop watched them ...
        # ... and each of its tasks was asked about about once, when the list showed it ended
        assert len(queries) <= len(tasks) + len(tasks) // 2 + 1, (account, len(tasks), len(queries))
        assert {r.task_id for r in queries} <= {t.task_id for t in tasks}  # followed through the account that made it
        assert not [r for r in lists + queries if r.status == 429], account


def test_an_account_that_answers_arrearage_leaves_the_pool_and_its_tasks_are_still_fetched(
    tmp_path: Path, start_sim: StartSim, write: Callable[[str, str], Path], media: Callable[[str, str], Path], keys: None
) -> None:
    media("m/x.png", "png")
    sim = pool_sim(start_sim, faults="arrearage=b:3")  # b takes three submits, then its bill is overdue
    ep = write("ep.yaml", episode(20))
    code, report, log = run([ep], tmp_path, sim)
    assert code == 0, log
    assert all(s["status"] == "downloaded" for s in report["shots"]), log
    assert billed_twice(sim) == 0
    made_by_b = [t for t in sim.ledger.tasks() if t.account == "acct-b"]
    assert len(made_by_b) == 3  # its tasks in flight when it was lost...
    fetched = {s["task_id"] for s in report["shots"]}
    assert all(t.task_id in fetched for t in made_by_b)  # ...were still followed and downloaded
    refused = [r for r in sim.ledger.requests(kind="submit", account="acct-b") if r.status == 400]
    # Refused only by the submits already on their way when the first refusal came back
    # (b's two other slots); the shots queued behind them never tried it.
    assert 1 <= len(refused) <= 2, refused
    lost = {a["account"]: a["lost"] for a in report["accounts"]}
    assert lost["b"] and "Arrearage" in lost["b"] and lost["a"] is None and lost["c"] is None
    assert sum(1 for s in report["shots"] if s["account"] == "b") == 3
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "account b** was taken out of the pool" in markdown
    assert "account b is out of the pool" in log
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<h2>Accounts</h2>" in page and 'class="lost"><td>b</td>' in page


def test_a_shot_pinned_to_a_lost_account_is_not_sent_elsewhere(
    tmp_path: Path, start_sim: StartSim, write: Callable[[str, str], Path], media: Callable[[str, str], Path], keys: None
) -> None:
    media("m/x.png", "png")
    sim = pool_sim(start_sim, faults="arrearage=c:0")
    ep = write("ep.yaml", episode(4, pins={1: "c"}))
    code, report, log = run([ep], tmp_path, sim)
    shots = {s["shot"]: s for s in report["shots"]}
    assert shots["s01"]["status"] == "unsent" and "pinned account" in shots["s01"]["reason"], log
    assert all(shots[k]["status"] == "downloaded" for k in ("s00", "s02", "s03"))
    assert code != 0 and not [t for t in sim.ledger.tasks() if t.account == "acct-c"]


def sent_through_b(sim: Simulator, tmp_path: Path, shot: Any) -> tuple[Ledger, str]:
    """What an earlier r2v left: a task made with account b's key, its row naming the
    account in the older form "dashscope:b" (before ids held the key's hash). The ledger
    is returned open."""
    from r2v_pipeline.providers.dashscope import DashScope
    from r2v_pipeline.simulation import attached_simulation

    time_ = attached_simulation(sim.base_url).time

    async def submit() -> str:
        client = DashScope(sim.dashscope_url, "key-b1", time=time_)
        outcome = await client.submit(await client.prepare(shot.request))
        await client.aclose()
        return outcome.task_id  # type: ignore[union-attr]

    task_id = anyio.run(submit)
    ledger = Ledger.open(tmp_path / "state")
    ledger.enter(shot.fingerprint, shot.key, "dashscope", shot.spec.model, "dashscope:a", shot.target.base_url, str(shot.output.resolve()))
    assert ledger.start_submit(shot.fingerprint, "dashscope:b", 5, shot.target.base_url)
    ledger.submitted(shot.fingerprint, task_id, "dashscope:b", shot.spec.model)
    return ledger, task_id


def test_a_rerun_follows_a_task_through_the_account_that_made_it(
    tmp_path: Path, start_sim: StartSim, write: Callable[[str, str], Path], media: Callable[[str, str], Path], keys: None
) -> None:
    """A run that sent a shot through account b died; the next run, whose pool would
    send new shots to a first, polls and fetches the task with b's key: no new task."""
    from r2v_pipeline.run.status import status_json, status_table

    media("m/x.png", "png")
    sim = pool_sim(start_sim)
    ep = write("ep.yaml", episode(1))
    plan = plan_of([ep], tmp_path)
    shot = plan.shots[0]
    ledger, task_id = sent_through_b(sim, tmp_path, shot)
    assert ledger.get(shot.fingerprint).account == "dashscope:b"  # type: ignore[union-attr]
    # r2v status: each account's slots in use beside its quota
    slots = {a["account"]: (a["in_progress"], a["slots"]) for a in status_json(plan, ledger.records())["accounts"]}
    assert slots == {"a": (0, 5), "b": (1, 5), "c": (0, 2)}
    assert "slots in use: a 0/5, b 1/5, c 0/2" in status_table(plan, ledger.records())
    ledger.close()  # then the run died

    code, report, log = run([ep], tmp_path, sim)
    assert code == 0, log
    assert report["shots"][0]["status"] == "downloaded" and report["shots"][0]["task_id"] == task_id
    assert report["shots"][0]["account"] == "b"
    assert len(sim.ledger.tasks()) == 1  # nothing sent again
    queries = [r for r in sim.ledger.requests(kind="query") if task_id in r.path]
    assert queries and {r.account for r in queries} == {"acct-b"}  # asked with b's key, never a's


def test_two_keys_of_one_account_share_its_tasks_and_its_slots(start_sim: StartSim, media_bytes: dict[str, bytes]) -> None:
    """The simulator's key -> account mapping: account b's second key lists the tasks its
    first key made; the in-progress count is the account's."""
    sim = pool_sim(start_sim)
    body = {"model": "wan2.7-r2v", "input": {"prompt": "a gull", "media": [{"type": "reference_image", "url": "https://example.com/a.png"}]},
            "parameters": {"resolution": "720P", "duration": 5}}  # fmt: skip
    headers = {"X-DashScope-Async": "enable", "Content-Type": "application/json"}
    with httpx.Client(base_url=sim.dashscope_url, trust_env=False) as client:
        made = client.post("/services/aigc/video-generation/video-synthesis", json=body, headers={**headers, "Authorization": "Bearer key-b1"})
        if made.status_code != 200:
            pytest.skip(f"the simulator refused the sample request ({made.text[:200]}); the mapping is covered by the runs above")
        task_id = made.json()["output"]["task_id"]
        seen = client.get(f"/tasks/{task_id}", headers={"Authorization": "Bearer key-b2"})
        other = client.get(f"/tasks/{task_id}", headers={"Authorization": "Bearer key-a"})
    assert seen.json()["output"]["task_status"] in ("PENDING", "RUNNING")
    assert other.json()["output"]["task_status"] == "UNKNOWN"  # another account does not see it
    assert peaks(sim) == {"acct-b": 1}


# --- the simulator's fault ------------------------------------------------------------


def test_the_arrearage_fault_starts_after_n_submits_of_its_account_only() -> None:
    spec = FaultSpec.parse("arrearage=b:2")
    fired = [decide(spec, 0, "dashscope", "submit", f"k{n}", 0, "acct-b", n).code for n in range(4)]
    assert fired == [None, None, "Arrearage", "Arrearage"]
    assert decide(spec, 0, "dashscope", "submit", "k", 0, "acct-a", 9).code is None
    assert decide(spec, 0, "dashscope", "query", "k", 0, "acct-b", 9).code is None  # its tasks can still be asked about
    for bad in ("arrearage=b", "arrearage=:2", "arrearage=b:x", "arrearage=b:-1"):
        with pytest.raises(FaultSpecError):
            FaultSpec.parse(bad)


def test_report_pages_list_the_accounts(tmp_path: Path) -> None:
    """The Markdown page names a lost account in its own table and among what needs attention."""
    from r2v_pipeline.report.markdown import render_markdown

    report: dict[str, Any] = {
        "run": {"finished": "2026-01-01T00:00:00+00:00", "seconds": 1.0, "simulated": True, "interrupted": False, "manifests": ["ep.yaml"], "exit_code": 0},
        "totals": {"shots": 0, "done": 0, "by_status": {}, "billed_seconds_this_run": 0, "cost_this_run": 0, "currency": None, "held_back_seconds": 0},
        "shots": [],
        "recovered": [],
        "accounts": [
            {"account": "a", "slots": 5, "lost": None, "shots": 3, "billed_seconds_this_run": 15, "cost_this_run": None},
            {"account": "b", "slots": 5, "lost": "Arrearage: overdue", "shots": 1, "billed_seconds_this_run": 5, "cost_this_run": None},
        ],
    }
    page = render_markdown(report)
    assert "| a | 5 | 3 | 15 |" in page and "| b | 5 | 1 | 5 |" in page and "Arrearage: overdue |" in page
    assert "**account b** was taken out of the pool: Arrearage: overdue" in page
    json.dumps(report)  # plain data


def test_simulate_serves_the_accounts_the_manifest_names(
    tmp_path: Path, write: Callable[[str, str], Path], media: Callable[[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """r2v run --simulate needs none of the accounts' keys: the embedded simulator is told
    each account, and the shots spread over them."""
    from r2v_pipeline.simulation import SimulateOptions

    for name in KEYS:
        monkeypatch.delenv(name, raising=False)
    media("m/x.png", "png")
    plan = plan_of([write("ep.yaml", episode(12, pins={0: "c"}))], tmp_path)
    log = io.StringIO()
    request = RunRequest(options=FAST, simulate=SimulateOptions(time_scale=0.005), log_format="plain", report_dir=tmp_path / "out")
    assert execute(plan, request, stream=log) == 0, log.getvalue()
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert all(s["status"] == "downloaded" for s in report["shots"])
    used = {a["account"]: a["shots"] for a in report["accounts"]}
    assert sum(used.values()) == 12 and all(used[name] >= 1 for name in ("a", "b", "c")), used
    assert report["shots"][0]["account"] == "c"


def test_each_account_talks_to_its_region_and_takes_only_the_models_it_serves(
    tmp_path: Path, write: Callable[[str, str], Path], media: Callable[[str, str], Path]
) -> None:
    media("m/x.png", "png")
    pool = "provider:\n  name: dashscope\n  accounts:\n    - {name: a, key_env: K_A}\n    - {name: u, key_env: K_U, region: us}\n"
    text = episode(2, provider=pool) + "  - {id: w26, model: wan2.6-r2v, prompt: '{{ x }} sails'}\n"
    plan = plan_of([write("ep.yaml", text)], tmp_path)
    assert [s.accounts for s in plan.shots] == [("a",), ("a",), ("a", "u")]  # the us region serves wan2.6-r2v only
    urls = {a.name: a.base_url for a in plan.shots[0].target.accounts}
    assert urls == {"a": "https://dashscope-intl.aliyuncs.com/api/v1", "u": "https://dashscope-us.aliyuncs.com/api/v1"}
    errors = plan_errors(write("pinned.yaml", episode(2, provider=pool, pins={1: "u"})))
    assert len(errors) == 1 and "pinned.yaml:10:" in errors[0] and "wan2.7-r2v is not served in the region of account 'u' (us)" in errors[0], errors


@given(after=st.integers(0, 20), seen=st.integers(0, 40), mine=st.booleans(), kind=st.sampled_from(["submit", "query", "list", "upload"]))
def test_arrearage_fires_exactly_on_its_accounts_submits_past_n(after: int, seen: int, mine: bool, kind: str) -> None:
    spec = FaultSpec.parse(f"arrearage=b:{after}")
    account = "acct-b" if mine else "acct-a"
    fired = decide(spec, 3, "dashscope", kind, "key", 0, account, seen).code == "Arrearage"
    assert fired == (mine and kind == "submit" and seen >= after)


def test_the_simulator_is_told_accounts_and_their_limits_on_its_command_line() -> None:
    import argparse

    from r2v_pipeline.sim.command import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--account-max-running", "b=3", "--account-max-running", "c=1", "--faults", "arrearage=b:4"])
    config = config_from_args(args, environ={"R2V_SIM_DASHSCOPE_ACCOUNTS": "b=k1,k2;c=k3"})
    assert config.account_max_running == {"b": 3, "c": 1}
    assert config.accounts == {"k1": "b", "k2": "b", "k3": "c"}
    with pytest.raises(SystemExit):
        parser.parse_args(["--account-max-running", "b=0"])


# --- a task followed through the account that made it, as it stands now ------------------

REGIONS = "provider:\n  name: dashscope\n  accounts:\n    - {name: a, key_env: R2V_TEST_KEY_A}\n    - {name: u, key_env: R2V_TEST_KEY_C, region: us}\n"
LET_GO = RunOptions(poll=FAST.poll, seed=7, patience=60.0)  # a run that stops watching before the task ends


def ledger_rows(tmp_path: Path) -> dict[str, tuple[str, str]]:
    ledger = Ledger.open(tmp_path / "state")
    try:
        return {r.key.rsplit("/", 1)[1]: (r.state.value, r.account) for r in ledger.records().values()}
    finally:
        ledger.close()


def test_a_task_sent_through_an_account_with_its_own_region_is_followed_by_the_next_run(
    tmp_path: Path, start_sim: StartSim, write: Callable[[str, str], Path], media: Callable[[str, str], Path], keys: None
) -> None:
    """The ledger row records account u's own endpoint (us), not the provider's: a later
    run follows the task, never takes it for one sent elsewhere."""
    media("m/x.png", "png")
    sim = pool_sim(start_sim, generation_seconds=(900.0, 900.0))
    ep = write("ep.yaml", REGIONS + "cast: {x: {image: m/x.png}}\nshots:\n  - {id: w, model: wan2.6-r2v, account: u, prompt: '{{ x }} sails', resolution: 720P, duration: 5}\n")
    code, report, log = run([ep], tmp_path, sim, LET_GO)
    assert report["shots"][0]["status"] == "unfinished", log
    assert ledger_rows(tmp_path)["w"][0] == "submitted"
    code, report, log = run([ep], tmp_path, sim)
    (shot,) = report["shots"]
    assert code == 0 and shot["status"] == "downloaded", log
    assert shot["account"] == "u"
    assert [t.account for t in sim.ledger.tasks()] == ["acct-c"]  # followed, never sent again


def test_a_named_account_whose_key_changed_follows_its_task_through_the_key_it_has_now(
    tmp_path: Path, start_sim: StartSim, write: Callable[[str, str], Path], media: Callable[[str, str], Path], keys: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An account is the unit, not a key: after b's key was rotated to its other key, the
    next run follows b's task through the new key. When b's variable holds another
    account's key, the provider does not know the task: it is left for a later run (not
    written off, not sent again), and with one of b's keys back it is fetched."""
    media("m/x.png", "png")
    sim = pool_sim(start_sim, generation_seconds=(900.0, 900.0))
    ep = write("ep.yaml", episode(1, pins={0: "b"}))
    run([ep], tmp_path, sim, LET_GO)
    state, made_by = ledger_rows(tmp_path)["s00"]
    assert state == "submitted", state
    (task,) = sim.ledger.tasks()

    monkeypatch.setenv("R2V_TEST_KEY_B", "key-c")  # another account's key
    code, report, log = run([ep], tmp_path, sim, LET_GO)
    (shot,) = report["shots"]
    assert code != 0 and shot["status"] == "unfinished", log
    assert "key or region may have changed" in log
    assert ledger_rows(tmp_path)["s00"][0] == "submitted"
    assert len(sim.ledger.tasks()) == 1

    monkeypatch.setenv("R2V_TEST_KEY_B", "key-b2")  # rotated: b's other key
    code, report, log = run([ep], tmp_path, sim)
    assert code == 0 and report["shots"][0]["status"] == "downloaded" and report["shots"][0]["account"] == "b", log
    assert len(sim.ledger.tasks()) == 1
    assert made_by.startswith("dashscope:b:"), made_by  # the id holds a hash of the endpoint
    # ... and what people read names the account only
    from r2v_pipeline.run.history import history
    from r2v_pipeline.run.status import status_json

    ledger = Ledger.open(tmp_path / "state")
    try:
        assert status_json(plan_of([ep], tmp_path), ledger.records())["shots"][0]["account"] == "b"
        assert list(history([], ledger.charges())["by_account"]) == ["dashscope:b"]
    finally:
        ledger.close()


def test_a_row_of_the_older_name_only_form_asked_through_a_changed_key_is_not_expired(
    tmp_path: Path, start_sim: StartSim, write: Callable[[str, str], Path], media: Callable[[str, str], Path], keys: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A row an earlier r2v wrote as "dashscope:b" is followed through account b; when b's
    key is no longer the one that made the task, the provider answers UNKNOWN for a task
    younger than a day: that is left for a later run, not recorded as expired."""
    media("m/x.png", "png")
    sim = pool_sim(start_sim)
    ep = write("ep.yaml", episode(1, pins={0: "b"}))
    ledger, task_id = sent_through_b(sim, tmp_path, plan_of([ep], tmp_path).shots[0])
    ledger.close()

    monkeypatch.setenv("R2V_TEST_KEY_B", "key-c")
    code, report, log = run([ep], tmp_path, sim)
    assert code != 0 and report["shots"][0]["status"] == "unfinished", log
    assert "key or region may have changed" in log
    assert ledger_rows(tmp_path)["s00"][0] == "submitted"
    assert len(sim.ledger.tasks()) == 1

    monkeypatch.setenv("R2V_TEST_KEY_B", "key-b2")  # the account's other key: the same account, so its task
    code, report, log = run([ep], tmp_path, sim)
    assert code == 0 and report["shots"][0]["status"] == "downloaded" and report["shots"][0]["task_id"] == task_id, log
    assert len(sim.ledger.tasks()) == 1


def test_takes_alike_keep_their_order_when_an_account_is_lost_under_the_first(
    tmp_path: Path, start_sim: StartSim, write: Callable[[str, str], Path], media: Callable[[str, str], Path], keys: None
) -> None:
    """Take 0 goes to account b, which refuses it for its unpaid bill: take 0 is sent
    through a, and its twin take 1 only after it (a lost ledger pairs them by order)."""
    media("m/x.png", "png")
    sim = pool_sim(start_sim, faults="arrearage=b:0")
    pool = "provider:\n  name: dashscope\n  accounts:\n    - {name: b, key_env: R2V_TEST_KEY_B}\n    - {name: a, key_env: R2V_TEST_KEY_A}\n"
    text = pool + "cast: {x: {image: m/x.png}}\ndefaults: {model: wan2.7-r2v, resolution: 720P, duration: 5}\nshots:\n"
    text += "  - {id: t, prompt: '{{ x }} walks', takes: 2}\n"
    code, report, log = run([write("ep.yaml", text)], tmp_path, sim)
    assert code == 0, log
    made = {t.task_id: t for t in sim.ledger.tasks()}
    first, second = (made[s["task_id"]] for s in report["shots"])  # in take order
    assert first.account == second.account == "acct-a"
    assert first.submitted_at < second.submitted_at, log


def test_an_unanswered_submit_is_never_judged_unmade_through_another_key(
    tmp_path: Path, start_sim: StartSim, write: Callable[[str, str], Path], media: Callable[[str, str], Path], keys: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A submit went out through account b's key and its answer was never recorded. Read
    with another account's key (b's variable changed), the task list shows nothing of it:
    that proves nothing, so the shot waits, nothing is sent again. Read with b's other
    key, the list shows the task, which is followed."""
    import dataclasses
    import sqlite3

    media("m/x.png", "png")
    sim = pool_sim(start_sim, generation_seconds=(20.0, 20.0))
    ep = write("ep.yaml", episode(1, pins={0: "b"}))
    run([ep], tmp_path, sim, dataclasses.replace(LET_GO, patience=1.0))
    # As a run killed with the request on the wire leaves it: submitting, its task not recorded.
    db = sqlite3.connect(tmp_path / "state" / "ledger.sqlite", isolation_level=None)
    db.execute("UPDATE shots SET state = 'submitting', task_id = NULL, submitted_at = NULL, submit_started = updated_at - 1")
    db.execute("DELETE FROM tasks")
    db.close()

    monkeypatch.setenv("R2V_TEST_KEY_B", "key-c")  # another account's key
    code, report, log = run([ep], tmp_path, sim, dataclasses.replace(FAST, settle=1.0))
    assert code != 0 and report["shots"][0]["status"] == "unfinished", log
    assert "went out with another key of account b" in log
    assert [t.account for t in sim.ledger.tasks()] == ["acct-b"]  # not sent again

    monkeypatch.setenv("R2V_TEST_KEY_B", "key-b2")  # b's other key: the list shows b's task
    code, report, log = run([ep], tmp_path, sim, dataclasses.replace(FAST, settle=1.0))
    assert code == 0 and report["shots"][0]["status"] == "downloaded", log
    assert [t.account for t in sim.ledger.tasks()] == ["acct-b"]


def _left_unanswered(tmp_path: Path, shot: str) -> None:
    """A shot as a host killed with its request on the wire leaves it: submitting, no task
    recorded, no video (sent, as before, through account b's first key)."""
    import sqlite3
    import time

    db = sqlite3.connect(tmp_path / "state" / "ledger.sqlite", isolation_level=None)
    (fingerprint,) = db.execute("SELECT fingerprint FROM shots WHERE key LIKE ?", (f"%/{shot}",)).fetchone()
    now = time.time()
    db.execute("UPDATE shots SET state = 'submitting', task_id = NULL, submitted_at = NULL, submit_started = ? WHERE fingerprint = ?", (now, fingerprint))
    db.execute("UPDATE events SET at = ? WHERE fingerprint = ? AND event = 'sent through'", (now, fingerprint))
    for table in ("tasks", "task_keys"):
        db.execute(f"DELETE FROM {table} WHERE task_id IN (SELECT task_id FROM tasks WHERE fingerprint = ?)", (fingerprint,))
    db.close()
    for made in [*(tmp_path / "out").rglob(f"{fingerprint}.*"), *(tmp_path / "out").rglob(f"{shot}.*")]:
        made.unlink()


def test_an_unanswered_submit_is_judged_unmade_through_a_key_shown_to_see_the_sending_keys_tasks(
    tmp_path: Path, start_sim: StartSim, write: Callable[[str, str], Path], media: Callable[[str, str], Path], keys: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """s01's submit went out through b's first key and made no task (its host died first).
    A run holding b's other key finds, in the task list read through its own key, a task
    the ledger recorded as the answer to a submit sent with the first key: the keys share
    one account, so the empty list is proof and s01 is sent again. Through another
    account's key that task is not listed: no proof, the shot waits, nothing is sent."""
    media("m/x.png", "png")
    sim = pool_sim(start_sim)
    ep = write("ep.yaml", episode(2, pins={0: "b", 1: "b"}))
    code, _, log = run([ep], tmp_path, sim, FAST)
    assert code == 0, log
    sim.advance(3600)  # s01's old task falls outside the list read around its new submit
    _left_unanswered(tmp_path, "s01")
    witness = write("w.yaml", episode(1, pins={0: "b"}).replace("walks, take", "waits, take"))
    code, _, log = run([witness], tmp_path, sim, FAST)  # b's first key answers a task: the ledger says so
    assert code == 0, log

    monkeypatch.setenv("R2V_TEST_KEY_B", "key-c")  # another account's key: its list shows none of b's tasks
    code, report, log = run([ep], tmp_path, sim, dataclasses.replace(FAST, settle=1.0))
    assert code != 0 and [s["status"] for s in report["shots"]] == ["skipped", "unfinished"], log
    assert "could not be shown to see that key's tasks" in log
    assert len(sim.ledger.tasks()) == 3  # nothing sent

    monkeypatch.setenv("R2V_TEST_KEY_B", "key-b2")  # b's other key: its list shows the witness
    code, report, log = run([ep], tmp_path, sim, dataclasses.replace(FAST, settle=1.0))
    assert code == 0 and report["shots"][1]["status"] == "downloaded", log
    assert "no task was made; submitting again" in log
    assert [t.account for t in sim.ledger.tasks()] == ["acct-b"] * 4  # s01 paid once more, its first request having made nothing


def test_a_task_matched_through_another_accounts_key_vouches_for_no_key(
    tmp_path: Path, start_sim: StartSim, write: Callable[[str, str], Path], media: Callable[[str, str], Path], keys: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """b's variable holds account c's key by mistake. A run reconciling s00 (sent through
    b's first key) adopts from c's list a task with s00's prompt that someone made in c.
    That adoption says nothing of which key made it, so it must not prove that c's key
    sees b's first key's tasks: s01, whose request did make a task in b, is not sent again."""
    media("m/x.png", "png")
    sim = pool_sim(start_sim)
    ep = write("ep.yaml", episode(2, pins={0: "b", 1: "b"}))
    code, _, log = run([ep], tmp_path, sim, FAST)
    assert code == 0, log
    sim.advance(3600)
    _left_unanswered(tmp_path, "s00")
    monkeypatch.setenv("R2V_TEST_KEY_B", "key-c")
    media("other/m/x.png", "png")
    code, _, log = run([write("other/ep.yaml", episode(1, pins={0: "b"}))], tmp_path / "other", sim, FAST)  # s00's prompt, made in c
    assert code == 0, log
    code, report, log = run([ep], tmp_path, sim, dataclasses.replace(FAST, settle=1.0))
    assert report["shots"][0]["status"] == "downloaded" and "reconciled task=" in log, log  # the stranger, adopted
    _left_unanswered(tmp_path, "s01")
    code, report, log = run([ep], tmp_path, sim, dataclasses.replace(FAST, settle=1.0))
    assert code != 0 and "no task was made" not in log, log
    assert sorted(t.account for t in sim.ledger.tasks()) == ["acct-b", "acct-b", "acct-c"]  # the two of b, the stranger in c: nothing sent
