"""A second Python process that imports one module ahead of time and runs its
functions when asked, so that work needing a heavy library overlaps the
command's own work on another core.

``r2v assemble`` is the user: OpenTimelineIO's import and adapters take about as
long as the join of an episode's videos, and need nothing from it but the clips'
lengths. The helper starts when the command does and imports OTIO while the
command plans and checks; the command hands it each cut's clips, joins the
videos meanwhile, then collects the timelines' texts and writes them itself
(the helper writes no file).

Calls and answers are pickled (same interpreter, same code, a pipe of our own)
and framed by length; one call is out at a time, so neither side can block
writing while the other does. Nothing here can change an outcome, only how long
it takes: with one core, no usable interpreter (a frozen or embedded one, or
one that does not greet within seconds), a helper that dies or answers garbage,
the function runs in this process instead, and an exception it raises in the
helper is raised here as it would have been.
"""

from __future__ import annotations

import importlib
import os
import pickle
import selectors
import struct
import subprocess
import sys
import time
from typing import IO, Any

_LENGTH = struct.Struct("!Q")
MAX_MESSAGE = 1 << 30  # [guess] far past any cut's timelines; a longer "length" is garbage, not a message
HELLO = "r2v helper"  # the helper's first frame: it runs serve(), so calls may follow
HELLO_WAIT = 5.0  # [guess] seconds: a Python starts in a fraction of one; what does not greet by then is not ours
# The helper imports from where this process does, in this order, and from nowhere
# else: not from the folder it runs in, which ``-c`` would put first (a user's
# ``yaml.py`` beside a manifest must not stand in for PyYAML).
_BOOT = "import sys; sys.path[:] = sys.argv[2:]; from r2v_pipeline.helper_process import serve; serve(sys.argv[1])"


class Helper:
    """Runs ``module``'s functions: in a helper process when one is running, else here."""

    def __init__(self, module: str, process: subprocess.Popen[bytes] | None = None):
        self.module, self._process = module, process
        self._greeted = False
        self._sent = self._received = 0  # calls sent, answers read (in the same order)
        self._early: dict[int, tuple[bool, Any]] = {}  # answers read before their call asked

    @classmethod
    def start(cls, module: str) -> Helper:
        """A helper process that imports ``module`` now, where a second core is free to
        run it; else one that runs the functions here when asked."""
        if not _can_start():
            return cls(module)
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, module, *sys.path],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # its failures surface as the same call failing here
                bufsize=0,  # whole frames are read and written below; no buffer to outguess the selector
            )
        except OSError:
            return cls(module)
        return cls(module, process)

    @property
    def separate(self) -> bool:
        """Whether calls go to a helper process (as far as this process knows yet)."""
        return self._process is not None

    def call(self, function: str, *args: Any) -> Call:
        """``module.function(*args)`` started; collect it with ``Call.result()``. Pickled, so
        the arguments are copies. An earlier call's answer is read first (kept for it)."""
        call = Call(self, function, args)
        if self._process is None:
            return call
        try:
            message = _framed((function, args))
        except Exception:  # arguments pickle cannot carry: this call is made here
            return call
        if not self._greeted_in_time() or not self._catch_up():
            return call
        try:
            assert self._process is not None and self._process.stdin is not None
            _write_all(self._process.stdin, message)
        except Exception:  # the helper is gone
            self.close()
            return call
        except BaseException:  # interrupted mid-frame: the stream can no longer be trusted
            self.close()
            raise
        self._sent += 1
        call.number = self._sent
        return call

    def close(self) -> None:
        """Stop the helper process. It holds nothing that needs a clean end (it writes no
        file), so it is killed rather than waited for: a command that stops early (a
        cut not ready) does not wait for an import it will not use."""
        process, self._process = self._process, None
        if process is None:
            return
        process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass

    def __enter__(self) -> Helper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def answer(self, number: int) -> tuple[bool, Any] | None:
        """The answer to the ``number``th call sent: (True, value) or (False, exception);
        None (and the helper stopped) when there is none to be had."""
        if number in self._early:
            return self._early.pop(number)
        if number <= self._received:  # read before, and taken
            return None
        answer = self._next()
        return answer if answer is not None and self._received == number else None

    def run_here(self, function: str, args: tuple[Any, ...]) -> Any:
        return getattr(importlib.import_module(self.module), function)(*args)

    def _greeted_in_time(self) -> bool:
        """Whether the helper has said it serves calls, waiting for that up to HELLO_WAIT.
        The greeting's bytes are known, so they are read as bytes against one deadline:
        a program that is not our helper may write anything, or a little, and stop."""
        if self._greeted:
            return True
        assert self._process is not None and self._process.stdout is not None
        expected, heard = _GREETING, b""
        deadline = time.monotonic() + HELLO_WAIT
        with selectors.DefaultSelector() as waiting:
            waiting.register(self._process.stdout, selectors.EVENT_READ)
            while len(heard) < len(expected) and expected.startswith(heard):
                left = deadline - time.monotonic()
                if left <= 0 or not waiting.select(left):
                    break
                chunk = os.read(self._process.stdout.fileno(), len(expected) - len(heard))
                if not chunk:
                    break
                heard += chunk
        self._greeted = heard == expected
        if not self._greeted:
            self.close()
        return self._greeted

    def _catch_up(self) -> bool:
        """Every earlier call's answer read (so that the helper never blocks writing one
        while this process writes a call); False when the helper is gone."""
        while self._process is not None and self._received < self._sent:
            answer = self._next()
            if answer is not None:
                self._early[self._received] = answer
        return self._process is not None

    def _next(self) -> tuple[bool, Any] | None:
        answer = self._read()
        self._received += 1
        if not (isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[0], bool) and (answer[0] or isinstance(answer[1], BaseException))):
            self.close()
            return None
        return answer

    def _read(self) -> Any:
        """The helper's next frame, unpickled; None (and the helper stopped) when it has none."""
        if self._process is None:
            return None
        try:
            return _receive(self._process.stdout)
        except Exception:  # ended, cut short, garbled, or not a pickle of ours
            self.close()
            return None
        except BaseException:  # interrupted mid-frame
            self.close()
            raise


