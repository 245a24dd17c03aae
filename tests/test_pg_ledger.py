"""The shared ledger on a real PostgreSQL: leases, fencing, migrations, slots across
hosts, runs of several processes on one ledger, and a server that goes away.

The store's contract (states, claims, slots) runs against both stores in
test_ledger.py; here is what only a ledger shared by hosts has to show.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import psycopg
import pytest

from r2v_pipeline import exits
from r2v_pipeline.cli import main
from r2v_pipeline.diagnostics import Diagnostics
from r2v_pipeline.plan.planner import PlanOptions, make_plan
from r2v_pipeline.run.ledger import Locked
from r2v_pipeline.run.ledger_store import LedgerUnreachable, Lost
from r2v_pipeline.run.open_ledger import BadLedgerUrl, ledger_url, redact
from r2v_pipeline.run.pg_ledger import PgLedger
from r2v_pipeline.run.pg_schema import MIGRATIONS
from r2v_pipeline.sim import Simulator

from .test_run import StartSim, billed_tasks_per_content

pytestmark = pytest.mark.postgres


def open_pg(url: str, **options: Any) -> PgLedger:
    return PgLedger.open(url, redact(url), None, "r2v", **options)


def enter(ledger: PgLedger, fp: str, account: str = "acct") -> Any:
    return ledger.enter(fp, f"s/e/{fp}", "dashscope", "wan2.7-r2v", account, "https://api.test/v1", f"/out/{fp}.mp4")


def sql(url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True, options="-c search_path=r2v") as db:
        cursor = db.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def silence(url: str, ledger: PgLedger, seconds: float = 120.0) -> None:
    """The run's host went quiet: its last heartbeat is ``seconds`` old on the server's clock."""
    sql(url, "UPDATE runs SET heartbeat_at = heartbeat_at - %s WHERE run_id = %s", (seconds, ledger.run_id))


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- leases and fencing ----------------------------------------------------------------


def test_a_silent_runs_lease_expires_and_another_run_takes_its_shot_over(pg_url: str) -> None:
    first, second = open_pg(pg_url), open_pg(pg_url)
    assert enter(first, "a") is not None
    assert enter(second, "a") is None and second.adopt("a") is None  # held by a live run
    silence(pg_url, first, seconds=30.0)
    assert second.owner_alive(first.run_id)  # inside the lease: still alive
    silence(pg_url, first, seconds=60.0)
    assert not second.owner_alive(first.run_id)
    taken = enter(second, "a")
    assert taken is not None and taken.owner == second.run_id
    assert set(second.holders()) == {second.run_id}  # the silent run holds nothing any more
    first.close()
    second.close()


def test_a_run_that_lost_its_lease_cannot_record_a_submit(pg_url: str) -> None:
    first, second = open_pg(pg_url), open_pg(pg_url)
    enter(first, "a")
    silence(pg_url, first)
    assert enter(second, "a") is not None
    first.heartbeat()  # it wakes up (a paused VM, a healed network) and beats again
    assert first.owner_alive(first.run_id) and second.owner_alive(first.run_id)
    with pytest.raises(Lost):
        first.start_submit("a", "acct", 5)  # its token is no longer the shot's: nothing is sent
    record = second.get("a")
    assert record is not None and (record.state, record.owner) == ("planned", second.run_id)
    assert second.start_submit("a", "acct", 5)
    assert [e for _, e, _ in second.events("a")] == ["submitting"]
    first.close()
    second.close()


def test_a_fenced_runs_late_answer_is_kept_and_never_undone(pg_url: str) -> None:
    """The fenced run's submit had already gone out: its answer names a paid task, which
    the ledger keeps; the run that took over then cannot turn the shot back to planned."""
    first, second = open_pg(pg_url), open_pg(pg_url)
    enter(first, "a")
    assert first.start_submit("a", "acct", 5)
    silence(pg_url, first)
    assert [r.fingerprint for r in second.unfinished_elsewhere()] == ["a"]
    assert second.adopt("a") is not None  # to reconcile the unanswered submit
    with pytest.raises(Lost):  # not its shot now: its walk ends, the row is left to the run holding it
        first.not_submitted("a", "Busy", "a late 'no task' from the fenced run")
    assert (second.get("a") or pytest.fail()).state == "submitting"
    first.submitted("a", "task-late", "acct", "wan2.7-r2v")
    second.not_submitted("a", "Reconciled", "the list showed nothing (read before the late task landed)")
    record = second.get("a")
    assert record is not None and (record.state, record.task_id) == ("submitted", "task-late")
    with pytest.raises(Lost):
        second.start_submit("a", "acct", 5)  # nothing pays for it again
    first.close()
    second.close()


def test_a_late_answer_and_the_answer_of_the_run_that_took_over_are_both_fetched(
    tmp_path: Path, pg_url: str, start_sim: StartSim, write: Callable[[str, str], Path], media: Callable[[str, str], Path]
) -> None:
    """Run A submits and goes quiet; B takes the shot over, finds no task yet, submits; A's
    answer lands, then B's. Both tasks are paid: the next run fetches one as the shot's
    video and the other into superseded/, and loses neither."""
    import anyio

    from r2v_pipeline.run.targets import build_providers
    from r2v_pipeline.simulation import attached_simulation

    sim = start_sim(time_scale=0.005, rate_clock="wall")
    ep = episode(write, media, 1)
    plan = make_plan([ep], PlanOptions(output_dir=tmp_path / "out", state_dir=tmp_path / "state"), Diagnostics())
    (shot,) = plan.shots
    fp = shot.fingerprint
    first, second = (PgLedger.open(pg_url, redact(pg_url), None, "r2v_simulated") for _ in range(2))
    providers, _ = build_providers(plan.shots, first, attached_simulation(sim.base_url))
    provider = providers[(shot.target.provider, shot.target.base_url, "")]
    account = provider.account

    async def submit_twice() -> list[str]:
        prepared = await provider.prepare(shot.request)
        ids = [(await provider.submit(prepared)).task_id for _ in range(2)]  # type: ignore[union-attr]
        await provider.aclose()
        return ids

    first.enter(fp, shot.key, "dashscope", shot.spec.model, account, shot.target.base_url, str(shot.output.resolve()))
    assert first.start_submit(fp, account, 5)
    with psycopg.connect(pg_url, autocommit=True, options="-c search_path=r2v_simulated") as db:
        db.execute("UPDATE runs SET heartbeat_at = heartbeat_at - 120 WHERE run_id = %s", (first.run_id,))  # A goes quiet
    assert second.adopt(fp) is not None
    second.not_submitted(fp, "Reconciled", "the list showed no task yet")
    assert second.start_submit(fp, account, 5)
    late, mine = anyio.run(submit_twice)
    first.submitted(fp, late, account, shot.spec.model)  # A's answer, late
    second.submitted(fp, mine, account, shot.spec.model)  # B's
    first.close()
    second.close()
    done = subprocess.run(run_command(ep, sim, pg_url, tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == exits.OK, done.stderr
    assert len(sim.ledger.tasks()) == 2  # nothing paid a third time
    with psycopg.connect(pg_url, autocommit=True, options="-c search_path=r2v_simulated") as db:
        rows = dict(db.execute("SELECT task_id, state FROM shots").fetchall())
    assert rows == {late: "downloaded", mine: "downloaded"}
    (video,) = list((tmp_path / "out").rglob("s00.mp4"))  # the shot's video, in place
    (aside,) = list((tmp_path / "out").rglob("superseded/s00-*.mp4"))  # the other paid task's, kept aside
    assert video.read_bytes() != b"" and aside.read_bytes() != b""
    assert json.loads(aside.with_suffix(".json").read_text())["task_id"] in (late, mine)


def test_hosts_together_never_take_more_slots_than_the_account_has(pg_url: str) -> None:
    runs = [open_pg(pg_url) for _ in range(6)]
    for i, run in enumerate(runs):
        for j in range(3):
            enter(run, f"s{i}-{j}")
    taken: list[str] = []

    def submit_all(run: PgLedger, i: int) -> None:
        for j in range(3):
            if run.start_submit(f"s{i}-{j}", "acct", 5):
                taken.append(f"s{i}-{j}")

    threads = [threading.Thread(target=submit_all, args=(run, i)) for i, run in enumerate(runs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 5  # 18 shots raced for 5 slots
    assert sql(pg_url, "SELECT count(*) FROM shots WHERE state = 'submitting'") == [(5,)]
    for run in runs:
        run.close()


# --- the schema and the per-host lock ---------------------------------------------------


def test_hosts_starting_together_on_a_new_database_migrate_it_once(pg_url: str) -> None:
    opened: list[PgLedger] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def open_one() -> None:
        start.wait()
        try:
            opened.append(open_pg(pg_url))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(opened) == 6
    every = [(version,) for version, _ in MIGRATIONS]
    assert sql(pg_url, "SELECT version FROM schema_version ORDER BY version") == every  # each once
    assert sql(pg_url, "SELECT value FROM meta WHERE key = 'adoption'") == [("pending",)]
    assert opened[0].fresh  # a new ledger adopts before paying, as a new SQLite file does
    for ledger in opened:
        ledger.close()
    open_pg(pg_url).close()  # a later start finds nothing to do
    assert sql(pg_url, "SELECT version FROM schema_version ORDER BY version") == every


def test_a_ledger_made_by_an_older_r2v_gets_the_newer_migrations_and_keeps_its_rows(pg_url: str) -> None:
    older = open_pg(pg_url)
    older.close()
    sql(pg_url, "INSERT INTO meta VALUES ('kept', 'yes')")
    sql(pg_url, "DROP TABLE charges; DROP TABLE run_history; DROP TABLE task_keys; DELETE FROM schema_version WHERE version >= 2")  # as version 1 left it
    ledger = open_pg(pg_url)
    try:
        assert sql(pg_url, "SELECT version FROM schema_version ORDER BY version") == [(version,) for version, _ in MIGRATIONS]
        assert sql(pg_url, "SELECT value FROM meta WHERE key = 'kept'") == [("yes",)]
        assert ledger.charges() == [] and ledger.runs() == []
        ledger.ended(1.0, 2.0, 0, ["s/e"])
        assert [(r.exit_code, r.episodes) for r in ledger.runs()] == [(0, ("s/e",))]
    finally:
        ledger.close()


def test_a_ledger_migrated_by_a_newer_r2v_is_left_alone(pg_url: str) -> None:
    open_pg(pg_url).close()
    sql(pg_url, "INSERT INTO schema_version (version) VALUES (99)")
    with pytest.raises(LedgerUnreachable, match="upgrade r2v"):
        open_pg(pg_url)


def test_exclusive_on_a_shared_ledger_refuses_only_another_run_of_this_host(pg_url: str) -> None:
    here = open_pg(pg_url)
    with pytest.raises(Locked, match="from this host"):
        open_pg(pg_url, exclusive=True)
    here.close()
    sql(pg_url, "INSERT INTO runs VALUES ('elsewhere', 'another-host', 1, 0, extract(epoch from now()), NULL)")
    alone = open_pg(pg_url, exclusive=True)  # another host's live run shares the ledger by claiming shots
    assert "elsewhere" in alone.holders()
    alone.close()


# --- the URL, its password, and a server that cannot be reached ---------------------------


def test_the_password_is_never_shown() -> None:
    assert ledger_url("postgresql://r2v:pw@db1:5432,db2:5433/ledger?target_session_attrs=read-write")  # libpq's list of hosts is a URL
    assert redact("postgresql://r2v:s3cret@db.example:5432/ledger") == "postgresql://r2v:***@db.example:5432/ledger"
    assert "s3cret" not in redact("postgresql://r2v@db.example/ledger?password=s3cret&sslmode=require")
    with pytest.raises(BadLedgerUrl) as error:
        ledger_url("mysql://r2v:s3cret@db.example/ledger")
    assert "s3cret" not in str(error.value)


MALFORMED = [
    ("postgresql://bob:ab%zzcdPW@127.0.0.1:5432/db", "ab%zzcdPW"),  # a literal % in the password
    ("postgresql://bob@127.0.0.1:5432/db?password=ab%zzcdPW", "ab%zzcdPW"),  # the same, in the query
    ("postgresql://bob@127.0.0.1:5432/db?password=s3cretPW&bogus=1", "s3cretPW"),  # an option the driver refuses
    ("postgresql://u:s3cretPW@[::1/db", "s3cretPW"),  # an unclosed bracket
]


@pytest.mark.parametrize(("url", "password"), MALFORMED)
def test_a_malformed_ledger_url_is_bad_input_and_its_password_is_never_shown(
    tmp_path: Path, write: Callable[[str, str], Path], media: Callable[[str, str], Path], capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, url: str, password: str,
) -> None:  # fmt: skip
    ep = episode(write, media, 1)
    for log_format in ("plain", "json"):
        assert main(["run", str(ep), "--simulate", "--ledger", url, "--log-format", log_format, *where(tmp_path)]) == exits.INVALID
        out, err = capfd.readouterr()
        assert "--ledger" in err and "cannot be read" in err, err
        assert password not in out + err and "ab%zz" not in out + err and "Traceback" not in err
    monkeypatch.setenv("R2V_LEDGER_URL", url)
    for command in (["status", str(ep)], ["history", str(ep)], ["run", str(ep), "--simulate"]):
        assert main([*command, *where(tmp_path)]) == exits.INVALID, command
        out, err = capfd.readouterr()
        assert "$R2V_LEDGER_URL" in err and password not in out + err, err
    assert not list((tmp_path / "state").rglob("*.sqlite"))


def test_a_driver_error_is_scrubbed_of_the_password_in_every_form() -> None:
    from r2v_pipeline.run.pg_ledger import _guard

    with pytest.raises(LedgerUnreachable) as error, _guard("postgresql://bob:***@h/db", "p%41ss"):
        raise psycopg.ProgrammingError('bad token "p%41ss" or "pAss"')
    assert "p%41ss" not in str(error.value) and "pAss" not in str(error.value) and "cannot be used" in str(error.value)


def episode(write: Callable[[str, str], Path], media: Callable[[str, str], Path], shots: int) -> Path:
    media("m/a.png", "png")
    lines = "".join(f"  - {{id: s{i:02d}, duration: 2, prompt: 'scene {i} with {{{{ a }}}}'}}\n" for i in range(shots))
    return write("ep.yaml", "cast: {a: {image: m/a.png}}\nshots:\n" + lines)


def r2v(*args: str, env: dict[str, str] | None = None) -> list[str]:
    return [sys.executable, "-m", "r2v_pipeline", *args]


def where(tmp: Path) -> list[str]:
    return ["--out", str(tmp / "out"), "--state", str(tmp / "state")]


def test_an_unreachable_ledger_server_ends_the_run_clearly_before_anything_is_sent(
    tmp_path: Path, start_sim: StartSim, write: Callable[[str, str], Path], media: Callable[[str, str], Path]
) -> None:
    sim = start_sim(time_scale=0.005, rate_clock="wall")
    ep = episode(write, media, 3)
    url = f"postgresql://r2v:s3cret-pw@127.0.0.1:{closed_port()}/ledger"
    for command in (["run", str(ep), "--simulator", sim.base_url, "--ledger", url], ["status", str(ep), "--ledger", url]):
        done = subprocess.run(r2v(*command, *where(tmp_path)), capture_output=True, text=True, timeout=120)
        assert done.returncode == exits.ENVIRONMENT, done.stderr
        assert "cannot be reached" in done.stderr and "postgresql://r2v:***@127.0.0.1" in done.stderr
        assert "s3cret-pw" not in done.stderr + done.stdout and "Traceback" not in done.stderr
    done = subprocess.run(r2v("run", str(ep), "--simulator", sim.base_url, *where(tmp_path)), capture_output=True, text=True, timeout=120,
                          env={**os.environ, "R2V_LEDGER_URL": url})  # fmt: skip
    assert done.returncode == exits.ENVIRONMENT and "s3cret-pw" not in done.stderr
    assert sim.ledger.tasks() == []  # nothing sent, nothing spent
    assert not list((tmp_path / "state").rglob("*.sqlite"))  # no SQLite ledger made behind the user's back
    assert main(["run", str(ep), "--simulator", sim.base_url, "--ledger", "sqlite:///x", *where(tmp_path)]) == exits.INVALID


def test_status_shows_which_run_on_which_host_holds_a_shot(
    tmp_path: Path, pg_url: str, write: Callable[[str, str], Path], media: Callable[[str, str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ep = episode(write, media, 2)
    plan = make_plan([ep], PlanOptions(output_dir=tmp_path / "out", state_dir=tmp_path / "state"), Diagnostics())
    held = plan.shots[0]
    ledger = open_pg(pg_url)
    enter(ledger, held.fingerprint)
    assert main(["status", str(ep), "--ledger", pg_url, *where(tmp_path)]) == exits.OK
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith(held.key))
    assert f"held by run {ledger.run_id} on {ledger.host} pid {os.getpid()}" in line
    assert "held by" not in next(line for line in out.splitlines() if line.startswith(plan.shots[1].key))
    assert main(["plan", str(ep), "--ledger", pg_url, *where(tmp_path)]) == exits.OK  # plan reads the shared ledger too
    planned = capsys.readouterr().out
    assert "elsewhere" in next(line for line in planned.splitlines() if held.shot in line)
    assert "elsewhere" not in next(line for line in planned.splitlines() if plan.shots[1].shot in line)
    ledger.close()


def test_history_on_a_shared_ledger_sums_only_the_plans_episodes(
    tmp_path: Path, pg_url: str, write: Callable[[str, str], Path], media: Callable[[str, str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Other series share the ledger (priced, maybe, in another currency): `r2v history`
    of an episode sums its own runs and charges, not theirs."""
    ep = episode(write, media, 1)
    plan = make_plan([ep], PlanOptions(output_dir=tmp_path / "out", state_dir=tmp_path / "state"), Diagnostics())
    (shot,) = plan.shots
    for run_id, fp, key, seconds in (("run-mine", "a", shot.key, 5.0), ("run-other", "b", "other/x/s1", 99.0)):
        ledger = PgLedger.open(pg_url, redact(pg_url), None, "r2v", run_id=run_id)
        ledger.enter(fp, key, "dashscope", "m", "acct", "http://x", f"{fp}.mp4", planned_seconds=seconds)
        assert ledger.start_submit(fp, "acct", 5)
        ledger.submitted(fp, f"task-{fp}", "acct", "m")
        ledger.succeeded(fp, "http://x/v.mp4", None, billed=seconds, cost=seconds / 10)
        ledger.ended(1.0, 2.0, 0, ["/".join(key.split("/")[:2])])
        ledger.close()
    assert main(["history", str(ep), "--json", "--ledger", pg_url, *where(tmp_path)]) == exits.OK
    data = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in data["runs"]] == ["run-mine"]
    assert (data["total"]["tasks"], data["total"]["billed_seconds"]) == (1, 5.0)
    assert list(data["by_series"]) == [shot.series]
    sql(pg_url, "DROP TABLE charges")  # a ledger the server no longer lets r2v read
    assert main(["history", str(ep), "--ledger", pg_url, *where(tmp_path)]) == exits.ENVIRONMENT
    err = capsys.readouterr().err
    assert "the ledger database postgresql://r2v@127.0.0.1" in err and "Traceback" not in err


