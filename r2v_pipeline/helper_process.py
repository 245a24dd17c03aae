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
and framed by length, answered in the order asked. Nothing here can change an
outcome, only how long it takes: with one core, no interpreter to start, or a
helper that dies or answers garbage, the function runs in this process instead,
and an exception it raises in the helper is raised here as it would have been.
"""

from __future__ import annotations

import importlib
import os
import pickle
import struct
import subprocess
import sys
from typing import IO, Any

_LENGTH = struct.Struct("!Q")
MAX_MESSAGE = 1 << 30  # [guess] far past any cut's timelines; a longer "length" is garbage, not a message
# The helper imports from where this process does, in this order, and from nowhere
# else: not from the folder it runs in, which ``-c`` would put first (a user's
# ``yaml.py`` beside a manifest must not stand in for PyYAML).
_BOOT = "import sys; sys.path[:] = sys.argv[2:]; from r2v_pipeline.helper_process import serve; serve(sys.argv[1])"


class Helper:
    """Runs ``module``'s functions: in a helper process when one is running, else here."""

    def __init__(self, module: str, process: subprocess.Popen[bytes] | None = None):
        self.module, self._process = module, process
        self._sent = self._received = 0  # answers come in the order of the calls sent

    @classmethod
    def start(cls, module: str) -> Helper:
        """A helper process that imports ``module`` now, where a second core is free to
        run it; else one that runs the functions here when asked."""
        if _cores() < 2 or not sys.executable:
            return cls(module)
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, module, *sys.path],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # its failures surface as the same call failing here
            )
        except OSError:
            return cls(module)
        return cls(module, process)

    @property
    def separate(self) -> bool:
        """Whether calls go to a helper process (as far as this process knows yet)."""
        return self._process is not None

    def call(self, function: str, *args: Any) -> Call:
        """``module.function(*args)`` started; collect it with ``Call.result()``, in the
        order called. Pickled, so the arguments are copies."""
        call = Call(self, function, args)
        if self._process is None:
            return call
        try:
            message = _framed((function, args))
        except Exception:  # arguments pickle cannot carry: this call is made here
            return call
        try:
            assert self._process.stdin is not None
            self._process.stdin.write(message)
            self._process.stdin.flush()
        except (OSError, ValueError):  # the helper is gone
            self.close()
            return call
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

    def _answer(self, number: int) -> tuple[bool, Any] | None:
        """The answer to the ``number``th call sent (those before it, never collected, are
        passed over), or None (and the helper stopped) when there is none."""
        while self._process is not None and self._received < number:
            try:
                answer = _receive(self._process.stdout)
            except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, ImportError):
                answer = None
            self._received += 1
            if not (isinstance(answer, tuple) and len(answer) == 2):
                self.close()
            elif self._received == number:
                return answer
        return None

    def _run_here(self, function: str, args: tuple[Any, ...]) -> Any:
        return getattr(importlib.import_module(self.module), function)(*args)


class Call:
    """A function call handed to a helper, or to be run here when its result is asked."""

    def __init__(self, helper: Helper, function: str, args: tuple[Any, ...]):
        self.helper, self.function, self.args = helper, function, args
        self.number = 0  # which call sent to the helper process this is; 0: not sent

    def result(self) -> Any:
        """What the function returned, or its exception raised here. Ask once."""
        answer = self.helper._answer(self.number) if self.number else None
        if answer is None:
            return self.helper._run_here(self.function, self.args)
        ok, value = answer
        if ok:
            return value
        raise value


def _cores() -> int:
    """Processors this process may run on (its affinity, where the system says)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _framed(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def _receive(stream: IO[bytes] | None) -> Any:
    """The next message; EOFError when the stream ends (before or inside one)."""
    assert stream is not None
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError
    (length,) = _LENGTH.unpack(head)
    if length > MAX_MESSAGE:
        raise ValueError(f"a message of {length:,} bytes")
    data = stream.read(length)
    if len(data) < length:
        raise EOFError
    return pickle.loads(data)


def serve(module: str) -> None:
    """The helper's side: import ``module``, then answer calls until the input ends."""
    # Answers go out on a copy of standard output; the descriptor itself, and sys.stdout,
    # now lead to standard error, so nothing the module prints can break the framing.
    stdin, stdout = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
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
            stdout.write(_framed(answer))
            stdout.flush()
        except Exception:  # an answer pickle cannot carry, or the caller gone
            return  # a caller finding no answer runs the function itself
