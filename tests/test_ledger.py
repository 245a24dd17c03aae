"""The ledger: states, claims between runs, slots counted across runs — the contract
every store keeps, run against the SQLite file and a real PostgreSQL (``ledger_url``)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from r2v_pipeline.run import ledger as ledger_module
from r2v_pipeline.run import pg_ledger as pg_ledger_module
from r2v_pipeline.run.ledger import Ledger
from r2v_pipeline.run.ledger_store import LedgerStore, TaskTaken
from r2v_pipeline.run.open_ledger import open_store, peek_store

Opener = Callable[[], LedgerStore]


@pytest.fixture
def opened(tmp_path: Path, ledger_url: str | None) -> Opener:
    """Opens the ledger a run of this test would: the store under test."""
    return lambda: open_store(ledger_url, tmp_path)


def enter(ledger: LedgerStore, fp: str, account: str = "acct") -> None:
    assert ledger.enter(fp, f"s/e/{fp}", "dashscope", "wan2.7-r2v", account, "https://api.test/v1", f"/out/{fp}.mp4") is not None


def test_states_and_events(opened: Opener) -> None:
    ledger = opened()
    enter(ledger, "a")
    assert ledger.start_submit("a", "acct", 5)
    ledger.submitted("a", "task-1", "acct", "wan2.7-r2v")
    ledger.succeeded("a", "http://x/v.mp4", {"duration": 7.5}, timing=("dashscope", "wan2.7-r2v", "720P", 5, 120.0))
    ledger.downloaded("a", "/out/a.mp4", "ab" * 32, 1000)
    record = ledger.get("a")
    assert record and (record.state, record.task_id, record.attempts, record.usage_data) == ("downloaded", "task-1", 1, {"duration": 7.5})
    assert [e for _, e, _ in ledger.events("a")] == ["submitting", "submitted", "succeeded", "downloaded"]
    assert ledger.timings("dashscope", "wan2.7-r2v") == [("720P", 5, 120.0)]
    assert ledger.known_tasks("acct") == {"task-1"}
    ledger.close()


def test_slots_are_counted_across_live_runs_only(opened: Opener) -> None:
    first, second = opened(), opened()
    for fp in "abc":
        enter(first, fp)
        assert first.start_submit(fp, "acct", 5)
    enter(second, "d")
    assert second.in_progress("acct") == 3
    assert second.start_submit("d", "acct", 4)
    enter(second, "e")
    assert not second.start_submit("e", "acct", 4)  # the account is full, across both runs
    first.close()  # the first run ends and lets its rows go: no run follows them, they hold no slot
    assert second.in_progress("acct") == 1
    second.close()


def test_a_shot_held_by_a_live_run_cannot_be_claimed(opened: Opener) -> None:
    first, second = opened(), opened()
    enter(first, "a")
    assert second.enter("a", "s/e/a", "dashscope", "wan2.7-r2v", "acct", "https://api.test/v1", "/out/a.mp4") is None
    assert second.adopt("a") is None
    first.close()
    assert second.adopt("a") is not None
    second.close()


def test_a_killed_runs_claims_lapse_at_once(
    tmp_path: Path, ledger_url: str | None, opened: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shot is free at once; the task its submit may have made still takes its slot
    for a while (the provider runs it whether or not a run follows it), then no longer."""
    script = (
        "import sys, os, signal; sys.path.insert(0, {root!r});"
        "from pathlib import Path; from r2v_pipeline.run.open_ledger import open_store;"
        "l = open_store({url!r}, Path({state!r})); l.enter('a', 'k', 'dashscope', 'm', 'acct', 'e', 'o'); l.start_submit('a', 'acct', 5);"
        "os.kill(os.getpid(), signal.SIGKILL)"
    ).format(root=str(Path(__file__).resolve().parent.parent), state=str(tmp_path), url=ledger_url)
    process = subprocess.run([sys.executable, "-c", script])
    assert process.returncode == -9
    ledger = opened()
    record = ledger.get("a")
    assert record is not None and record.state == "submitting" and record.owner
    assert not ledger.owner_alive(record.owner)
    assert ledger.in_progress("acct") == 1
    for store in (ledger_module, pg_ledger_module):
        monkeypatch.setattr(store, "DEAD_RUN_IN_FLIGHT", -1.0)  # as if it last changed long ago
    assert ledger.in_progress("acct") == 0
    assert [r.fingerprint for r in ledger.unfinished_elsewhere()] == ["a"]
    assert ledger.adopt("a") is not None
    assert ledger.in_progress("acct") == 1  # held by a live run again
    ledger.close()


