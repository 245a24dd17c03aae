"""The ledgers' cost per shot of a whole simulated run, in statements (not time), and
where the SQLite ledger syncs fully: the commits that record a task id or a payment."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable

import pytest

from r2v_pipeline.run import ledger as ledger_module

from .test_run import FAST, StartSim, fast_sim, run

# A shot that goes planned → submitting → submitted → succeeded → downloaded takes five
# transactions (claim, start of submit, task id, its state, outcome with its charge,
# download): about 30 statements with their BEGIN/COMMIT and the two syncs' switches.
STATEMENTS_PER_SHOT = 32
SHOTS = 24


def many_shots(folder: Path, shots: int, media: Callable[[str, str], Path]) -> Path:
    media("a.png", "png")
    lines = ["series: count", "cast: {a: {image: a.png}}", "defaults: {model: wan2.7-r2v, resolution: 720P, duration: 5}", "shots:"]
    lines += [f"  - {{id: s{i:03d}, prompt: 'take {i}: {{{{ a }}}} walks'}}" for i in range(shots)]
    path = folder / "episode.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement the run's SQLite ledger executes, in order."""
    statements: list[str] = []
    connect = ledger_module._connect

    def _traced(path: Path) -> sqlite3.Connection:
        db = connect(path)
        db.set_trace_callback(statements.append)
        return db

    monkeypatch.setattr(ledger_module, "_connect", _traced)
    return statements


def test_a_run_writes_each_shot_in_a_bounded_number_of_statements(
    tmp_path: Path, start_sim: StartSim, media: Callable[[str, str], Path], traced: list[str]
) -> None:
    manifest = many_shots(tmp_path, SHOTS, media)
    code, report, log = run([manifest], tmp_path, fast_sim(start_sim), FAST)
    assert code == 0, log
    assert {s["status"] for s in report["shots"]} == {"downloaded"}
    # The run's fixed part (opening, the end, heartbeats) is counted too, spread over the shots.
    per_shot = len(traced) / SHOTS
    assert per_shot <= STATEMENTS_PER_SHOT, f"{per_shot:.1f} statements per shot; bound {STATEMENTS_PER_SHOT}"


def test_task_ids_and_payments_are_committed_with_full_sync_and_the_rest_without(
    tmp_path: Path, start_sim: StartSim, media: Callable[[str, str], Path], traced: list[str]
) -> None:
    manifest = many_shots(tmp_path, 3, media)
    code, _, log = run([manifest], tmp_path, fast_sim(start_sim), FAST)
    assert code == 0, log
    level, commits = "FULL", {"FULL": [], "NORMAL": []}  # the connection opens at full sync for its schema
    pending: list[str] = []
    for statement in traced:
        words = statement.split()
        if statement.upper().startswith("PRAGMA SYNCHRONOUS="):
            level = statement.split("=", 1)[1].strip().upper()
        elif words and words[0].upper() == "COMMIT":
            commits[level].append(" | ".join(pending))
            pending = []
        elif words and words[0].upper() not in ("BEGIN", "SELECT"):
            pending.append(statement)
    durable = commits["FULL"]
    assert sum("INSERT OR IGNORE INTO tasks" in c for c in durable) == 3  # every task id
    assert sum("INSERT OR IGNORE INTO charges" in c for c in durable) == 3  # every payment
    assert not any("INSERT OR IGNORE INTO tasks" in c or "INTO charges" in c for c in commits["NORMAL"])
    assert any("'downloaded'" in c or "downloaded_at" in c for c in commits["NORMAL"])  # the rest: no fsync of its own


# On PostgreSQL every statement is a round trip to the server, BEGIN and COMMIT included.
# A shot's path adds the lease (claim, fenced by its token) and the account's slot lock;
# a state and its event are one statement, a row is locked and read once per transaction.
# About 38 (53 before those): most of the rest are reads of the shot's row by the run.
PG_STATEMENTS_PER_SHOT = 40


@pytest.mark.postgres
def test_a_run_on_postgresql_writes_each_shot_in_a_bounded_number_of_round_trips(
    tmp_path: Path, start_sim: StartSim, media: Callable[[str, str], Path], pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    from r2v_pipeline.pipeline import RunRequest, execute
    from r2v_pipeline.run import pg_ledger

    from .test_run import plan_of

    statements: list[str] = []

    class Counted(psycopg.Cursor):  # type: ignore[type-arg]
        def execute(self, query, params=None, **kwargs):  # type: ignore[no-untyped-def,override]
            statements.append(str(query))
            return super().execute(query, params, **kwargs)

    connect, transaction = pg_ledger._connect, pg_ledger.PgLedger._tx

    def counted_connect(*args, **kwargs):  # type: ignore[no-untyped-def]
        db = connect(*args, **kwargs)
        db.cursor_factory = Counted
        return db

    def counted_tx(self):  # type: ignore[no-untyped-def]
        statements.extend(["BEGIN", "COMMIT"])
        return transaction(self)

    monkeypatch.setattr(pg_ledger, "_connect", counted_connect)
    monkeypatch.setattr(pg_ledger.PgLedger, "_tx", counted_tx)
    manifest = many_shots(tmp_path, SHOTS, media)
    plan = plan_of([manifest], tmp_path)
    request = RunRequest(options=FAST, attach=fast_sim(start_sim).base_url, log_format="plain", report_dir=tmp_path / "out", ledger=pg_url)
    assert execute(plan, request) == 0
    per_shot = len(statements) / SHOTS
    assert per_shot <= PG_STATEMENTS_PER_SHOT, f"{per_shot:.1f} round trips per shot; bound {PG_STATEMENTS_PER_SHOT}"
