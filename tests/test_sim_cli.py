"""``r2v sim``: arguments, the environment, and the real process serving until told to stop."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from r2v_pipeline.sim import Rate
from r2v_pipeline.sim.command import add_command, config_from_args, main

LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+) ")


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="r2v")
    add_command(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["sim", *argv])


def test_add_command_registers_sim_with_its_options() -> None:
    args = parse("--port", "0", "--time-scale", "0.01", "--seed", "7", "--faults", "throttle=0.1@submit", "--generation-seconds", "10:20", "--max-running", "0")
    config = config_from_args(args, environ={})
    assert callable(args.func)
    assert (config.port, config.time_scale, config.seed, config.faults) == (0, 0.01, 7, "throttle=0.1@submit")
    assert (config.generation_seconds, config.max_running, config.submit_rate) == ((10.0, 20.0), None, (Rate(5, 1.0),))
    assert config.dashscope_keys is None


def test_keys_and_the_webhook_secret_come_from_the_environment() -> None:
    environ = {"R2V_SIM_DASHSCOPE_KEYS": "sk-a, sk-b", "R2V_SIM_FREEPIK_KEYS": "fpk", "R2V_SIM_WEBHOOK_SECRET": "whsec"}
    config = config_from_args(parse(), environ=environ)
    assert (config.dashscope_keys, config.freepik_keys, config.webhook_secret) == (frozenset({"sk-a", "sk-b"}), frozenset({"fpk"}), "whsec")
    assert "sk-a" not in repr(config) and "whsec" not in repr(config)


def test_accounts_media_facts_and_test_switches(tmp_path: Path) -> None:
    facts = tmp_path / "facts.yaml"
    facts.write_text("https://cdn.test/a.png: {kind: image, format: png, bytes: 1000, width: 640, height: 480}\n")
    environ = {"R2V_SIM_DASHSCOPE_ACCOUNTS": "studio=sk-a,sk-b; solo=sk-c"}
    config = config_from_args(parse("--media-facts", str(facts), "--pending-seconds", "0", "--billing-offset", "2.5"), environ=environ)
    assert config.accounts == {"sk-a": "studio", "sk-b": "studio", "sk-c": "solo"} and "sk-a" not in repr(config)
    assert list(config.remote_media) == ["https://cdn.test/a.png"]
    assert (config.pending_seconds, config.billing_offset_seconds) == (0.0, 2.5)
    facts.write_text("https://cdn.test/a.png: {kind: hologram, format: png, bytes: 1}\n")
    with pytest.raises(ValueError, match="facts.yaml"):
        config_from_args(parse("--media-facts", str(facts)), environ={})
    with pytest.raises(ValueError, match="ACCOUNT=KEY"):
        config_from_args(parse(), environ={"R2V_SIM_DASHSCOPE_ACCOUNTS": "sk-a"})


def test_help_says_the_billing_offset_is_for_tests(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--help")
    out = " ".join(capsys.readouterr().out.split())
    assert "--billing-offset S for tests only" in out


@pytest.mark.parametrize("argv", [["--faults", "throttle=2"], ["--time-scale", "0"], ["--generation-seconds", "9:1"]])
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse(*argv)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_a_non_loopback_host_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--host", "0.0.0.0", "--port", "0"]) == 2
    assert "loopback" in capsys.readouterr().err


def test_help_documents_the_fault_grammar(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--help")
    out = capsys.readouterr().out
    for name in ("throttle", "burst429", "error500", "error503", "drop_before_body", "drop_after_body", "slow", "task_internal_error", "cut_download"):
        assert name in out


def test_the_process_serves_then_stops_on_sigterm() -> None:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    process = subprocess.Popen(
        [sys.executable, "-m", "r2v_pipeline.sim", "--port", "0", "--time-scale", "0.01", "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = LISTENING.search(line)
        assert found, line
        health = httpx.get(found.group(1) + "/_sim/health", trust_env=False).json()
        assert (health["status"], health["seed"], health["time_scale"]) == ("ok", 3, 0.01)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