def test_uploads_are_cached_while_they_live(opened: Opener) -> None:
    import time

    ledger = opened()
    now = time.time()  # provider time: expiry and question on the same clock
    ledger.remember_upload("sha", "acct", "wan2.7-r2v", "oss://k", now + 3600)
    assert ledger.upload("sha", "acct", "wan2.7-r2v", alive_until=now + 60) == "oss://k"
    assert ledger.upload("sha", "acct", "wan2.7-r2v", alive_until=now + 7200) is None  # would die too soon
    assert ledger.upload("sha", "acct", "wan2.6-r2v", alive_until=now + 60) is None  # bound to the model
    ledger.close()


def test_peek_reads_without_writing_the_file(tmp_path: Path) -> None:
    assert Ledger.peek(tmp_path) is None
    ledger = Ledger.open(tmp_path)
    enter(ledger, "a")
    ledger.close()
    before = (tmp_path / "ledger.sqlite").read_bytes()
    peeked = Ledger.peek(tmp_path)
    assert peeked is not None and peeked.get("a") is not None
    peeked.close()
    assert (tmp_path / "ledger.sqlite").read_bytes() == before  # no run row, no claim: nothing written


def test_peek_sees_what_runs_wrote_and_no_run_of_its_own(tmp_path: Path, ledger_url: str | None, opened: Opener) -> None:
    assert peek_store(ledger_url, tmp_path) is None  # no run has made it yet
    ledger = opened()
    enter(ledger, "a")
    peeked = peek_store(ledger_url, tmp_path)
    assert peeked is not None
    record = peeked.get("a")
    assert record is not None and record.owner == ledger.run_id
    assert set(peeked.holders()) == {ledger.run_id}  # the peek registers no run
    assert peeked.holders()[ledger.run_id].endswith(f"pid {__import__('os').getpid()}")
    ledger.close()
    assert peeked.holders() == {}
    peeked.close()


def submitted_shot(opened: Opener) -> LedgerStore:
    """A ledger whose shot "a" has its task, task-1."""
    ledger = opened()
    enter(ledger, "a")
    assert ledger.start_submit("a", "acct", 5)
    ledger.submitted("a", "task-1", "acct", "wan2.7-r2v")
    return ledger


def test_a_late_answer_after_another_run_gave_up_keeps_its_paid_task(opened: Opener) -> None:
    """A submit's answer that arrives after its row was marked ambiguous names a paid
    task: the ledger follows it rather than refusing the move and forgetting the id."""
    ledger = opened()
    enter(ledger, "a")
    assert ledger.start_submit("a", "acct", 5)
    ledger.ambiguous("a", "the submit may have reached the provider")
    ledger.submitted("a", "task-late", "acct", "wan2.7-r2v")
    record = ledger.get("a")
    assert record and (record.state, record.task_id) == ("submitted", "task-late")
    assert "task-late" in ledger.known_tasks("acct")
    ledger.close()


def test_an_illegal_move_is_refused_but_a_task_id_in_hand_is_kept(opened: Opener) -> None:
    from r2v_pipeline.run.states import IllegalTransition

    ledger = submitted_shot(opened)
    ledger.succeeded("a", "http://x/v.mp4", None)
    ledger.downloaded("a", "/out/a.mp4", "ab" * 32, 1000)
    with pytest.raises(IllegalTransition):
        ledger.failed("a", "Oops", "downloaded → failed is no move a run makes")
    record = ledger.get("a")
    assert record and (record.state, record.task_id) == ("downloaded", "task-1")
    ledger.close()


