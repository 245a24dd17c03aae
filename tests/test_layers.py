"""The layers stay straight: import-linter's contracts (pyproject.toml) hold for the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_backward_import_breaks_the_contract(tmp_path: Path) -> None:
    """The contracts can fail: a copy of the package where the planner imports the runner is refused."""
    copy = tmp_path / "r2v_pipeline"
    subprocess.run(["cp", "-r", str(ROOT / "r2v_pipeline"), str(copy)], check=True)
    planner = copy / "plan" / "planner.py"
    planner.write_text(planner.read_text() + "\nfrom ..run import runner as _backwards  # noqa\n")
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    lint = Path(sys.executable).with_name("lint-imports")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([str(lint), "--no-cache", "--contract", "layers"], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode != 0
    assert "r2v_pipeline.plan.planner -> r2v_pipeline.run.runner" in done.stdout
