"""Command-line values checked as argparse reads them, for ``r2v`` and ``r2v sim`` alike:
a bad one is a usage error (exit 2) that names the flag, never a traceback later."""

from __future__ import annotations

import argparse
import math
from decimal import Decimal, InvalidOperation
from typing import Callable


def url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError("must be an http:// or https:// URL")
    return text


def number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number") from None
    if math.isnan(value):
        raise argparse.ArgumentTypeError("must be a number")
    return value


def within(low: float, high: float, *, low_included: bool = False, says: str) -> Callable[[str], float]:
    """A number between two bounds (the upper one included; infinity never is)."""

    def check(text: str) -> float:
        value = number(text)
        above = value >= low if low_included else value > low
        if not (above and value <= high and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be {says}")
        return value

    return check


above_zero = within(0.0, math.inf, says="above 0")
not_negative = within(0.0, math.inf, low_included=True, says="0 or more")


def port(text: str) -> int:
    """A TCP port, 1-65535, or 0 for a free one."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be 0 (a free port) or 1-65535")
    return value


def amount(text: str) -> Decimal:
    """A budget: a finite decimal above 0, kept exact."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError("must be a number") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return value
