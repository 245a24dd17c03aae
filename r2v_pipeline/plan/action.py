"""The words for what a run does with a planned shot.

The plan's output shows them and the run carries them out (run/actions.py
decides which, from the ledger and the video store), so they live in the lower
of the two layers.
"""

from __future__ import annotations

from enum import Enum


class Action(str, Enum):
    """What a run does with a planned shot, decided from the ledger and the video store
    (actions.py); plan output shows it, the run carries it out."""

    SUBMIT = "submit"  # may create a billed task: the only one that spends
    RECONCILE = "reconcile"
    RESUME = "resume"
    DOWNLOAD = "download"
    SKIP = "skip"
    REUSE = "reuse"
    COPY = "copy"
    HELD = "held"  # a budget holds it back
    FAILED = "failed"
    AMBIGUOUS = "ambiguous"
    EXPIRED = "expired"
    ELSEWHERE = "elsewhere"
    UNSELECTED = "unselected"

    def __str__(self) -> str:
        return self.value

    @property
    def meaning(self) -> str:
        return _ACTION_MEANINGS[self]

    @property
    def spends(self) -> bool:
        """It may create a billed task (a budget counts it)."""
        return self is Action.SUBMIT

    @property
    def carried(self) -> bool:
        """This run carries it out; the others leave the shot as it is."""
        return self in _CARRIED

    @property
    def offline(self) -> bool:
        """Carried out from the video store, without the provider."""
        return self in (Action.REUSE, Action.COPY)

    @property
    def in_flight(self) -> bool:
        """A task an earlier run submitted may hold a provider slot now."""
        return self in (Action.RESUME, Action.RECONCILE)


_A = Action
_CARRIED = frozenset({_A.SUBMIT, _A.RECONCILE, _A.RESUME, _A.DOWNLOAD, _A.REUSE, _A.COPY})
_ACTION_MEANINGS = {
    _A.SUBMIT: "a new request",
    _A.RECONCILE: "an earlier submit may have gone through: find its task first",
    _A.RESUME: "poll the task an earlier run submitted",
    _A.DOWNLOAD: "fetch the finished video",
    _A.SKIP: "already downloaded",
    _A.REUSE: "its video is in the store: put in place, nothing billed",
    _A.COPY: "the same request as another shot: its video is shared, not made again",
    _A.HELD: "held back: it would cross the budget",
    _A.FAILED: "failed before",
    _A.AMBIGUOUS: "an earlier submit could not be matched to a task",
    _A.EXPIRED: "the provider's copy expired before it was downloaded",
    _A.ELSEWHERE: "another r2v run holds it",
    _A.UNSELECTED: "not selected",
}