class Call:
    """A function call handed to a helper, or to be run here when its result is asked."""

    def __init__(self, helper: Helper, function: str, args: tuple[Any, ...]):
        self.helper, self.function, self.args = helper, function, args
        self.number = 0  # which call sent to the helper process this is; 0: not sent

    def result(self) -> Any:
        """What the function returned, or its exception raised here. Ask once."""
        answer = self.helper.answer(self.number) if self.number else None
        if answer is None:
            return self.helper.run_here(self.function, self.args)
        ok, value = answer
        if ok:
            return value
        raise value


def _can_start() -> bool:
    """Whether a helper process can run beside this one to any gain: a second core, and
    an interpreter that runs ``-c`` (not a frozen application's or a host program's
    embedded one), on a system whose pipes a selector can wait on."""
    return _cores() >= 2 and bool(sys.executable) and not getattr(sys, "frozen", False) and os.name == "posix"


def _cores() -> int:
    """Processors this process may run on (its affinity, where the system says)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _framed(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


_GREETING = _framed(HELLO)


def _receive(stream: IO[bytes] | None) -> Any:
    """The next message; EOFError when the stream ends (before or inside one)."""
    assert stream is not None
    (length,) = _LENGTH.unpack(_read_exactly(stream, _LENGTH.size))
    if length > MAX_MESSAGE:
        raise ValueError(f"a message of {length:,} bytes")
    return pickle.loads(_read_exactly(stream, length))


def _read_exactly(stream: IO[bytes], n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _write_all(stream: IO[bytes], data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = stream.write(view)
        view = view[written if written is not None else 0 :]
    stream.flush()


def serve(module: str) -> None:
    """The helper's side: greet, import ``module``, then answer calls until the input ends."""
    # Answers go out on a copy of standard output; the descriptor itself, and sys.stdout,
    # now lead to standard error, so nothing the module prints can break the framing.
    stdin, stdout = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _write_all(stdout, _GREETING)
    target = importlib.import_module(module)
    while True:
        try:
            function, args = _receive(stdin)
        except EOFError:
            return
        try:
            answer: tuple[bool, Any] = (True, getattr(target, function)(*args))
        except Exception as error:
            answer = (False, error)
        try:
            _write_all(stdout, _framed(answer))
        except Exception:  # an answer pickle cannot carry, or the caller gone
            return  # a caller finding no answer runs the function itself
