"""A helper process runs a module's functions and hands back what they return or
raise; whatever goes wrong with it, the call is made here instead, with the same
outcome. Nothing the helper's module prints, nor a module of the same name in the
folder it runs in, changes its answers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from r2v_pipeline import helper_process
from r2v_pipeline.helper_process import Helper

TARGETS = "tests.helper_targets"


@pytest.fixture
def helper(monkeypatch: pytest.MonkeyPatch) -> Iterator[Helper]:
    """A helper process, even on a machine of one core (where start() runs calls here)."""
    monkeypatch.setattr(helper_process, "_cores", lambda: 2)
    with Helper.start(TARGETS) as started:
        assert started.separate
        yield started


def test_a_call_runs_in_the_helper_and_returns_its_value(helper: Helper) -> None:
    assert helper.call("pid").result() != os.getpid()
    args = ("text", 3, [1.5, None], {"a": Path("x/y")})
    assert helper.call("echo", *args).result() == args


def test_an_exception_in_the_helper_is_raised_here(helper: Helper) -> None:
    with pytest.raises(ValueError, match="^no such take$"):
        helper.call("fail", "no such take").result()
    assert helper.call("pid").result() != os.getpid()  # and the helper still answers


def test_a_helper_that_dies_mid_call_leaves_the_call_to_be_made_here(helper: Helper) -> None:
    assert helper.call("die_unless_in", os.getpid()).result() == os.getpid()
    assert not helper.separate  # gone: later calls are made here from the start
    assert helper.call("pid").result() == os.getpid()


def test_a_helper_stopped_before_its_answer_is_read_leaves_the_call_here(helper: Helper) -> None:
    call = helper.call("pid")
    helper.close()
    assert call.result() == os.getpid()


def test_what_the_module_prints_does_not_break_the_answers(helper: Helper) -> None:
    assert [helper.call("chatty", n).result() for n in range(3)] == [0, 2, 4]


def test_answers_follow_their_calls_whatever_order_they_are_asked_in(helper: Helper, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Helper, "run_here", lambda *_: pytest.fail("made here: an answer was lost"))
    first, second = helper.call("echo", 1), helper.call("pid")
    assert second.result() != os.getpid()
    assert first.result() == (1,)  # read before the second call went out, and kept for it
    assert helper.call("echo", 3).result() == (3,)


def test_large_calls_and_answers_pass_however_many_are_out(helper: Helper) -> None:
    """Megabytes each way (a long episode's timelines), the second call sent before the
    first answer is asked for: no side blocks writing while the other does."""
    import threading

    big = [f"{i:06d}" + "x" * 994 for i in range(3000)]  # ~3 MB pickled (distinct strings), far past a pipe's buffer
    results: list[object] = []

    def calls() -> None:
        first, second = helper.call("echo", big), helper.call("echo", big[:200])
        results.extend([second.result(), first.result()])

    worker = threading.Thread(target=calls, daemon=True)
    worker.start()
    worker.join(timeout=60)
    if worker.is_alive():
        helper.close()  # unblocks it
        pytest.fail("the calls did not finish: the pipes blocked")
    assert results == [(big[:200],), (big,)]
    assert helper.separate


@pytest.mark.parametrize("says", ["", "printf '> '; ", "printf 'hello, not a helper, at some length'; "])
def test_a_program_that_does_not_greet_as_the_helper_is_left_and_the_call_made_here(
    says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host program's embedded interpreter, say: it starts, perhaps writes a little or
    something else, but never runs the helper."""
    import threading

    impostor = tmp_path / "not-python"
    impostor.write_text(f"#!/bin/sh\n{says}exec sleep 30\n")
    impostor.chmod(0o755)
    monkeypatch.setattr(helper_process, "_cores", lambda: 2)
    monkeypatch.setattr(helper_process, "HELLO_WAIT", 0.5)
    monkeypatch.setattr(helper_process.sys, "executable", str(impostor))
    results: list[object] = []
    with Helper.start(TARGETS) as helper:
        assert helper.separate  # started, as far as anyone can tell yet
        worker = threading.Thread(target=lambda: results.append(helper.call("echo", "x" * 200_000).result()), daemon=True)
        worker.start()
        worker.join(timeout=30)
        if worker.is_alive():
            helper.close()
            pytest.fail("the call waited on a program that is not the helper")
        assert results == [("x" * 200_000,)]  # larger than a pipe holds: made here
        assert not helper.separate


def test_a_frozen_application_runs_the_calls_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(helper_process, "_cores", lambda: 2)
    monkeypatch.setattr(helper_process.sys, "frozen", True, raising=False)
    with Helper.start(TARGETS) as local:
        assert not local.separate
        assert local.call("pid").result() == os.getpid()


def test_arguments_pickle_cannot_carry_are_used_here(helper: Helper) -> None:
    here = lambda: "a lambda"  # noqa: E731 - the point: it cannot be pickled
    assert helper.call("echo", here).result() == (here,)


def test_the_helper_imports_from_where_this_process_does_not_from_its_folder(
    helper: Helper, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "json.py").write_text("raise SystemExit('the folder's json.py was imported')\n")
    monkeypatch.chdir(tmp_path)
    with Helper.start(TARGETS) as in_that_folder:
        assert in_that_folder.call("json_module").result() == json.__file__
        assert in_that_folder.separate


def test_one_core_runs_the_calls_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(helper_process, "_cores", lambda: 1)
    with Helper.start(TARGETS) as local:
        assert not local.separate
        assert local.call("pid").result() == os.getpid()


def test_a_frame_cut_short_or_of_absurd_length_is_no_message() -> None:
    import io

    whole = helper_process._framed(("echo", (1,)))
    assert helper_process._receive(io.BytesIO(whole)) == ("echo", (1,))
    for cut in (whole[:3], whole[:-1], b""):
        with pytest.raises(EOFError):
            helper_process._receive(io.BytesIO(cut))
    with pytest.raises(ValueError):
        helper_process._receive(io.BytesIO(helper_process._LENGTH.pack(helper_process.MAX_MESSAGE + 1)))


def test_leaving_early_stops_the_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command interrupted (Ctrl-C) or ending before it asks leaves no helper behind."""
    monkeypatch.setattr(helper_process, "_cores", lambda: 2)
    with pytest.raises(KeyboardInterrupt):
        with Helper.start(TARGETS) as helper:
            process = helper._process
            assert process is not None and process.poll() is None
            raise KeyboardInterrupt
    assert process.poll() is not None
