"""Probe verdicts kept by content hash: an unchanged file is not decoded again, and a
changed, missing or unreadable entry never changes what planning concludes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from r2v_pipeline.diagnostics import Diagnostics
from r2v_pipeline.media import synth
from r2v_pipeline.media.probe_cache import CACHE_VARIABLE, ProbeCache, default_folder
from r2v_pipeline.plan.planner import PlanOptions, make_plan

Write = Callable[[str, str | bytes], Path]

EPISODE = """
    series: s
    episode: e
    cast:
      mia: {image: mia.png}
      kai: {video: kai.mp4}
    shots:
      - {id: a, prompt: '{{ mia }} and {{ kai }} wave'}
"""

# Plans the episode in a fresh interpreter; says whether PyAV was loaded and what was found.
PLAN_AND_TELL = """
import sys
from pathlib import Path
from r2v_pipeline.diagnostics import Diagnostics
from r2v_pipeline.plan.planner import PlanOptions, make_plan
found = Diagnostics()
plan = make_plan([Path(sys.argv[1])], PlanOptions(), found)
print("av" in sys.modules, len(plan.shots), [str(d) for d in found.errors])
"""


def plan_in_a_new_process(episode: Path, cache: str) -> str:
    env = {**os.environ, CACHE_VARIABLE: cache}
    done = subprocess.run([sys.executable, "-c", PLAN_AND_TELL, str(episode)], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def errors(episode: Path, cache: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Plan with the cache folder ``cache`` (or "off"); the errors found."""
    monkeypatch.setenv(CACHE_VARIABLE, cache)
    found = Diagnostics()
    make_plan([episode], PlanOptions(), found)
    return [d.message for d in found.errors]


@pytest.fixture
def episode(write: Write) -> Path:
    write("mia.png", synth.image_bytes(256, 256, "png"))
    write("kai.mp4", synth.video_bytes(256, 256, 2.0))
    return write("ep.yaml", EPISODE)


def test_a_second_validate_of_unchanged_files_does_not_load_pyav(episode: Path, tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    assert plan_in_a_new_process(episode, cache) == "True 1 []"  # probed: PyAV decoded the files
    assert plan_in_a_new_process(episode, cache) == "False 1 []"  # the same bytes: verdicts reused
    assert plan_in_a_new_process(episode, "off") == "True 1 []"


def test_changed_bytes_are_probed_afresh(episode: Path, tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    assert plan_in_a_new_process(episode, cache) == "True 1 []"
    (episode.parent / "mia.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not a picture" * 10)
    told = plan_in_a_new_process(episode, cache)
    assert told.startswith("True 0 [") and "mia.png" in told


def entries(root: Path) -> list[Path]:
    return sorted(root.glob("probe/*/*.json"))


def test_a_damaged_entry_is_no_entry(episode: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "cache"
    assert errors(episode, str(root), monkeypatch) == []
    first, second = entries(root)
    first.write_text("{not json")
    second.write_text(json.dumps({**json.loads(second.read_text()), "kind": "spreadsheet"}))
    cache = ProbeCache(first.parent)
    assert [cache.get(p.stem, 1) for p in (first, second)] == [None, None]
    assert errors(episode, str(root), monkeypatch) == []  # probed again, and written again
    assert all(cache.get(p.stem, json.loads(p.read_text())["bytes"]) is not None for p in (first, second))


def test_an_entry_is_only_for_its_own_bytes(episode: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "cache"
    errors(episode, str(root), monkeypatch)
    entry = entries(root)[0]
    size = json.loads(entry.read_text())["bytes"]
    cache = ProbeCache(entry.parent)
    assert cache.get(entry.stem, size) is not None
    assert cache.get(entry.stem, size + 1) is None  # same name, other length
    (entry.parent / ("0" * 64 + ".json")).write_text(entry.read_text())  # filed under another hash
    assert cache.get("0" * 64, size) is None


def test_a_cache_that_cannot_be_written_is_no_cache(episode: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert errors(episode, str(blocked / "cache"), monkeypatch) == []
    assert errors(episode, "off", monkeypatch) == []
    assert not list(tmp_path.rglob("*.json"))


def test_the_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_VARIABLE, "off")
    assert default_folder() is None
    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path))
    chosen = default_folder()
    assert chosen is not None and chosen.parent == tmp_path / "probe"
    monkeypatch.delenv(CACHE_VARIABLE)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    chosen = default_folder()
    assert chosen is not None and chosen.parent == tmp_path / "xdg" / "r2v" / "probe"
