"""The live board: what a person sees on a terminal during a run and after it ends.

The run is started in a pseudo-terminal and its bytes are rendered by a terminal
emulator (pyte) into the screen a person would see; the screens are kept as test
artifacts (R2V_TEST_ARTIFACTS, default test-artifacts/)."""

from __future__ import annotations

import fcntl
import html
import io
import json
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Callable

import pyte
from hypothesis import given, strategies as st

from r2v_pipeline import exits
from r2v_pipeline.run.board import COLUMN, ORDER, Board, BoardShot
from r2v_pipeline.run.progress import Log

from .test_run import StartSim

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("R2V_TEST_ARTIFACTS", REPO / "test-artifacts"))
COLS, ROWS = 150, 45
HIDE, SHOW = b"\x1b[?25l", b"\x1b[?25h"


class Terminal:
    """A command in a pseudo-terminal, its output rendered as a screen."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str]):
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env, close_fds=True, start_new_session=True)
        os.close(slave)
        self.master = master
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = b""

    def read(self, until: Callable[[], bool], timeout: float) -> bool:
        """Render output until ``until()`` holds or the command has ended and said all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if until():
                return True
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if not ready:
                if self.process.poll() is not None:
                    return until()
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:  # the other side closed: all was said
                return until()
            if not data:
                return until()
            self.raw += data
            self.stream.feed(data)
        return until()

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display).rstrip() + "\n"

    def html(self) -> str:
        """The screen as a page, colours kept: what the screenshot shows."""
        rows = []
        for y in range(self.screen.lines):
            cells = []
            for x in range(self.screen.columns):
                char = self.screen.buffer[y][x]
                style = f"color:{_colour(char.fg)};" + ("font-weight:bold;" if char.bold else "")
                cells.append(f'<span style="{style}">{html.escape(char.data)}</span>' if char.fg != "default" or char.bold else html.escape(char.data))
            rows.append("".join(cells).rstrip())
        body = "\n".join(rows).rstrip()
        return f'<!doctype html><meta charset="utf-8"><body style="margin:0;background:#1e1e1e"><pre style="margin:12px;color:#ddd;font:13px/1.25 monospace">{body}</pre>'

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        os.close(self.master)


def _colour(name: str) -> str:
    named = {"default": "#ddd", "cyan": "#4fc1d6", "blue": "#6b9bff", "green": "#6ccf6c", "red": "#f06a6a", "yellow": "#e8c95a", "magenta": "#d27ad2", "white": "#fff", "black": "#000"}
    return named.get(name, f"#{name}" if len(name) == 6 else "#ddd")


