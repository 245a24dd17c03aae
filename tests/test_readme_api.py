"""The README's Python API example runs as written: read from README.md, run from a checkout's layout."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("\n## Python API\n") :]
    section = section[: section.index("\n## ", 1)]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the Python API section holds one example"
    return blocks[0]


def test_the_readme_example_runs(tmp_path: Path) -> None:
    shutil.copytree(REPO / "manifests" / "lighthouse", tmp_path / "manifests" / "lighthouse")
    (tmp_path / "example.py").write_text(readme_example())
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no keys, no R2V_ settings
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "lighthouse/ep01/arrival submit 11" in out  # the plan
    assert "lighthouse/ep01/arrival downloaded" in out  # the run's result
    assert "run submitted" not in out and "lighthouse/ep01/arrival submitted" in out  # events, by shot
    assert (tmp_path / "out" / "simulated" / "lighthouse" / "ep01.mp4").is_file()  # the cut
    assert (tmp_path / "out" / "simulated" / "report.json").is_file()
