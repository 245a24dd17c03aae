"""Billed seconds of one request, by the provider's billing rule."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Sequence

from .spec import BillingRule, Kind

MILLI = Decimal("0.001")


@dataclass(frozen=True)
class Billed:
    """Seconds one request bills: of the video made, and of the reference videos taken in."""

    output: Decimal
    input: Decimal
    exact: bool = True  # False when a video's length was unknown and its full cap assumed

    @property
    def total(self) -> Decimal:
        return self.output + self.input


def seconds(value: float | Decimal) -> Decimal:
    """A duration as the billing arithmetic uses it: a Decimal to the millisecond."""
    return Decimal(str(value)).quantize(MILLI, rounding=ROUND_HALF_UP)


def as_number(value: Decimal | None) -> float | int | None:
    """A Decimal as JSON shows it: 5, not 5.000; 1.65, not "1.65"."""
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def billed_seconds(
    rule: BillingRule | None,
    output_seconds: int,
    references: Sequence[tuple[Kind, Decimal | None]],
) -> Billed:
    """Output seconds plus each reference video's length up to its share of the cap.

    ``references`` holds (kind, length) for every image and video reference; a
    first frame is not a reference. A video of unknown length (a remote URL)
    is counted at its full cap, so the figure is an upper bound.
    """
    output = Decimal(output_seconds)
    videos = [length for kind, length in references if kind == "video"]
    if rule is None or not videos:
        return Billed(output, Decimal(0))
    sharers = len(videos) if rule.split_over == "videos" else len(references)
    cap = rule.caps[min(sharers, max(rule.caps))]
    billed = [cap if length is None else min(length, cap) for length in videos]
    return Billed(output, sum(billed, Decimal(0)), exact=None not in videos)


def bill_differs(planned: Billed, at_least: bool, billed: Decimal) -> bool:
    """Whether the provider billed other than the plan said: an exact plan must match to the
    millisecond; an upper bound ("at most": a remote video's length unknown) may be
    undercut; a floor ("at least": fields sent unchecked) may be exceeded."""
    billed = seconds(billed)
    if at_least:
        return billed < planned.total
    if not planned.exact:
        return billed > planned.total
    return billed != planned.total
