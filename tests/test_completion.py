"""r2v completion: scripts made from the parser, that complete as a shell would; a fast start kept."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from r2v_pipeline.cli import main

BASH = shutil.which("bash")


def _script(shell: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["completion", shell]) == 0
    return capsys.readouterr().out


def _complete(script: Path, cwd: Path, *words: str) -> list[str]:
    """What bash offers for the last word, calling the completion function as bash does on Tab."""
    line = " ".join(words)
    program = (
        f'source "{script}"; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; COMP_LINE="{line}"; COMP_POINT={len(line)}; '
        f'_shtab_r2v r2v "{words[-1]}" "{words[-2]}"; printf "%s\\n" "${{COMPREPLY[@]}}"'
    )
    done = subprocess.run([BASH, "--norc", "-c", program], cwd=cwd, capture_output=True, text=True, timeout=30, check=True)
    return [w for w in done.stdout.splitlines() if w]


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_bash_completes_commands_flags_and_manifests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "r2v.bash"
    script.write_text(_script("bash", capsys))
    assert _complete(script, tmp_path, "r2v", "pl") == ["plan"]
    assert set(_complete(script, tmp_path, "r2v", "")) >= {"validate", "plan", "run", "status", "assemble", "gc", "sim", "completion"}
    assert "--log-timezone" in _complete(script, tmp_path, "r2v", "run", "--log-")
    (tmp_path / "ep01.yaml").touch()
    (tmp_path / "ep02.yml").touch()
    (tmp_path / "notes.txt").touch()
    (tmp_path / "season2").mkdir()
    offered = _complete(script, tmp_path, "r2v", "plan", "")
    assert {"ep01.yaml", "ep02.yml"} <= set(offered) and "notes.txt" not in offered  # manifests, and folders to descend
    assert any(w.startswith("season2") for w in offered)
    assert _complete(script, tmp_path, "r2v", "completion", "z") == ["zsh"]


def test_zsh_and_fish_scripts_know_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    zsh, fish = _script("zsh", capsys), _script("fish", capsys)
    assert zsh.startswith("#compdef r2v") and "plan" in zsh and "*.yaml" in zsh
    assert "complete -c r2v" in fish and "plan" in fish


def test_the_readme_gives_one_install_command_per_shell() -> None:
    from r2v_pipeline.completion import INSTALL

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert all(line in readme for line in INSTALL.values()) and set(INSTALL) == {"bash", "zsh", "fish"}


HEAVY = ("httpx", "anyio", "av", "sqlite3", "jinja2", "jsonschema", "yaml", "r2v_pipeline.api", "r2v_pipeline.sim", "r2v_pipeline.run.runner")


@pytest.mark.parametrize("argv", [["--help"], ["completion", "bash"]])
def test_help_and_completion_start_without_heavy_modules(argv: list[str]) -> None:
    program = (
        "import sys\nfrom r2v_pipeline.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"print([m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m in {HEAVY!r}], file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True)
    assert done.stderr.strip() == "[]"