# --- several r2v runs on one ledger ---------------------------------------------------------


def run_command(ep: Path, sim: Simulator, url: str, tmp: Path, *extra: str) -> list[str]:
    return r2v("run", str(ep), "--simulator", sim.base_url, "--ledger", url, "--log-format", "plain", "--settle", "5", *where(tmp), *extra)


def shot_states(url: str, missing_ok: bool = False) -> dict[str, str]:
    try:
        with psycopg.connect(url, autocommit=True, options="-c search_path=r2v_simulated") as db:
            return {key: state for key, state in db.execute("SELECT key, state FROM shots")}
    except psycopg.errors.UndefinedTable:
        if missing_ok:  # no run has made the ledger yet
            return {}
        raise


def test_two_runs_sharing_one_ledger_and_one_output_folder_bill_nothing_twice(
    tmp_path: Path, pg_url: str, start_sim: StartSim, write: Callable[[str, str], Path], media: Callable[[str, str], Path]
) -> None:
    sim = start_sim(time_scale=0.005, rate_clock="wall")
    ep = episode(write, media, 12)
    runs = [subprocess.Popen(run_command(ep, sim, pg_url, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    ended = [run.communicate(timeout=300) for run in runs]
    # Each run waits for the shots the other holds: both end with every shot done.
    assert [run.returncode for run in runs] == [exits.OK, exits.OK], ended
    assert all("Traceback" not in err for _, err in ended)
    assert max(billed_tasks_per_content(sim).values()) == 1
    assert len(sim.ledger.tasks()) == 12  # every shot paid once, by one of the two
    assert sim.stats()["peak_in_flight"] <= 5  # the account's slots, counted across both runs
    assert set(shot_states(pg_url).values()) == {"downloaded"}
    assert len(sorted((tmp_path / "out").rglob("s*.mp4"))) == 12
    assert sum(err.count(" submitted task=") for _, err in ended) == 12


@pytest.mark.parametrize("seed", [13, 14])
def test_a_run_killed_mid_run_is_taken_over_by_the_other_and_nothing_is_paid_twice(
    tmp_path: Path, pg_url: str, start_sim: StartSim, write: Callable[[str, str], Path], media: Callable[[str, str], Path], seed: int
) -> None:
    """A first run claims every shot and starts submitting; a second run on the same
    ledger waits for them; the first is SIGKILLed at a random moment (submits answer
    slowly, so some are in flight). The second takes its shots over at once (a dead
    process on this host loses its leases), reconciles the unanswered submits and
    finishes them all: none lost, none paid twice."""
    import random

    rng = random.Random(seed)
    sim = start_sim(time_scale=0.01, rate_clock="wall", seed=seed, faults="slow=0.6:0.8@submit,drop_after_body=0.1@submit")
    ep = episode(write, media, 12)
    victim = subprocess.Popen(run_command(ep, sim, pg_url, tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not sim.ledger.tasks() and time.monotonic() < deadline:
        time.sleep(0.05)
    steady = subprocess.Popen(run_command(ep, sim, pg_url, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert steady.stdout is not None
    first = steady.stdout.readline()  # "simulated providers at ...": it has decided, and waits for the shots
    time.sleep(rng.uniform(0.2, 1.5))
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    out, _ = steady.communicate(timeout=300)
    out = first + out
    assert steady.returncode == exits.OK, out
    assert "taken over" in out
    assert max(billed_tasks_per_content(sim).values()) == 1  # nothing billed twice
    assert sim.ledger.duplicate_submissions() == {}
    assert set(shot_states(pg_url).values()) == {"downloaded"}  # nothing lost
    assert len(sorted((tmp_path / "out").rglob("s*.mp4"))) == 12


def test_a_ledger_server_lost_while_submits_are_on_the_wire_pays_nothing_twice(
    tmp_path: Path, start_sim: StartSim, write: Callable[[str, str], Path], media: Callable[[str, str], Path]
) -> None:
    """The server dies while five submits are on the wire (the simulator answers them 3 s
    late): their answers cannot be recorded. The run stops with exit 6 and says which
    tasks were made; their rows stay 'submitting', and the next run finds those tasks at
    the provider (reconciled) instead of paying for them again."""
    from .pg import find_bindir, start_cluster

    bindir = find_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL binaries (initdb, pg_ctl) found")
    cluster = start_cluster(bindir)  # its own server: this test stops it
    try:
        url = cluster.url(password="s3cret-pw")  # trust auth: the password only has to stay hidden
        sim = start_sim(time_scale=0.03, rate_clock="wall", faults="slow=1.0:3@submit")
        ep = episode(write, media, 8)
        run = subprocess.Popen(run_command(ep, sim, url, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while run.poll() is None and time.monotonic() < deadline and "submitting" not in shot_states(url, missing_ok=True).values():
            time.sleep(0.05)
        cluster.halt()  # the database server dies with the submits on the wire
        _, err = run.communicate(timeout=300)
        assert run.returncode == exits.ENVIRONMENT, err
        assert "cannot be reached" in err and "sent nothing more" in err
        assert "Traceback" not in err and "s3cret-pw" not in err
        unrecorded = [line for line in err.splitlines() if "submitted, not recorded" in line]
        assert unrecorded and all("task=" in line for line in unrecorded)  # the paid tasks are named
        paid = len(sim.ledger.tasks())
        assert 1 <= paid < 8

        cluster.start()
        done = subprocess.run(run_command(ep, sim, url, tmp_path), capture_output=True, text=True, timeout=300)
        assert done.returncode == exits.OK, done.stderr
        assert "reconciled" in done.stderr
        assert max(billed_tasks_per_content(sim).values()) == 1  # the unrecorded tasks were found, not paid again
        assert len(sim.ledger.tasks()) == 8
        assert set(shot_states(url).values()) == {"downloaded"}
    finally:
        cluster.stop()
