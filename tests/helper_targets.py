"""Functions the helper-process tests ask a helper to run (a module it can import)."""

from __future__ import annotations

import json
import os
import sys


def pid() -> int:
    return os.getpid()


def echo(*args: object) -> tuple[object, ...]:
    return args


def fail(message: str) -> None:
    raise ValueError(message)


def die_unless_in(process: int) -> int:
    """Dies (no answer, as a helper killed mid-call) unless run in ``process``; returns its pid."""
    if os.getpid() != process:
        os._exit(3)
    return process


def chatty(value: int) -> int:
    print("a module that prints", value)  # to standard output: must not break the answers
    sys.stdout.flush()
    return value * 2


def json_module() -> str:
    return json.__file__ or ""
