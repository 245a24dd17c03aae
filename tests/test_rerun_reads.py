"""What a rerun reads and writes cheaply must stay right: a sidecar whose data is kept
between reads (``sidecars_kept``) is read afresh once edited or replaced, and
report.json's line-per-entry layout is the same JSON."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, strategies as st

from r2v_pipeline.report.build import rebased
from r2v_pipeline.report.json_text import report_json
from r2v_pipeline.run import store
from r2v_pipeline.run.store import read_json, sidecars_kept

@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's clock a minute on: files written now count as settled (kept). Their
    change times stay real: the file system's own clock is what must tell edits apart."""
    clock = time.time
    monkeypatch.setattr(store, "time", SimpleNamespace(time=lambda: clock() + 60))


def next_tick() -> None:
    """Past the file system's clock tick (coarse: a few ms), so a write shows in the times."""
    time.sleep(0.05)


def test_a_settled_sidecar_is_kept_until_edited_in_place_even_with_its_old_times(tmp_path: Path, later: None) -> None:
    sidecar = tmp_path / "shot.json"
    sidecar.write_text(json.dumps({"fingerprint": "a" * 64}))
    before = sidecar.stat()
    with sidecars_kept():
        assert read_json(sidecar) == {"fingerprint": "a" * 64}
        assert read_json(sidecar) is read_json(sidecar)  # kept: the same answer again, not read again
        next_tick()
        with open(sidecar, "r+") as f:  # same inode, same size, the old modification time put back
            f.write(json.dumps({"fingerprint": "b" * 64}))
        os.utime(sidecar, ns=(before.st_atime_ns, before.st_mtime_ns))
        after = sidecar.stat()
        assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
        assert read_json(sidecar) == {"fingerprint": "b" * 64}


def test_a_sidecar_replaced_by_another_file_is_read_afresh(tmp_path: Path, later: None) -> None:
    sidecar, other = tmp_path / "shot.json", tmp_path / "other.json"
    sidecar.write_text(json.dumps({"fingerprint": "a" * 64}))
    other.write_text(json.dumps({"fingerprint": "c" * 64}))
    before = sidecar.stat()
    os.utime(other, ns=(before.st_atime_ns, before.st_mtime_ns))
    with sidecars_kept():
        assert read_json(sidecar)["fingerprint"] == "a" * 64
        os.replace(other, sidecar)
        assert read_json(sidecar)["fingerprint"] == "c" * 64


def test_a_sidecar_rewritten_at_once_is_read_afresh(tmp_path: Path) -> None:
    sidecar = tmp_path / "shot.json"
    with sidecars_kept():
        for n in range(20):  # fresh files, faster than the file system's clock ticks: never kept
            sidecar.write_text(json.dumps({"n": n}))
            assert read_json(sidecar) == {"n": n}


def test_outside_sidecars_kept_every_read_opens_the_file(tmp_path: Path, later: None) -> None:
    sidecar = tmp_path / "shot.json"
    sidecar.write_text(json.dumps({"fingerprint": "a" * 64}))
    with sidecars_kept():
        assert read_json(sidecar) is read_json(sidecar)
    assert read_json(sidecar) is not read_json(sidecar)  # what a run writes by is read fresh


def test_a_missing_or_broken_sidecar_reads_as_nothing(tmp_path: Path, later: None) -> None:
    sidecar = tmp_path / "shot.json"
    sidecar.write_text(json.dumps({"fingerprint": "a" * 64}))
    with sidecars_kept():
        assert read_json(sidecar)
        sidecar.unlink()
        assert read_json(sidecar) == {}
        sidecar.write_text("{not json")
        assert read_json(sidecar) == {}
        sidecar.write_text(json.dumps(["a list"]))
        assert read_json(sidecar) == {}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=10), JSON, max_size=6))
def test_report_json_is_the_same_data_one_entry_a_line(report: dict) -> None:
    text = report_json(report)
    assert json.loads(text) == report
    assert text.endswith("}\n")
    for key, value in report.items():  # each entry of a top-level list or table on a line of its own
        if isinstance(value, (list, dict)) and value:
            assert f"  {json.dumps(key, ensure_ascii=False)}: {'[' if isinstance(value, list) else '{'}\n" in text


@given(st.lists(st.one_of(st.none(), st.text(alphabet="abc/.-", min_size=1, max_size=12)), max_size=5))
def test_rebased_starts_every_path_and_nothing_else(outputs: list[str | None]) -> None:
    report = {
        "run": {"id": "x"},
        "shots": [{"key": f"s{i}", "output": o} for i, o in enumerate(outputs)],
        "cuts": [{"episode": "e", "video": "e.mp4", "current": True, "timelines": [{"format": "EDL", "path": "e.edl"}]}],
        "recovered": [{"key": "r", "output": None}, {"key": "q", "output": "superseded/q.mp4"}],
    }
    seen = rebased(report, "../../")
    assert [s["output"] for s in seen["shots"]] == [("../../" + o) if o else o for o in outputs]
    assert seen["cuts"][0]["video"] == "../../e.mp4" and seen["cuts"][0]["timelines"][0]["path"] == "../../e.edl"
    assert [r["output"] for r in seen["recovered"]] == [None, "../../superseded/q.mp4"]
    assert seen["run"] == report["run"]
    assert [s["output"] for s in report["shots"]] == outputs  # the report itself is left as it was


NAMES = st.tuples(st.sampled_from(["", "."]), st.text("ab.", max_size=4), st.sampled_from([".tmp", ".link", ".part", ".json", ".mp4", "tmp", ""]))


@given(st.sets(NAMES.map("".join).filter(lambda n: n not in ("", ".", "..")), max_size=8))
def test_a_sweep_removes_what_the_temporaries_patterns_match_and_nothing_else(tmp_path_factory: pytest.TempPathFactory, names: set[str]) -> None:
    folder = tmp_path_factory.mktemp("shard")
    long_ago = time.time() - 400 * 86400  # past every kind's age of death
    for name in names:
        (folder / name).write_bytes(b"")
        os.utime(folder / name, (long_ago, long_ago))
    expected = {p for pattern in (".*.tmp", ".*.link", ".*.part") for p in folder.glob(pattern)}
    gone = store.sweep(folder, lambda _: False, time.time())
    assert set(gone) == expected
    assert {p.name for p in folder.iterdir()} == {n for n in names} - {p.name for p in expected}