@pytest.mark.parametrize("state", ["submitted", "succeeded", "downloaded"])
def test_a_second_task_of_a_shot_gets_a_row_of_its_own_and_is_never_lost(opened: Opener, state: str) -> None:
    """Another task answered for a shot whose row follows one (a fenced run's late answer
    racing the run that took over): the row keeps its task, the second is an unplanned
    row of the same key, submitted and held by no run: what runs recover and fetch aside."""
    from r2v_pipeline.run.ledger_store import second_task

    ledger = submitted_shot(opened)
    if state != "submitted":
        ledger.succeeded("a", "http://x/v.mp4", None)
    if state == "downloaded":
        ledger.downloaded("a", "/out/a.mp4", "ab" * 32, 1000)
    ledger.submitted("a", "task-2", "acct", "wan2.7-r2v")
    record = ledger.get("a")
    assert record and (record.state, record.task_id) == (state, "task-1")
    aside = ledger.get(second_task("a", "task-2"))
    assert aside and (aside.key, aside.state, aside.task_id, aside.owner) == ("s/e/a", "submitted", "task-2", None)
    assert aside.submitted_by == ledger.run_id and aside.endpoint == "https://api.test/v1"
    assert ledger.known_tasks("acct") == {"task-1", "task-2"}
    assert [r.fingerprint for r in ledger.unfinished_elsewhere()] == [aside.fingerprint]  # for the next run to recover
    ledger.submitted("a", "task-2", "acct", "wan2.7-r2v")  # recorded again: still one row
    assert sorted(r.task_id or "" for r in ledger.records().values()) == ["task-1", "task-2"]
    assert "second task" in [e for _, e, _ in ledger.events("a")]
    ledger.close()


def test_tasks_learnt_from_the_store_can_be_told_from_recorded_ones(tmp_path: Path, opened: Opener) -> None:
    ledger = submitted_shot(opened)
    ledger.rebuild([("b" * 64, {"task_id": "task-from-store", "provider": "dashscope", "model": "wan2.7-r2v"}, str(tmp_path / "b.mp4"))])
    assert "task-from-store" in ledger.known_tasks("acct")
    assert ledger.known_tasks("acct", from_store=False) == {"task-1"}
    ledger.close()


def test_a_charge_is_kept_once_per_task_and_a_run_once_whichever_store(tmp_path: Path, ledger_url: str | None) -> None:
    ledger = open_store(ledger_url, tmp_path, run_id="run-one")
    assert ledger.enter("fp", "s/e/a", "dashscope", "m", "acct", "http://x", "a.mp4", planned_seconds=5.0) is not None
    assert ledger.start_submit("fp", "acct", 5)
    ledger.submitted("fp", "task-1", "acct", "m")
    ledger.succeeded("fp", "http://x/v.mp4", None, billed=4.0, cost=0.4)
    ledger.succeeded("fp", "http://x/v.mp4", None, billed=4.0, cost=0.4)  # the same end recorded again
    ledger.ended(1.0, 2.0, 0, ["s/e"])
    ledger.close()
    again = peek_store(ledger_url, tmp_path)
    assert again is not None
    try:
        (charge,) = again.charges()
        assert (charge.run_id, charge.task_id, charge.key, charge.seconds, charge.source, charge.cost) == ("run-one", "task-1", "s/e/a", 4.0, "provider", 0.4)
        assert [(r.run_id, r.exit_code, r.episodes) for r in again.runs()] == [("run-one", 0, ("s/e",))]
    finally:
        again.close()


def test_a_shot_is_sent_through_the_account_and_endpoint_its_submit_names(opened: Opener) -> None:
    ledger = opened()
    enter(ledger, "a", account="acct-1")  # planned through the first account it may use
    assert ledger.start_submit("a", "acct-2", 5, endpoint="https://other.test/v1")  # the pool chose another
    ledger.submitted("a", "task-1", "acct-2", "wan2.7-r2v")
    record = ledger.get("a")
    assert record and (record.account, record.endpoint, record.task_id) == ("acct-2", "https://other.test/v1", "task-1")
    assert ledger.in_progress("acct-2") == 1 and ledger.in_progress("acct-1") == 0


# A run that dies between a submit's two transactions: the answer is recorded, then the
# process is killed before the row moves on (its store's state write for that task kills it).
DIES_BETWEEN = """
import os, signal, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from r2v_pipeline.run import ledger, pg_ledger
from r2v_pipeline.run.open_ledger import open_store
from r2v_pipeline.run.states import LedgerState

for store in (ledger.Ledger, pg_ledger.PgLedger):
    def dying(self, fingerprint, state, now, _real=store._set, **values):
        if state is LedgerState.SUBMITTED and values.get("task_id") == "task-2":
            os.kill(os.getpid(), signal.SIGKILL)
        return _real(self, fingerprint, state, now, **values)
    store._set = dying

l = open_store({url!r}, Path({state!r}))
l.enter("a", "k", "dashscope", "m", "acct", "e", "o")
l.start_submit("a", "acct", 5)
l.submitted("a", "task-1", "acct", "m")
l.failed("a", "InternalError", "the task failed: nothing billed", retry=True)
time.sleep(0.01)
l.start_submit("a", "acct", 5)
if {clock_steps_back}:  # NTP steps the clock back while the request is on the wire
    time.time = lambda _wall=time.time: _wall() - 100.0
l.submitted("a", "task-2", "acct", "m")
"""


