"""The runner when things go wrong between runs and within them: it never pays twice,
never loses a paid video, never hangs, and reports what it could not finish."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any, Callable

import pytest

from r2v_pipeline.media.probe import probe_file
from r2v_pipeline.providers import dashscope as ds
from r2v_pipeline.providers.base import ProviderError, ProviderTime
from r2v_pipeline import simulation as targets
from r2v_pipeline.run.actions import Selection
from r2v_pipeline.run.pacing import Backoff
from r2v_pipeline.run.work import RunOptions
from r2v_pipeline.sim import Simulator
from tests.test_run import FAST, fast_sim, plan_of, run, submit_outside_a_run

Write = Callable[[str, str], Path]
Media = Callable[[str, str], Path]
StartSim = Callable[..., Simulator]
ONE_SHOT = "cast: {a: {image: m/a.png}}\nshots:\n  - {id: one, duration: 2, prompt: '{{ a }} at dawn'}\n"


def states(tmp: Path, namespace: str = "") -> dict[str, str]:
    db = sqlite3.connect(tmp / "state" / namespace / "ledger.sqlite")
    return dict(db.execute("SELECT key, state FROM shots").fetchall())


def test_a_partial_download_of_another_task_is_never_resumed_into_this_one(
    tmp_path: Path, start_sim: StartSim, write: Write, media: Media, media_bytes: dict[str, bytes]
) -> None:
    media("m/a.png", "png")
    ep = write("ep.yaml", ONE_SHOT)
    sim = fast_sim(start_sim)
    shot = plan_of([ep], tmp_path).shots[0]
    shot.output.parent.mkdir(parents=True)
    other = media_bytes["video_3s"]
    leftover = shot.output.with_name(f".{shot.output.name}.an-earlier-task.part")
    leftover.write_bytes(other[: len(other) // 3])  # a cut download of an earlier version of the shot
    code, _, log = run([ep], tmp_path, sim)
    assert code == 0, log
    info = probe_file(shot.output)
    assert info.seconds == pytest.approx(2.0, abs=0.1)  # the 2 s video asked for, not the 3 s one's header
    assert not shot.output.read_bytes().startswith(other[: len(other) // 3])
    assert not leftover.exists()


def test_queries_that_keep_failing_let_go_of_tasks_without_blocking_the_others(
    tmp_path: Path, start_sim: StartSim, write: Write, media: Media
) -> None:
    media("m/a.png", "png")
    shots = "".join(f"  - {{id: s{i}, duration: 2, prompt: 'scene {i} with {{{{ a }}}}'}}\n" for i in range(7))
    ep = write("ep.yaml", "cast: {a: {image: m/a.png}}\nshots:\n" + shots)
    sim = fast_sim(start_sim, faults="error500=1.0@query")
    options = RunOptions(poll=FAST.poll, seed=7, patience=600.0, query_backoff=Backoff(base=0.001, cap=0.002, attempts=2))
    code, report, log = run([ep], tmp_path, sim, options)  # returns: no hang once five tasks are stuck
    assert code == 1
    assert {s["status"] for s in report["shots"]} == {"unfinished"}
    assert len(sim.ledger.tasks()) == 7  # every shot was submitted once, none twice
    assert set(states(tmp_path).values()) == {"submitted"}
    code, report, _ = run([ep], tmp_path, sim, RunOptions(poll=FAST.poll, seed=7, patience=600.0))  # still down
    assert code == 1 and {s["status"] for s in report["shots"]} == {"unfinished"}
    assert len(sim.ledger.tasks()) == 7  # the next run resumed the tasks: nothing submitted again


def test_a_provider_error_while_polling_keeps_the_task_for_the_next_run(
    tmp_path: Path, start_sim: StartSim, write: Write, media: Media, monkeypatch: pytest.MonkeyPatch
) -> None:
    media("m/a.png", "png")
    ep = write("ep.yaml", ONE_SHOT)
    sim = fast_sim(start_sim)
    real = ds.DashScope.status

    async def refused(self: ds.DashScope, task_id: str) -> Any:
        raise ProviderError("InvalidApiKey", "the key was rotated")

    monkeypatch.setattr(ds.DashScope, "status", refused)
    code, report, _ = run([ep], tmp_path, sim)
    assert code == 1 and report["shots"][0]["status"] == "unfinished"
    assert states(tmp_path) == {"ep/ep/one": "submitted"}  # never "failed": the task is paid for
    monkeypatch.setattr(ds.DashScope, "status", real)
    code, report, _ = run([ep], tmp_path, sim, RunOptions(poll=FAST.poll, selection=Selection(retry_failed=True)))
    assert code == 0 and report["shots"][0]["status"] == "downloaded"
    assert len(sim.ledger.tasks()) == 1


def test_an_unanswered_submit_is_found_though_the_clocks_disagree(
    tmp_path: Path, start_sim: StartSim, write: Write, media: Media, monkeypatch: pytest.MonkeyPatch
) -> None:
    media("m/a.png", "png")
    ep = write("ep.yaml", ONE_SHOT)
    sim = fast_sim(start_sim, faults="drop_after_body=1.0@dashscope.submit", seed=3)
    attach = targets.attached_simulation

    def skewed(url: str) -> Any:  # this machine's clock is three minutes ahead
        found = attach(url)
        now = found.time.now
        return dataclasses.replace(found, time=ProviderTime(now=lambda: now() + 180.0, scale=found.time.scale))

    monkeypatch.setattr(targets, "attached_simulation", skewed)
    code, report, log = run([ep], tmp_path, sim, RunOptions(poll=FAST.poll, settle=1.0, seed=7))
    assert code == 0, log
    assert "reconciled task=" in log
    assert len(sim.ledger.tasks()) == 1


def test_shots_asking_the_same_request_share_one_video(tmp_path: Path, start_sim: StartSim, write: Write, media: Media) -> None:
    media("m/a.png", "png")
    intro = "  - {id: intro, duration: 2, prompt: '{{ a }} opens the show'}\n"
    write("series.yaml", "series: s\ncast: {a: {image: m/a.png}}\n")
    ep1 = write("ep1.yaml", "extends: series.yaml\nshots:\n" + intro + intro.replace("id: intro", "id: intro-again"))
    ep2 = write("ep2.yaml", "extends: series.yaml\nshots:\n" + intro)
    sim = fast_sim(start_sim)
    code, report, log = run([ep1], tmp_path, sim)
    assert code == 0, log
    assert {s["shot"]: s["status"] for s in report["shots"]} == {"intro": "downloaded", "intro-again": "copied"}
    code, report, log = run([ep2], tmp_path, sim)  # another episode, another run, the same request
    assert code == 0, log
    assert report["shots"][0]["status"] == "reused"  # from the video store: nothing made again
    assert len(sim.ledger.tasks()) == 1
    for shot in plan_of([ep1, ep2], tmp_path).shots:
        assert probe_file(shot.output).has_video, shot.key
        assert json.loads(shot.output.with_suffix(".json").read_text())["key"] == shot.key
    code, report, _ = run([ep2], tmp_path, sim)
    assert report["shots"][0]["status"] == "skipped"


def test_a_deleted_video_comes_back_from_the_store_or_is_fetched_again_while_the_provider_keeps_it(
    tmp_path: Path, start_sim: StartSim, write: Write, media: Media
) -> None:
    media("m/a.png", "png")
    ep = write("ep.yaml", ONE_SHOT)
    sim = fast_sim(start_sim)
    assert run([ep], tmp_path, sim)[0] == 0
    shot = plan_of([ep], tmp_path).shots[0]
    shot.output.unlink()
    code, report, _ = run([ep], tmp_path, sim)
    assert code == 0 and report["shots"][0]["status"] == "reused"
    assert probe_file(shot.output).has_video
    shot.output.unlink()
    shutil.rmtree(shot.store_dir)  # the store gone too: the provider still has it
    code, report, _ = run([ep], tmp_path, sim)
    assert code == 0 and report["shots"][0]["status"] == "downloaded"
    assert probe_file(shot.output).has_video
    assert len(sim.ledger.tasks()) == 1


def test_a_run_of_one_episode_leaves_another_episodes_tasks_alone(tmp_path: Path, start_sim: StartSim, write: Write, media: Media) -> None:
    media("m/a.png", "png")
    write("series.yaml", "series: s\ncast: {a: {image: m/a.png}}\n")
    ep1 = write("ep1.yaml", "extends: series.yaml\nshots:\n  - {id: one, duration: 2, prompt: '{{ a }} one'}\n")
    ep2 = write("ep2.yaml", "extends: series.yaml\nshots:\n  - {id: two, duration: 2, prompt: '{{ a }} two'}\n")
    sim = fast_sim(start_sim)
    submit_outside_a_run(sim, tmp_path, [ep2])  # an ep2 run stopped right after its submit
    code, report, _ = run([ep1], tmp_path, sim)
    assert code == 0 and report["recovered"] == []
    assert not list((tmp_path / "out").rglob("superseded"))
    code, report, _ = run([ep2], tmp_path, sim)  # ep2's own run fetches it where it belongs
    assert code == 0 and report["shots"][0]["status"] == "downloaded"
    assert len(sim.ledger.tasks()) == 2


def test_a_task_sent_to_another_endpoint_is_not_declared_expired(tmp_path: Path, start_sim: StartSim, write: Write, media: Media) -> None:
    media("m/a.png", "png")
    ep = write("ep.yaml", "provider: {region: cn}\n" + ONE_SHOT)
    sim = fast_sim(start_sim)
    submit_outside_a_run(sim, tmp_path, [ep])  # sent through the cn endpoint
    moved = write("ep.yaml", "provider: {region: intl}\n" + ONE_SHOT)
    code, report, _ = run([moved], tmp_path, sim)
    (shot,) = report["shots"]
    assert code == 1 and shot["status"] == "elsewhere"
    assert "dashscope.aliyuncs.com" in shot["reason"]
    assert states(tmp_path) == {"ep/ep/one": "submitted"}
    assert len(sim.ledger.tasks()) == 1


def test_downloads_that_keep_failing_leave_the_paid_task_to_fetch_later(tmp_path: Path, start_sim: StartSim, write: Write, media: Media) -> None:
    media("m/a.png", "png")
    ep = write("ep.yaml", ONE_SHOT)
    sim = fast_sim(start_sim, faults="error503=1.0@download")
    options = RunOptions(poll=FAST.poll, download_backoff=Backoff(base=0.001, cap=0.002, attempts=2))
    code, report, log = run([ep], tmp_path, sim, options)
    assert code == 1 and report["shots"][0]["status"] == "unfinished", log
    assert states(tmp_path) == {"ep/ep/one": "succeeded"}


def test_an_unreadable_status_is_asked_again_not_taken_as_gone(
    tmp_path: Path, start_sim: StartSim, write: Write, media: Media, monkeypatch: pytest.MonkeyPatch
) -> None:
    media("m/a.png", "png")
    ep = write("ep.yaml", ONE_SHOT)
    sim = fast_sim(start_sim)
    real = ds.DashScope._get
    calls = {"n": 0}

    async def odd(self: ds.DashScope, path: str, query: Any = None) -> Any:
        calls["n"] += 1
        if path.startswith("/tasks/") and calls["n"] <= 2:
            return {"request_id": "x"}  # no output at all: not "UNKNOWN"
        return await real(self, path, query)

    monkeypatch.setattr(ds.DashScope, "_get", odd)
    code, report, _ = run([ep], tmp_path, sim)
    assert code == 0 and report["shots"][0]["status"] == "downloaded"


def test_a_file_changed_after_planning_is_not_sent(
    tmp_path: Path, start_sim: StartSim, write: Write, media: Media, media_bytes: dict[str, bytes]
) -> None:
    from r2v_pipeline.diagnostics import Diagnostics
    from r2v_pipeline.plan.planner import PlanOptions, make_plan
    from r2v_pipeline.pipeline import RunRequest, execute

    media("m/a.png", "png")
    ep = write("ep.yaml", ONE_SHOT)
    sim = fast_sim(start_sim)
    plan = make_plan([ep], PlanOptions(output_dir=tmp_path / "out", state_dir=tmp_path / "state"), Diagnostics())
    (tmp_path / "m" / "a.png").write_bytes(media_bytes["jpeg"])  # edited while the run starts
    import io

    code = execute(plan, RunRequest(options=FAST, attach=sim.base_url, log_format="plain"), stream=io.StringIO())
    assert code == 1
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["shots"][0]["code"] == "FileChanged"
    assert sim.ledger.tasks() == []


def test_a_forced_remake_keeps_the_earlier_video(tmp_path: Path, write: Write, media: Media, media_bytes: dict[str, bytes]) -> None:
    from r2v_pipeline.run.store import VideoStore

    store = VideoStore(tmp_path / "out" / ".r2v-store")
    dest = tmp_path / "out" / "s" / "e" / "one.mp4"
    fp = "f" * 64
    for video in ("video_3s", "video_2s_silent"):  # the same request made twice (--force): two paid videos
        part = store.object_path(fp).with_name(f".{video}.part")
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(media_bytes[video])
        store.put(fp, part, {"key": "s/e/one"})
        store.materialise(fp, dest, {"key": "s/e/one"})
    (earlier,) = store.generations(fp)
    assert earlier.read_bytes() == media_bytes["video_3s"]
    assert dest.read_bytes() == media_bytes["video_2s_silent"]


def test_a_gateway_error_on_submit_is_reconciled_not_repeated(tmp_path: Path, start_sim: StartSim, write: Write, media: Media) -> None:
    """A 502 with no provider error body says nothing about whether the task exists."""
    from r2v_pipeline.providers.base import Busy, Unknown, busy_or_unknown

    assert isinstance(busy_or_unknown(502, None, "Bad Gateway", None), Unknown)
    assert isinstance(busy_or_unknown(503, "ModelUnavailable", "busy", None), Busy)
    assert isinstance(busy_or_unknown(429, None, "", 2.0), Busy)


def test_a_key_in_a_provider_message_is_never_kept(tmp_path: Path, start_sim: StartSim, write: Write, media: Media, monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    key = "sk-secret-in-an-echo"
    client = ds.DashScope("http://127.0.0.1:1/api/v1", key)
    response = httpx.Response(400, json={"code": "InvalidApiKey", "message": f"Invalid API-key provided: {key}"})
    code, message = client._error(response.json(), response)
    assert key not in message and "***" in message


def test_the_report_names_an_absolute_cast_path_by_its_file_name(tmp_path: Path, start_sim: StartSim, write: Write, media: Media) -> None:
    image = media("m/a.png", "png")
    ep = write("ep.yaml", f"cast: {{a: {{image: {image}}}}}\nshots:\n  - {{id: one, duration: 2, prompt: '{{{{ a }}}}'}}\n")
    sim = fast_sim(start_sim)
    code, report, _ = run([ep], tmp_path, sim)
    assert code == 0
    assert report["shots"][0]["references"][0]["source"] == "a.png"
    assert str(tmp_path) not in (tmp_path / "out" / "report.html").read_text()


DIES_AFTER_THE_ANSWER = """
import os, signal, sys
from r2v_pipeline.cli import main
from r2v_pipeline.run import ledger
from r2v_pipeline.run.states import LedgerState

