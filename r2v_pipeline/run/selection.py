"""Which planned shots a command works on (--only) and makes again (--force, ...).

Apart from actions.py so that commands which only plan need not import the ledger.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Sequence

from ..diagnostics import did_you_mean
from ..plan.planner import PlannedShot


@dataclass(frozen=True)
class Selection:
    """Which shots a command works on, and which it makes again."""

    only: Sequence[str] = ()  # glob patterns over shot keys or ids; empty: all
    force: Sequence[str] = ()  # make these again even if done
    retry_failed: bool = False
    remake_reformatted: bool = False  # make again what an earlier version made with a request written differently

    def selected(self, shot: PlannedShot) -> bool:
        return not self.only or _matches(shot, self.only)

    def forced(self, shot: PlannedShot) -> bool:
        return _matches(shot, self.force)

    def unmatched(self, shots: Sequence[PlannedShot]) -> list[str]:
        """A message for each --only or --force pattern that names no planned shot."""
        names = sorted({name for shot in shots for name in _names(shot)})
        return [
            f"{flag} {pattern!r} matches no shot{did_you_mean(pattern, names)}"
            for flag, patterns in (("--only", self.only), ("--force", self.force))
            for pattern in patterns
            if not any(_matches(shot, (pattern,)) for shot in shots)
        ]


def _names(shot: PlannedShot) -> tuple[str, ...]:
    return (shot.key, shot.key.split("#")[0], shot.shot, f"{shot.episode}/{shot.shot}")


def _matches(shot: PlannedShot, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns for name in _names(shot))