@pytest.mark.parametrize("clock_steps_back", [False, True])
def test_a_task_recorded_before_its_run_ended_is_found_for_the_submit_that_made_it(
    tmp_path: Path, ledger_url: str | None, opened: Opener, clock_steps_back: bool
) -> None:
    """A submit's answer is written first, in its own transaction: a run killed before the
    row moved on leaves it ``submitting`` with its task known. That task is the submit's;
    an earlier attempt's (recorded before the submit began) is not."""
    script = DIES_BETWEEN.format(
        root=str(Path(__file__).resolve().parent.parent), state=str(tmp_path), url=ledger_url, clock_steps_back=clock_steps_back
    )
    assert subprocess.run([sys.executable, "-c", script]).returncode == -9
    ledger = opened()
    record = ledger.get("a")
    assert record is not None and record.state == "submitting" and record.task_id == "task-1"
    assert ledger.recorded_task("a") == ("task-2", "acct", "m")
    assert ledger.adopt("a") is not None
    ledger.submitted("a", "task-2", "acct", "m")
    assert ledger.recorded_task("a") is None  # the row moved on: nothing left to recover
    ledger.close()


def test_the_task_a_key_was_answered_with_is_known_by_that_key(opened: Opener) -> None:
    """``answered_through``: the account's newest task recorded as the answer to a submit
    sent with the key. A task adopted or matched from a list (recorded without a key: the
    list shows what the reading key sees, not which key made it), another account's,
    another key's, or one older than asked for is not."""
    ledger = opened()
    for fp in "abcde":
        enter(ledger, fp, account="acct-2" if fp == "e" else "acct")
    assert ledger.start_submit("a", "acct", 5, key="k1")
    ledger.submitted("a", "t-a", "acct", "m", key="k1")
    found = ledger.answered_through("acct", "k1", 0.0)
    assert found is not None and found[0] == "t-a" and abs(found[1] - time.time()) < 60
    assert ledger.answered_through("acct", "k2", 0.0) is None
    assert ledger.answered_through("acct", "k1", time.time() + 60) is None  # older than asked for
    assert ledger.start_submit("b", "acct", 5, key="k1")
    ledger.submitted("b", "t-b", "acct", "m", adopted=True)  # found in a task list
    assert ledger.start_submit("c", "acct", 5, key="k1")
    ledger.submitted("c", "t-c", "acct", "m")  # matched to an unanswered submit: no key
    assert ledger.start_submit("d", "acct", 5, key="k2")
    ledger.submitted("d", "t-d", "acct", "m", key="k2")  # another key's answer
    assert ledger.start_submit("e", "acct-2", 5, key="k1")
    ledger.submitted("e", "t-e", "acct-2", "m", key="k1")  # another account's
    assert [ledger.answered_through("acct", k, 0.0)[0] for k in ("k1", "k2")] == ["t-a", "t-d"]  # type: ignore[index]
    ledger.close()


def test_a_task_recorded_for_one_shot_is_never_another_shots(opened: Opener) -> None:
    """Two takes share a prompt, so a task found in a list may match both: the run that
    records it second (it read the list before the first recorded it) is refused and
    writes nothing, and its take is made on its own."""
    ledger = opened()
    enter(ledger, "take1")
    enter(ledger, "take2")
    assert ledger.start_submit("take1", "acct", 5)
    ledger.submitted("take1", "t-1", "acct", "m")  # matched to its unanswered submit
    with pytest.raises(TaskTaken):
        ledger.submitted("take2", "t-1", "acct", "m", adopted=True)
    record = ledger.get("take2")
    assert record is not None and record.state == "planned" and record.task_id is None
    ledger.submitted("take1", "t-1", "acct", "m")  # the same shot again: no refusal
    ledger.close()
