"""Settings from flag, environment, manifest and default: one order, one table, one resolver."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Optional
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, strategies as st

from r2v_pipeline import config, logs
from r2v_pipeline.cli import main

REPO = Path(__file__).resolve().parent.parent
layer = st.none() | st.text(max_size=5)


@given(layer, layer, layer, layer)
def test_the_first_given_layer_wins(flag: Optional[str], env: Optional[str], manifest: Optional[str], default: Optional[str]) -> None:
    chosen = config.resolve(flag, env, manifest, default)
    layers = [flag, env, manifest, default]
    given_ = [v for v in layers if v is not None]
    assert chosen == (given_[0] if given_ else None)
    if flag is not None:
        assert chosen == flag  # a flag beats everything, even an empty string
    if flag is None and env is not None:
        assert chosen == env


@given(st.none() | st.text(min_size=1, alphabet="abc/"), st.none() | st.text(alphabet=" abc/"))
def test_given_reads_the_environment_only_when_the_flag_is_absent(flag: Optional[str], env: Optional[str]) -> None:
    environ = {} if env is None else {config.OUTPUT_DIR.variable: env}
    chosen = config.given(config.OUTPUT_DIR, flag, str, environ)
    if flag is not None:
        assert chosen == flag
    elif env is not None and env.strip():
        assert chosen == env.strip()
    else:
        assert chosen is None  # unset and blank alike: the manifest decides


def test_bad_values_are_refused_by_name() -> None:
    assert config.log_format("json") == "json"
    with pytest.raises(config.BadSetting, match="R2V_LOG_FORMAT"):
        config.log_format("yaml")
    assert config.time_zone("Europe/Paris") == "Europe/Paris"
    with pytest.raises(config.BadSetting, match="time zone"):
        config.time_zone("Mars/Olympus")
    with pytest.raises(config.BadSetting):
        config.time_zone("../../etc/passwd")


def test_the_readme_table_is_the_settings() -> None:
    readme = (REPO / "README.md").read_text()
    assert config.table() in readme
    assert "flag > environment > manifest > default" in readme


@pytest.fixture
def episode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for s in config.SETTINGS:
        monkeypatch.delenv(s.variable, raising=False)
    monkeypatch.delenv("R2V_SIMULATOR", raising=False)
    shutil.copytree(REPO / "manifests" / "lighthouse", tmp_path / "lighthouse")
    monkeypatch.chdir(tmp_path)
    return "lighthouse/ep01-the-storm.yaml"


def _outputs(capsys: pytest.CaptureFixture[str], *argv: str) -> set[Path]:
    """The output folder of every planned video."""
    assert main(["plan", "--json", *argv]) == 0
    return {Path(s["output"]).resolve().parents[2] for s in json.loads(capsys.readouterr().out)["shots"]}


def test_output_folder_flag_beats_environment_beats_manifest(episode: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    manifest = {(tmp_path / "lighthouse" / "../../out").resolve()}  # the series file's output.dir
    assert _outputs(capsys, episode) == manifest
    monkeypatch.setenv("R2V_OUTPUT_DIR", "from-env")
    assert _outputs(capsys, episode) == {tmp_path / "from-env"}
    assert _outputs(capsys, "--out", "from-flag", episode) == {tmp_path / "from-flag"}
    monkeypatch.setenv("R2V_OUTPUT_DIR", "  ")
    assert _outputs(capsys, episode) == manifest  # blank: unset


def test_state_folder_from_the_environment(episode: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("R2V_STATE_DIR", str(tmp_path / "state-env"))
    assert main(["run", "--simulate", "--time-scale", "0.005", "--only", "cold-open", "--out", "o", episode]) == 0
    assert (tmp_path / "state-env" / "simulated" / "ledger.sqlite").is_file()


@pytest.fixture
def zone_restored() -> Iterator[None]:
    """--log-timezone sets this process's local zone (TZ): put it back for the tests after."""
    saved = os.environ.get("TZ")
    yield
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()
    logs._ZONE[0] = timezone.utc


def test_log_format_and_time_zone_from_the_environment(episode: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, zone_restored: None) -> None:
    monkeypatch.setenv("R2V_LOG_FORMAT", "json")
    assert main(["run", "--simulate", "--time-scale", "0.005", "--only", "cold-open", episode]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert any(r["event"] == "downloaded" for r in lines)
    # The flag beats it; the zone sets the clock of plain lines (Kathmandu is UTC+5:45: no other zone agrees).
    monkeypatch.setenv("R2V_LOG_TIMEZONE", "Asia/Kathmandu")
    os.environ["TZ"] = "UTC"
    before = datetime.now(ZoneInfo("Asia/Kathmandu"))
    assert main(["run", "--simulate", "--time-scale", "0.005", "--force", "cold-open", "--only", "cold-open", "--log-format", "plain", episode]) == 0
    after = datetime.now(ZoneInfo("Asia/Kathmandu"))
    err = capsys.readouterr().err
    stamp = next(line.split()[0] for line in err.splitlines() if "/cold-open downloaded" in line)
    allowed = {f"{before:%H:%M}", f"{after:%H:%M}"}
    assert stamp[:5] in allowed, (stamp, allowed)
    # JSON lines carry the zone's offset (UTC when none is set, above)
    assert main(["run", "--simulate", "--time-scale", "0.005", "--only", "cold-open", "--log-format", "json", episode]) == 0
    times = [json.loads(line)["time"] for line in capsys.readouterr().err.splitlines()]
    assert times and all(t.endswith("+05:45") for t in times), times


def test_a_bad_setting_in_the_environment_is_exit_2_naming_the_variable(episode: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("R2V_LOG_FORMAT", "xml")
    assert main(["run", "--simulate", episode]) == 2
    assert "R2V_LOG_FORMAT" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing run
