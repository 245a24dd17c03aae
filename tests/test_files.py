"""Whole-or-nothing writes to a folder several hosts share (r2v_pipeline.files)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from r2v_pipeline.files import put_in_place, temporary_beside, write_atomically

REPO = Path(__file__).resolve().parent.parent


def test_writers_in_several_processes_never_collide_and_a_reader_never_sees_half(tmp_path: Path) -> None:
    """Three processes (hosts on one mount) write the same report 150 times each, each
    its own large text, while this process reads it: every write succeeds, every read
    is one writer's whole text, and no temporary file is left."""
    target = tmp_path / "report.html"
    writer = (
        "import sys; sys.path.insert(0, {root!r}); from pathlib import Path; from r2v_pipeline.files import write_atomically\n"
        "for i in range(150): write_atomically(Path({target!r}), sys.argv[1] * 20000)\n"
    ).format(root=str(REPO), target=str(target))
    writers = [subprocess.Popen([sys.executable, "-c", writer, letter]) for letter in "abc"]
    seen: set[str] = set()
    while any(w.poll() is None for w in writers):
        try:
            text = target.read_text()
        except FileNotFoundError:
            continue
        seen.add(text)
    assert [w.wait() for w in writers] == [0, 0, 0]
    assert seen <= {letter * 20000 for letter in "abc"}, sorted(len(t) for t in seen)
    assert target.read_text() in {letter * 20000 for letter in "abc"}
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_a_new_file_gets_the_mode_open_would_give_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.json"
    write_atomically(fresh, "{}")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask  # not mkstemp's private 0600
    kept = tmp_path / "kept.yaml"
    kept.write_text("a")
    kept.chmod(0o640)
    write_atomically(kept, "b", sync=True)
    assert kept.read_text() == "b" and stat.S_IMODE(kept.stat().st_mode) == 0o640


def test_a_file_written_through_a_temporary_path_gets_the_mode_open_would_give(tmp_path: Path) -> None:
    """As a cut is written (its muxer needs a path): its owner's to write while written,
    even over a read-only file; then readable by others as a plain file is, or with the
    old file's mode."""
    umask = os.umask(0)
    os.umask(umask)
    for dest, mode in ((tmp_path / "ep1.mp4", 0o666 & ~umask), (tmp_path / "ep2.mp4", 0o444)):
        if mode == 0o444:
            dest.write_bytes(b"old")
            dest.chmod(mode)
        partial = temporary_beside(dest, ".part")
        assert stat.S_IMODE(partial.stat().st_mode) & 0o600 == 0o600
        partial.write_bytes(b"cut")
        put_in_place(partial, dest)
        assert stat.S_IMODE(dest.stat().st_mode) == mode and dest.read_bytes() == b"cut"
        assert not partial.exists()


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "ep.selects.yaml"
    target.write_text("old")

    class Unwritable(str):  # fails half way, as a full disk would
        def encode(self, *_: object) -> bytes:  # type: ignore[override]
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_atomically(target, Unwritable("new"))
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["ep.selects.yaml"]


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.text(), st.binary()))
def test_what_is_written_is_what_is_read(tmp_path_factory: pytest.TempPathFactory, data: str | bytes) -> None:
    target = tmp_path_factory.mktemp("w") / "x"
    write_atomically(target, data)
    assert target.read_bytes() == (data.encode("utf-8") if isinstance(data, str) else data)


def test_temporary_names_beside_a_file_are_each_writers_own(tmp_path: Path) -> None:
    dest = tmp_path / "ep01.mp4"
    names = {temporary_beside(dest, ".part") for _ in range(50)}
    assert len(names) == 50
    assert all(p.parent == tmp_path and p.name.startswith(".ep01.mp4.") and p.name.endswith(".part") for p in names)
