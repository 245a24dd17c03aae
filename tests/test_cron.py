"""The README's cron line, read from README.md and run as written under cron's bare
environment (env -i, PATH=/usr/bin:/bin), against the simulator over loopback: each
documented exit code from a real case, and a log that is JSON throughout."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from r2v_pipeline.media.probe import probe_file
from r2v_pipeline.run.ledger import Ledger

from .test_run import StartSim, billed_tasks_per_content, fast_sim

REPO = Path(__file__).resolve().parent.parent
R2V = Path(sys.prefix) / "bin" / "r2v"
CRON_HOME = "/srv/lighthouse"  # where the README's recipe says the series is checked out

pytestmark = pytest.mark.skipif(not R2V.is_file(), reason="needs the r2v console script in the test interpreter's venv (pip install -e .)")


def cron_command() -> str:
    """The command part of the one crontab line in the README's cron block."""
    block = re.search(r"```cron\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert block, "the README has a cron block"
    (line,) = [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]
    return line.split(None, 5)[5]


@pytest.fixture
def series(tmp_path: Path) -> Path:
    folder = tmp_path / "srv" / "lighthouse"
    shutil.copytree(REPO / "manifests" / "lighthouse", folder)
    (folder / ".venv").symlink_to(sys.prefix)  # r2v installed in the series repository's venv
    return folder


def keys(series: Path, simulator: str) -> None:
    # The keys file is the environment cron gets; here it also points r2v at the simulator.
    (series / "r2v-keys.env").write_text(f"export DASHSCOPE_API_KEY=sk-cron FREEPIK_API_KEY=fp-cron R2V_SIMULATOR={simulator}\n")


def cron(series: Path) -> tuple[str, list[dict[str, object]]]:
    """Run the line as cron would; what cron would mail (stdout) and the day's log lines."""
    command = cron_command().replace(CRON_HOME, str(series))
    done = subprocess.run(["/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "sh", "-c", command], capture_output=True, text=True, timeout=300)
    assert done.stderr == "", done.stderr  # everything else goes to the log
    (log,) = (series / "logs").glob("r2v-*.jsonl")
    lines = [json.loads(line) for line in log.read_text().splitlines()]  # every line is JSON
    log.unlink()
    return done.stdout, lines


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_readme_cron_line_runs_as_written_and_keeps_r2vs_exit_codes(tmp_path: Path, series: Path, start_sim: StartSim) -> None:
    sim = fast_sim(start_sim)
    keys(series, sim.base_url)

    mailed, lines = cron(series)  # 0: everything made and cut
    assert mailed == "", lines
    assert {"submitted", "downloaded", "assembled"} <= {str(line["event"]) for line in lines}
    out = tmp_path / "out" / "simulated" / "lighthouse"
    assert probe_file(out / "ep01.mp4").has_video and probe_file(out / "ep02.mp4").has_video
    assert (series / "logs" / "junit.xml").is_file()
    assert max(billed_tasks_per_content(sim).values()) == 1

    mailed, lines = cron(series)  # 0 again: nothing new, nothing sent
    assert mailed == "" and not [line for line in lines if line["event"] == "submitted"]

    episode = series / "ep02-the-letter.yaml"
    good = episode.read_text()
    episode.write_text(good + "  - {id: banned, model: wan2.7-r2v, prompt: '{{ ada }} SIM-BLOCK-INPUT'}\n")
    mailed, lines = cron(series)  # 1: a shot was refused
    assert mailed == "r2v: exit 1 (see logs/)\n"
    assert any(line.get("event") == "refused" for line in lines)

    episode.write_text(good.replace("prompt:", "promt:", 1))
    mailed, lines = cron(series)  # 2: an invalid manifest, nothing sent
    assert mailed == "r2v: exit 2 (see logs/)\n"
    assert any(line.get("level") == "error" and "ep02-the-letter.yaml" in str(line.get("file")) for line in lines)
    episode.write_text(good)

    # A shot to send (a run with nothing to do asks no provider anything).
    episode.write_text(good + "  - {id: waiting, model: wan2.7-r2v, prompt: '{{ ada }} waits for the boat'}\n")
    keys(series, f"http://127.0.0.1:{closed_port()}")
    mailed, lines = cron(series)  # 4: the provider cannot be reached
    assert mailed == "r2v: exit 4 (see logs/)\n"
    assert any(line["event"] == "unreachable" for line in lines)
    keys(series, sim.base_url)
    episode.write_text(good)

    holder = Ledger.open(tmp_path / ".r2v" / "simulated")  # another run works on the ledger
    try:
        mailed, lines = cron(series)  # 5: it ends at once
    finally:
        holder.close()
    assert mailed == "r2v: exit 5 (see logs/)\n"
    assert [line["event"] for line in lines if line["level"] != "warning"] == ["locked"]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make (.ci/run installs it)")
def test_the_series_makefile_runs_under_crons_environment(tmp_path: Path, series: Path, start_sim: StartSim) -> None:
    sim = fast_sim(start_sim)
    env = ["/usr/bin/env", "-i", "PATH=/usr/bin:/bin", f"R2V_SIMULATOR={sim.base_url}"]

    def make(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*env, "make", *args], cwd=series, capture_output=True, text=True, timeout=300)

    done = make("validate")  # R2V found in the repository's .venv, not on PATH
    assert done.returncode == 0 and "ok: 2 episode(s)" in done.stdout, done.stderr
    done = make("series", "RUN_OPTS=--log-format json")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # no echo of make's commands in the log
    assert all(json.loads(line) for line in done.stderr.splitlines())
    done = make("status", "EP=ep01-the-storm")
    assert done.returncode == 0 and done.stdout.count(" downloaded ") == 6, done.stdout + done.stderr
    (series / "ep03.yaml").write_text("extends: series.yaml\nshots:\n  - {id: x, promt: hi}\n")
    done = make("validate")
    assert done.returncode == 2 and "Error 2" in done.stderr  # make's own code, naming r2v's
