"""What a rerun reads and writes cheaply must stay right: a sidecar whose data is kept
between reads is read afresh once edited or replaced, and report.json's line-per-entry
layout is the same JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import given, strategies as st

from r2v_pipeline.report.build import rebased
from r2v_pipeline.report.json_text import report_json
from r2v_pipeline.run.store import read_json

HOUR_AGO = 3600


def settled(path: Path, data: dict, age: float = HOUR_AGO) -> os.stat_result:
    """Write ``data`` to ``path`` as a file last changed ``age`` seconds ago."""
    path.write_text(json.dumps(data))
    when = path.stat().st_mtime - age
    os.utime(path, (when, when))
    return path.stat()


def test_a_sidecar_edited_in_place_with_its_old_times_is_read_afresh(tmp_path: Path) -> None:
    sidecar = tmp_path / "shot.json"
    before = settled(sidecar, {"fingerprint": "a" * 64})
    assert read_json(sidecar) == {"fingerprint": "a" * 64}
    assert read_json(sidecar) == {"fingerprint": "a" * 64}  # kept: the same answer again
    with open(sidecar, "r+") as f:  # same inode, same size, the old modification time put back
        f.write(json.dumps({"fingerprint": "b" * 64}))
    os.utime(sidecar, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = sidecar.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert read_json(sidecar) == {"fingerprint": "b" * 64}


def test_a_sidecar_replaced_by_another_file_is_read_afresh(tmp_path: Path) -> None:
    sidecar, other = tmp_path / "shot.json", tmp_path / "other.json"
    before = settled(sidecar, {"fingerprint": "a" * 64})
    assert read_json(sidecar)["fingerprint"] == "a" * 64
    settled(other, {"fingerprint": "c" * 64})
    os.utime(other, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(other, sidecar)
    assert read_json(sidecar)["fingerprint"] == "c" * 64


def test_a_sidecar_rewritten_at_once_is_read_afresh(tmp_path: Path) -> None:
    sidecar = tmp_path / "shot.json"
    for n in range(20):  # fresh files, faster than any file system's clock ticks
        sidecar.write_text(json.dumps({"n": n}))
        assert read_json(sidecar) == {"n": n}


def test_a_missing_or_broken_sidecar_reads_as_nothing(tmp_path: Path) -> None:
    sidecar = tmp_path / "shot.json"
    settled(sidecar, {"fingerprint": "a" * 64})
    assert read_json(sidecar)
    sidecar.unlink()
    assert read_json(sidecar) == {}
    sidecar.write_text("{not json")
    assert read_json(sidecar) == {}
    settled(sidecar, ["a list"])  # type: ignore[arg-type]
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
