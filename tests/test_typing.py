"""The public surface is typed: py.typed ships, and mypy --strict finds nothing in it."""

from __future__ import annotations

from importlib import metadata, resources
from pathlib import Path

import mypy.api
import pytest

import r2v_pipeline

REPO = Path(__file__).resolve().parent.parent


def test_mypy_strict_passes_on_the_public_modules(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(REPO)  # `mypy` as a developer runs it: pyproject.toml's [tool.mypy] (strict, the public files)
    out, err, code = mypy.api.run(["--no-incremental", "--cache-dir", str(tmp_path / "cache")])
    assert code == 0, out + err
    assert "Success: no issues found in 3 source files" in out


def test_mypy_would_catch_a_caller_misusing_the_api(tmp_path: Path) -> None:
    """The check has teeth: the public types reach a caller (not Any)."""
    caller = tmp_path / "caller.py"
    caller.write_text(
        "import r2v_pipeline as r2v\n"
        "plan = r2v.make_plan(['x.yaml'])\n"
        "seconds: str = plan.shots[0].billed_seconds\n"  # a Decimal
    )
    out, _, code = mypy.api.run(["--strict", "--follow-imports=silent", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(caller)])
    assert code == 1 and 'has type "Decimal"' in out


def test_the_package_ships_py_typed() -> None:
    assert (resources.files("r2v_pipeline") / "py.typed").is_file()
    package_data = next(line for line in (REPO / "pyproject.toml").read_text().splitlines() if line.startswith("r2v_pipeline = ["))
    assert '"py.typed"' in package_data


def test_one_version_everywhere(capsys: object) -> None:
    from r2v_pipeline.cli import main

    assert metadata.version("r2v-pipeline") == r2v_pipeline.__version__
    try:
        main(["--version"])
    except SystemExit:
        pass
    assert capsys.readouterr().out.strip() == f"r2v {r2v_pipeline.__version__}"  # type: ignore[attr-defined]
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog and f"## [{r2v_pipeline.__version__}]" in changelog