def screenshot(page_html: str, name: str) -> None:
    """The page as a PNG in the artifacts, where Debian's chromium is installed (CI installs it)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return
    from playwright.sync_api import sync_playwright

    page_file = keep(name.replace(".png", ".html"), page_html)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1180, "height": 640})
            page.goto(page_file.resolve().as_uri())
            page.screenshot(path=str(ARTIFACTS / name), full_page=True)
        finally:
            browser.close()


def run_in_terminal(tmp_path: Path, sim_url: str) -> Terminal:
    """Episode 1 on a terminal, after two of its shots ran in a log file: the ledger has
    learned how long wan2.7-r2v takes, so the other wan2.7-r2v shot shows an ETA."""
    shutil.copytree(REPO / "manifests" / "lighthouse", tmp_path / "lighthouse")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TERM": "xterm-256color", "LANG": "C.UTF-8", "HOME": str(tmp_path)}
    command = [sys.executable, "-m", "r2v_pipeline", "run", "--simulator", sim_url, "--out", "out", "--state", "state"]
    first = [*command, "lighthouse/ep01-the-storm.yaml", "--only", "cold-open", "--only", "arrival", "--log-format", "plain"]
    done = subprocess.run(first, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "\x1b" not in done.stderr, done.stderr  # a log file gets no board
    return Terminal([*command, "lighthouse/ep01-the-storm.yaml", "--budget-money", "100"], tmp_path, env)  # no --log-format: a terminal gets the board


def keep(name: str, text: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    path.write_text(text)
    return path


def test_the_board_during_a_run_and_the_last_screen_after_it(tmp_path: Path, start_sim: StartSim) -> None:
    sim = start_sim(time_scale=0.02, rate_clock="wall")  # 1-5 minute generations take 1.2-6 s: the board is seen working
    term = run_in_terminal(tmp_path, sim.base_url)
    try:
        assert term.read(lambda: " done " in term.text() and " running " in term.text(), timeout=120), term.text()
        during, during_page = term.text(), term.html()
        term.read(lambda: False, timeout=240)  # to the end of its output
    finally:
        term.close()
    after = term.text()
    keep("board-during-run.txt", during)
    keep("board-after-exit.txt", after)
    screenshot(during_page, "board-during-run.png")
    screenshot(term.html(), "board-after-exit.png")
    assert term.process.returncode == 0, after
    header = next(line for line in during.splitlines() if line.startswith("shot "))
    assert header.split() == ["shot", "state", "take", "account", "elapsed", "ETA", "billed", "s", "cost"]
    rows = [line for line in during.splitlines() if line.startswith("lighthouse/ep01/")]
    assert [r.split()[0] for r in rows] == [f"lighthouse/ep01/{s}" for s in ("storm-boards", "gull-visit", "night-watch#take1", "night-watch#take2")]
    assert "spent" in during and "USD of 100.00 USD budget" in during
    storm = next(r for r in rows if r.startswith("lighthouse/ep01/storm-boards "))  # wan2.7-r2v: its time was learned
    assert " ? " not in storm + " ", storm
    assert any(r.split()[1] == "done" and len(r.split()) >= 6 for r in rows)  # a done shot shows what it billed
    # After exit: the event lines and the summary, no board row, header or totals line left.
    lines = after.splitlines()
    assert lines[-1].startswith("6/6 done (4 downloaded, 2 skipped); report: "), after
    assert not [line for line in lines if line.startswith(("shot ", "▶"))], after
    assert all(" running " not in line and " queued " not in line for line in lines)
    assert term.raw.count(HIDE) >= 1 and term.raw.rfind(SHOW) > term.raw.rfind(HIDE)  # the cursor shown again
    assert not term.screen.cursor.hidden


def test_ctrl_c_takes_the_board_down_and_shows_the_cursor(tmp_path: Path, start_sim: StartSim) -> None:
    sim = start_sim(time_scale=0.05, rate_clock="wall")  # slow enough to be stopped mid-run
    term = run_in_terminal(tmp_path, sim.base_url)
    try:
        assert term.read(lambda: " running " in term.text(), timeout=120), term.text()
        os.killpg(term.process.pid, signal.SIGINT)  # as Ctrl-C does: the whole foreground group
        term.read(lambda: False, timeout=120)
    finally:
        term.close()
    after = term.text()
    keep("board-after-ctrl-c.txt", after)
    assert term.process.returncode == exits.INTERRUPTED, after
    assert "stopping: no new submits" in after
    assert not [line for line in after.splitlines() if line.startswith(("shot ", "▶"))], after
    assert term.raw.rfind(SHOW) > term.raw.rfind(HIDE) and not term.screen.cursor.hidden


def test_plain_and_json_logs_draw_no_board(tmp_path: Path) -> None:
    for style in ("plain", "json"):
        stream = io.StringIO()
        log = Log(style, stream)
        log.expect(1, [BoardShot("s/e/a", account="acct")])
        log.event("s/e/a", "submitted", task="t")
        log.tick()
        log.finish()
        text = stream.getvalue()
        assert "\x1b" not in text and "▶" not in text and len(text.splitlines()) == 1


def test_a_secret_never_reaches_the_board_or_the_lines() -> None:
    stream = io.StringIO()
    log = Log("json", stream).redacting(["sk-secret"])
    log.event("s/e/a", "failed", message="bad key sk-secret")
    log.note("key sk-secret refused", "environment", level="error", detail="sk-secret")
    assert "sk-secret" not in stream.getvalue() and stream.getvalue().count("***") == 3


events = st.lists(st.tuples(st.sampled_from(["s/e/a", "s/e/b", "s/e/c"]), st.sampled_from([*COLUMN, "retry submit", "note"])), max_size=30)


@given(events)
def test_every_shot_is_in_exactly_one_column(seen: list[tuple[str, str]]) -> None:
    board = Board()
    board.expect(3, [BoardShot("s/e/a", expected=60.0), BoardShot("s/e/b"), BoardShot("s/e/c", take=2)])
    for key, what in seen:
        board.event(key, what, {"billed_seconds": 5, "cost": 0.5} if what == "succeeded" else {})
    counts = board.counts()
    assert set(counts) == set(ORDER) and sum(counts.values()) == 3
    seconds, money = board.spent()
    billed = sum(1 for r in board.rows.values() if r.billed is not None)
    assert seconds == 5 * billed and money == 0.5 * billed
    for row in board.rows.values():
        eta = board.eta(row, time.monotonic())
        if row.state in ("done", "failed", "stalled"):
            assert eta == ""
        elif row.state == "fetching":
            assert eta == "now"
        elif row.shot.expected is None:
            assert eta == "?"
        elif row.state == "queued":
            assert eta == "~1:00"
        else:
            assert eta == "due" or (":" in eta and not eta.startswith("~"))


def test_a_pooled_shot_shows_the_account_it_was_sent_through() -> None:
    """A shot that may go through several accounts shows none until the pool chooses one."""
    board = Board()
    board.expect(2, [BoardShot("s/e/a"), BoardShot("s/e/b", account="main")])
    assert board.rows["s/e/a"].shot.account is None
    board.event("s/e/a", "submitted", {"task": "t-1", "account": "b"})
    board.event("s/e/b", "retry submit", {"account": "other"})  # only a submit says where it went
    assert board.rows["s/e/a"].shot.account == "b" and board.rows["s/e/b"].shot.account == "main"
    assert board.rows["s/e/a"].state == "running"


def test_the_board_is_drawn_only_on_a_terminal(tmp_path: Path) -> None:
    with open(tmp_path / "log.txt", "w") as file:
        assert Log.choose("tty", file).style == "plain"  # asked for, but a file cannot show it
        assert Log.choose(None, file).style == "plain"
        assert Log.choose("json", file).style == "json"


def test_a_plain_line_keeps_every_field_and_a_json_line_every_key() -> None:
    plain, lines = io.StringIO(), io.StringIO()
    for log in (Log("plain", plain, run_id="r1"), Log("json", lines, run_id="r1")):
        log.event("s/e/a", "failed", code="InvalidParameter", message="the prompt is empty")
        log.note("done", attempt=1)
    first = plain.getvalue().splitlines()
    assert first[0].endswith(" s/e/a failed code=InvalidParameter message=the prompt is empty") and first[1] == "done"
    event, note = (json.loads(line) for line in lines.getvalue().splitlines())
    assert event == {**event, "level": "error", "event": "failed", "run_id": "r1", "shot": "s/e/a", "code": "InvalidParameter", "message": "the prompt is empty"}
    assert note == {**note, "level": "info", "event": "note", "run_id": "r1", "shot": None, "message": "done", "attempt": 1}
