"""The everyday loop from the command line: selecting shots, plan for scripts, simulated
runs found again, one run at a time for cron, a series change checked with its episodes,
and r2v gc freeing only what no manifest names."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Callable

import pytest

from r2v_pipeline import exits
from r2v_pipeline.cli import main
from r2v_pipeline.exits import PLAN_SPENDS
from r2v_pipeline.run.ledger import Ledger
from r2v_pipeline.run.store import VideoStore

from .test_run import StartSim, billed_tasks_per_content, fast_sim

REPO = Path(__file__).resolve().parent.parent
Write = Callable[[str, str], Path]
Media = Callable[[str, str], Path]
EPISODE = "cast: {a: {image: m/a.png}}\nshots:\n  - {id: dawn, duration: 2, prompt: '{{ a }} at dawn'}\n  - {id: dusk, duration: 2, prompt: '{{ a }} at dusk'}\n"


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def episode(write: Write, media: Media) -> Path:
    media("m/a.png", "png")
    return write("ep.yaml", EPISODE)


def where(tmp: Path) -> list[str]:
    return ["--out", str(tmp / "out"), "--state", str(tmp / "state")]


@pytest.mark.parametrize("command", ["plan", "run", "status", "assemble"])
def test_only_is_the_same_everywhere_and_a_pattern_naming_nothing_is_an_error(tmp_path: Path, episode: Path, command: str) -> None:
    code, out, err = cli(command, str(episode), "--only", "dwan", *where(tmp_path))
    assert code == exits.INVALID
    assert "--only 'dwan' matches no shot (did you mean \"dawn\"?)" in err
    assert not (tmp_path / "state" / "ledger.sqlite").exists()  # nothing was run


def test_plan_and_status_select_with_only(tmp_path: Path, episode: Path) -> None:
    code, out, _ = cli("plan", str(episode), "--only", "dusk", *where(tmp_path))
    assert code == 0
    rows = {line.split()[0]: line.split()[-2] for line in out.splitlines()[2:4]}
    assert rows == {"dawn": "unselected", "dusk": "submit"}
    code, out, _ = cli("status", str(episode), "--only", "ep/dusk", *where(tmp_path))
    assert code == 0 and "ep/ep/dusk" in out and "dawn" not in out


def test_plan_tells_a_script_whether_running_would_spend(tmp_path: Path, episode: Path, start_sim: StartSim) -> None:
    code, _, _ = cli("plan", "--detailed-exitcode", str(episode), *where(tmp_path))
    assert code == PLAN_SPENDS
    sim = fast_sim(start_sim)
    code, _, err = cli("run", str(episode), "--simulator", sim.base_url, "--log-format", "plain", *where(tmp_path))
    assert code == 0, err
    code, _, _ = cli("plan", "--detailed-exitcode", "--simulated", str(episode), *where(tmp_path))
    assert code == exits.OK
    code, _, _ = cli("plan", str(episode), "--simulated", *where(tmp_path))  # without the flag: 0 either way
    assert code == exits.OK


def test_status_points_at_simulated_runs_and_takes_either_spelling(tmp_path: Path, episode: Path, start_sim: StartSim) -> None:
    sim = fast_sim(start_sim)
    assert cli("run", str(episode), "--simulator", sim.base_url, "--log-format", "plain", *where(tmp_path))[0] == 0
    code, out, err = cli("status", str(episode), *where(tmp_path))
    assert code == 0 and "not run" in out
    assert "only simulated runs have made these shots (2 of 2); add --simulated to see them" in err
    for spelling in ("--simulated", "--simulate"):
        code, out, err = cli("status", str(episode), spelling, *where(tmp_path))
        assert code == 0 and out.count(" downloaded ") == 2 and "only simulated" not in err


def test_exclusive_ends_at_once_when_another_run_holds_the_ledger(tmp_path: Path, episode: Path) -> None:
    other = Ledger.open(tmp_path / "state")  # a live run of this process holds it
    try:
        code, _, err = cli("run", str(episode), "--exclusive", "--log-format", "json", *where(tmp_path))
    finally:
        other.close()
    assert code == exits.LOCKED
    (line,) = [json.loads(line) for line in err.splitlines()]
    assert line["event"] == "locked" and line["level"] == "error" and "another r2v run (pid" in line["message"]


def test_a_json_log_stays_json_when_the_manifest_is_invalid(tmp_path: Path, write: Write) -> None:
    bad = write("bad.yaml", "shots:\n  - {id: a, prompt: hi, duratoin: 5}\n")
    code, _, err = cli("run", str(bad), "--log-format", "json", *where(tmp_path))
    assert code == exits.INVALID
    lines = [json.loads(line) for line in err.splitlines()]
    assert lines[0]["file"].endswith("bad.yaml") and lines[0]["line"] == 2 and lines[0]["col"] == 25 and lines[0]["level"] == "error"
    assert lines[-1]["message"].endswith("nothing was sent")


def test_validate_dependents_checks_the_episodes_a_series_change_breaks(tmp_path: Path) -> None:
    series = tmp_path / "lighthouse"
    shutil.copytree(REPO / "manifests" / "lighthouse", series)
    text = (series / "series.yaml").read_text()
    start = text.index("  gull:\n")
    (series / "series.yaml").write_text(text[:start] + text[text.index("  lamp_room:\n"):])  # the gull leaves the cast
    assert cli("validate", str(series / "series.yaml"))[0] == 0  # valid on its own
    code, _, err = cli("validate", "--dependents", str(series / "series.yaml"))
    assert code == exits.INVALID
    assert "ep01-the-storm.yaml:" in err and 'prompt uses "gull"' in err


def test_gc_frees_only_what_no_manifest_names_now_or_at_head(tmp_path: Path, write: Write, media: Media, start_sim: StartSim) -> None:
    if shutil.which("git") is None:
        pytest.skip("needs git")
    media("m/a.png", "png")
    ep = write("ep.yaml", EPISODE)
    git = lambda *a: subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "a", "--allow-empty")
    git("add", "ep.yaml", "m")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "dawn")
    sim = fast_sim(start_sim)
    run = lambda: cli("run", str(ep), "--simulator", sim.base_url, "--log-format", "plain", *where(tmp_path))  # noqa: E731
    assert run()[0] == 0
    write("ep.yaml", EPISODE.replace("at dawn", "at noon"))  # edited, not committed
    assert run()[0] == 0
    store = VideoStore(tmp_path / "out" / "simulated" / ".r2v-store")
    assert len(list(store.objects())) == 3
    pictures = lambda: {p.name.split("-")[0] for p in (store.root / "thumbs").rglob("*.jpg")}  # noqa: E731
    videos = lambda: {s.sha256 for s in store.objects()}  # noqa: E731
    assert videos() < pictures()  # the reports' posters (and the cast picture), by content

    code, out, _ = cli("gc", str(ep), "--simulated", *where(tmp_path))
    assert code == 0 and out.startswith("would free 0 video(s)")  # dawn is at HEAD, noon in the tree

    git("add", "ep.yaml")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "noon")
    code, out, _ = cli("gc", str(ep), "--simulated", *where(tmp_path))
    assert code == 0 and out.startswith("would free 1 video(s)") and "ep/ep/dawn" in out
    assert len(list(store.objects())) == 3  # listing removes nothing
    code, out, _ = cli("gc", str(ep), "--simulated", "--yes", *where(tmp_path))
    assert code == 0 and out.startswith("removed 1 video(s)")
    assert len(list(store.objects())) == 2
    assert len(pictures() - videos()) == 1  # dawn's poster went with it; the cast picture stays
    assert not list((tmp_path / "out" / "simulated" / "ep" / "ep" / "superseded").glob("*.mp4"))
    billed = sum(billed_tasks_per_content(sim).values())
    code, _, err = run()
    assert code == 0 and "2 skipped" in err and sum(billed_tasks_per_content(sim).values()) == billed