def dying(self, fingerprint, state, now, _real=ledger.Ledger._set, **values):
    if state is LedgerState.SUBMITTED:  # the answer's task id is written; the row has not moved on
        os.kill(os.getpid(), signal.SIGKILL)
    return _real(self, fingerprint, state, now, **values)

ledger.Ledger._set = dying
sys.exit(main(sys.argv[1:]))
"""


def test_a_run_killed_after_writing_the_answer_and_before_the_state_is_followed_not_paid_again(
    tmp_path: Path, start_sim: StartSim, write: Write, media: Media
) -> None:
    """The task id is written first, in a transaction of its own; a run killed before the
    row left ``submitting`` leaves the task known to the ledger, so the provider's list
    (which shows only tasks the ledger does not know) holds nothing for it. The next run
    follows the recorded task instead of concluding no task was made."""
    import subprocess
    import sys

    media("m/a.png", "png")
    ep = write("ep.yaml", ONE_SHOT)
    sim = fast_sim(start_sim)
    where = ["--simulator", sim.base_url, "--out", str(tmp_path / "out"), "--state", str(tmp_path / "state"), "--settle", "1"]
    killed = subprocess.run([sys.executable, "-c", DIES_AFTER_THE_ANSWER, "run", *where, str(ep)], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert states(tmp_path, "simulated") == {"ep/ep/one": "submitting"} and len(sim.ledger.tasks()) == 1

    again = subprocess.run([sys.executable, "-m", "r2v_pipeline", "run", *where, "--log-format", "plain", str(ep)], capture_output=True, text=True)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "its answer was recorded before the run that sent it ended" in again.stdout + again.stderr
    assert states(tmp_path, "simulated") == {"ep/ep/one": "downloaded"}
    assert len(sim.ledger.tasks()) == 1  # followed, not paid again
