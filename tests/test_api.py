"""The public Python API, driven through its public names only, against the embedded simulator."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import threading
from decimal import Decimal
from pathlib import Path

import pytest

import r2v_pipeline
from r2v_pipeline import (
    Action,
    Event,
    InvalidInput,
    LedgerState,
    Options,
    RunOptions,
    ShotStatus,
    Simulator,
    assemble_episodes,
    exits,
    history,
    make_plan,
    run_plan,
    run_plan_async,
    status,
    validate,
)

REPO = Path(__file__).resolve().parent.parent
FAST = Simulator(time_scale=0.005)


@pytest.fixture
def episode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for variable in ("DASHSCOPE_API_KEY", "FREEPIK_API_KEY", "R2V_OUTPUT_DIR", "R2V_STATE_DIR"):
        monkeypatch.delenv(variable, raising=False)
    shutil.copytree(REPO / "manifests" / "lighthouse", tmp_path / "lighthouse")
    return tmp_path / "lighthouse" / "ep01-the-storm.yaml"


def _options(tmp_path: Path, **more: object) -> Options:
    return Options(output_dir=tmp_path / "out", state_dir=tmp_path / "state", **more)  # type: ignore[arg-type]


def test_every_public_name_resolves_and_results_are_frozen() -> None:
    for name in r2v_pipeline.__all__:
        assert getattr(r2v_pipeline, name) is not None
    with pytest.raises(AttributeError):
        r2v_pipeline.make_plan_of  # type: ignore[attr-defined]  # noqa: B018
    for name in r2v_pipeline.__all__:
        value = getattr(r2v_pipeline, name)
        if isinstance(value, type) and dataclasses.is_dataclass(value):
            assert value.__dataclass_params__.frozen, name  # type: ignore[attr-defined]


def test_plan_then_run_then_status_history_and_assemble(tmp_path: Path, episode: Path) -> None:
    options = _options(tmp_path, simulated=True)
    checked = validate([episode], options)
    assert checked.ok and checked.episodes == 1 and checked.shots == 5 and checked.requests == 6
    assert {d.field for d in checked.warnings} == {"cast.ada.voice", "cast.milo.voice"}

    plan = make_plan([episode], options)
    assert [s.action for s in plan.shots] == [Action.SUBMIT] * 6
    arrival = next(s for s in plan.shots if s.shot == "arrival")
    assert arrival.key == "lighthouse/ep01/arrival" and arrival.spends
    assert arrival.billed_seconds == Decimal(11) and arrival.cost == Decimal("1.1")
    assert len(arrival.fingerprint) == 64 and "model" in arrival.body
    assert plan.billed_seconds == sum(s.billed_seconds for s in plan.shots) and plan.currency == "USD"
    with pytest.raises(TypeError):
        arrival.body["model"] = "another"  # type: ignore[index]  # the plan cannot be edited behind its fingerprint

    events: list[Event] = []
    result = run_plan([episode], options, RunOptions(simulator=FAST), on_event=events.append)
    assert result.exit_code == exits.OK and result.ok and result.simulated
    assert {s.status for s in result.shots} == {ShotStatus.DOWNLOADED}
    assert result.billed_seconds == plan.billed_seconds
    assert all(s.output is not None and s.output.is_file() for s in result.shots)
    assert json.loads((result.report_dir / "report.json").read_text())["totals"]["done"] == 6
    by_shot = {(e.shot, e.name) for e in events}
    assert ("lighthouse/ep01/arrival", "submitted") in by_shot and ("lighthouse/ep01/arrival", "downloaded") in by_shot
    succeeded = next(e for e in events if e.name == "succeeded" and e.shot == arrival.key)
    assert succeeded.fields["billed_seconds"] == "11.0" and succeeded.time.tzinfo is not None
    assert any(e.shot is None and e.message and "6/6 done" in e.message for e in events)

    assert [s.action for s in make_plan([episode], options).shots] == [Action.SKIP] * 6
    states = status([episode], options)
    assert {s.state for s in states} == {LedgerState.DOWNLOADED} and all(s.task_id for s in states)
    assert [s.state for s in status([episode], _options(tmp_path))] == [None] * 6  # the real ledger: nothing run

    shots = history([episode], options)
    versions = next(h for h in shots if h.key == arrival.key).versions
    assert len(versions) == 1 and versions[0].current and versions[0].fingerprint == arrival.fingerprint
    assert [e.event for e in versions[0].entries] == ["submitting", "submitted", "succeeded", "downloaded"]

    (cut,) = assemble_episodes([episode], options)
    assert cut.written and cut.output.is_file() and cut.seconds and cut.seconds > 30 and not cut.problems


def test_an_edit_shows_in_history_as_a_second_version(tmp_path: Path, episode: Path) -> None:
    options = _options(tmp_path, only=("arrival",))
    assert run_plan([episode], options, RunOptions(simulator=FAST)).ok
    text = episode.read_text().replace("soaked.", "soaked to the bone.")
    episode.write_text(text)
    simulated = dataclasses.replace(options, simulated=True)
    shots = make_plan([episode], simulated).shots
    (planned,) = [s for s in shots if s.action is not Action.UNSELECTED]
    assert planned.shot == "arrival" and planned.action is Action.SUBMIT and planned.reason  # made again: the reason says what changed
    assert run_plan([episode], options, RunOptions(simulator=FAST)).ok
    (shot,) = history([episode], simulated)
    assert [v.current for v in shot.versions] == [True, False]
    assert shot.versions[0].fingerprint == planned.fingerprint


def test_invalid_manifests_raise_with_diagnostics_as_values(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("series: x\nepisode: e\nshots:\n  - id: a\n    prompt: hi\n    duraton: 5\n")
    checked = validate([bad], Options())
    assert not checked.ok
    (unknown,) = [d for d in checked.errors if "duraton" in d.message]
    assert (unknown.file, unknown.line, unknown.column) == (str(bad), 6, 5) or unknown.file.endswith("bad.yaml")
    assert (unknown.line, unknown.column, unknown.field) == (6, 5, "shots[a].duraton")
    with pytest.raises(InvalidInput) as raised:
        make_plan([bad])
    assert unknown in raised.value.diagnostics and "duraton" in str(raised.value)
    assert not (tmp_path / "out").exists()  # nothing written, nothing sent


def test_a_selection_naming_no_shot_is_invalid_input(tmp_path: Path, episode: Path) -> None:
    with pytest.raises(InvalidInput) as raised:
        run_plan([episode], _options(tmp_path, only=("arival",)), RunOptions(simulator=FAST))
    assert raised.value.problems and "arrival" in raised.value.problems[0]  # the nearest name
    assert not (tmp_path / "state").exists()


def test_run_async_calls_back_in_the_event_loop(tmp_path: Path, episode: Path) -> None:
    loop_thread: list[threading.Thread] = []
    seen: list[tuple[str, threading.Thread]] = []

    async def main() -> int:
        loop_thread.append(threading.current_thread())
        result = await run_plan_async(
            [episode], _options(tmp_path, only=("cold-open",)), RunOptions(simulator=FAST),
            on_event=lambda e: seen.append((e.name, threading.current_thread())),
        )  # fmt: skip
        return result.exit_code

    assert asyncio.run(main()) == exits.OK
    assert {"submitted", "downloaded"} <= {name for name, _ in seen}
    assert {thread for _, thread in seen} == set(loop_thread)


def test_log_goes_to_the_given_stream_as_plain_or_json(tmp_path: Path, episode: Path) -> None:
    import io

    plain, lines = io.StringIO(), io.StringIO()
    run_plan([episode], _options(tmp_path, only=("cold-open",)), RunOptions(simulator=FAST, log=plain))
    assert "lighthouse/ep01/cold-open downloaded" in plain.getvalue()
    run_plan([episode], _options(tmp_path, only=("cold-open",)), RunOptions(simulator=FAST, force=("cold-open",), log=lines, log_format="json"))
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert {"shot": "lighthouse/ep01/cold-open", "event": "downloaded"}.items() <= next(r for r in records if r.get("event") == "downloaded").items()


def test_environment_folders_apply_when_options_leave_them_open(tmp_path: Path, episode: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("R2V_OUTPUT_DIR", str(tmp_path / "from-env"))
    (shot, *_) = make_plan([episode]).shots
    assert shot.output.is_relative_to(tmp_path / "from-env")
    (shot, *_) = make_plan([episode], Options(output_dir=tmp_path / "given")).shots
    assert shot.output.is_relative_to(tmp_path / "given")  # the argument beats the environment


def test_plan_status_and_history_read_the_ledger_the_run_wrote_whichever_store(
    tmp_path: Path, episode: Path, ledger_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("R2V_LEDGER_URL", raising=False)
    options = _options(tmp_path, simulated=True, ledger=ledger_url)
    done = run_plan([episode], options, RunOptions(simulator=FAST))
    assert done.ok, done.exit_code
    # Planning afterwards reads the same ledger: nothing is left to pay for, whichever store holds it.
    assert {s.action for s in make_plan([episode], options).shots} == {Action.SKIP}
    assert {s.state for s in status([episode], options)} == {LedgerState.DOWNLOADED}
    assert all(len(h.versions) == 1 for h in history([episode], options))
    if ledger_url is not None:  # the file in the state folder was never the ledger
        assert {s.state for s in status([episode], _options(tmp_path, simulated=True))} == {None}
