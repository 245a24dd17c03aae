"""A series repository driven by make, and other repositories checking manifests on commit."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from r2v_pipeline.media.probe import probe_file

REPO = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make")


def make(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    r2v = f"{shlex.quote(sys.executable)} -m r2v_pipeline"
    return subprocess.run([MAKE or "make", "-C", str(folder), f"R2V={r2v}", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(MAKE is None, reason="needs make (.ci/run installs it)")
def test_the_series_makefile_on_the_example_series(tmp_path: Path) -> None:
    series = tmp_path / "lighthouse"
    shutil.copytree(REPO / "manifests" / "lighthouse", series)
    opts = f"OPTS=--out {tmp_path / 'out'} --state {tmp_path / 'state'}"
    fast = "RUN_OPTS=--time-scale 0.005 --log-format plain"

    done = make(series, "validate")
    assert done.returncode == 0, done.stderr
    assert "ok: 2 episode(s)" in done.stdout

    done = make(series, "episode")
    assert done.returncode == 2 and "say which episode" in done.stderr

    done = make(series, "plan", "EP=ep01-the-storm", "SIMULATE=1", opts)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("submit") >= 6, done.stdout

    done = make(series, "series", "SIMULATE=1", opts, fast)
    assert done.returncode == 0, done.stdout + done.stderr
    cuts = tmp_path / "out" / "simulated" / "lighthouse"
    for episode, seconds in (("ep01", 5 + 8 + 10 + 5 + 5), ("ep02", 5 + 6)):
        info = probe_file(cuts / f"{episode}.mp4")
        assert info.has_video and info.seconds == pytest.approx(seconds, abs=0.5), (episode, info, done.stdout)

    done = make(series, "status", "EP=ep01-the-storm", "SIMULATE=1", opts)
    assert done.returncode == 0 and done.stdout.count(" downloaded ") == 6, done.stdout + done.stderr

    done = make(series, "series", "SIMULATE=1", opts, fast)  # nothing new: nothing sent, the cuts are made again
    assert done.returncode == 0 and "8 skipped" in done.stderr, done.stdout + done.stderr


def test_the_pre_commit_hook_runs_r2v_validate_on_manifests(tmp_path: Path) -> None:
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "r2v-validate" and hook["language"] == "python" and hook["pass_filenames"]
    files = re.compile(hook["files"])
    assert files.search("manifests/lighthouse/ep01-the-storm.yaml")
    assert files.search("shows/manifests/series.yml")
    assert not files.search(".github/workflows/ci.yml")

    def pre_commit(*names: str) -> subprocess.CompletedProcess[str]:
        # as pre-commit calls it: the entry, then the staged files that match
        entry = shlex.split(hook["entry"])
        command = [str(Path(sys.executable).parent / entry[0]), *entry[1:], *names]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=REPO)

    assert pre_commit("manifests/lighthouse/series.yaml", "manifests/lighthouse/ep01-the-storm.yaml").returncode == 0
    bad = tmp_path / "manifests" / "ep.yaml"
    bad.parent.mkdir()
    bad.write_text("shots:\n  - {id: a, prompt: hi, duratoin: 5}\n")
    done = pre_commit(str(bad))
    assert done.returncode != 0
    assert re.search(r'ep\.yaml:2:25: unknown key "duratoin"', done.stderr)


def test_the_pre_commit_hook_fails_a_series_change_that_breaks_an_episode(tmp_path: Path) -> None:
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    series = tmp_path / "manifests" / "lighthouse"
    shutil.copytree(REPO / "manifests" / "lighthouse", series)
    text = (series / "series.yaml").read_text()
    (series / "series.yaml").write_text(text[: text.index("  gull:\n")] + text[text.index("  lamp_room:\n") :])  # the gull leaves
    entry = shlex.split(hook["entry"])
    staged = ["manifests/lighthouse/series.yaml"]  # only the series file changed: all pre-commit passes
    done = subprocess.run([str(Path(sys.executable).parent / entry[0]), *entry[1:], *staged], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert re.search(r"ep01-the-storm\.yaml:\d+:\d+: prompt uses \"gull\"", done.stderr), done.stderr
