"""The words a run keeps and shows: a shot's state in the ledger, and what became of it.

Both are ``str`` enums whose values are the words the ledger stores and the
report, JUnit and ``r2v status`` show, so a ledger written before these types
existed reads back unchanged.
"""

from __future__ import annotations

from enum import Enum

from ..plan.action import Action


class LedgerState(str, Enum):
    """Where a shot stands in the ledger (see ledger.py for the picture)."""

    PLANNED = "planned"
    SUBMITTING = "submitting"  # written before the request goes out: a task may exist
    SUBMITTED = "submitted"  # the task id is known
    SUCCEEDED = "succeeded"  # the task made its video (billed); not yet fetched
    DOWNLOADED = "downloaded"
    FAILED = "failed"
    AMBIGUOUS = "ambiguous"  # a submit may have made a task nobody could find
    EXPIRED = "expired"  # the provider's copy went before it was fetched

    def __str__(self) -> str:
        return self.value

    @property
    def in_progress(self) -> bool:
        """A task is (or may be) running on the account: it holds a slot."""
        return self in IN_PROGRESS

    @property
    def unfinished(self) -> bool:
        """Paid, or maybe paid, and not yet on disk: a later run carries it on."""
        return self in UNFINISHED


IN_PROGRESS = frozenset({LedgerState.SUBMITTING, LedgerState.SUBMITTED})
UNFINISHED = frozenset({LedgerState.SUBMITTING, LedgerState.SUBMITTED, LedgerState.SUCCEEDED, LedgerState.AMBIGUOUS})

_S = LedgerState
# Every state a shot may move to from each state; None: no row yet. Writing any
# other move is a bug (it could lose a paid task), so the ledger refuses it.
TRANSITIONS: dict[LedgerState | None, frozenset[LedgerState]] = {
    # A planned shot; a paid video found in the store; a second paid task of a shot whose
    # row follows another (its own row, fetched aside as an earlier version's task is).
    None: frozenset({_S.PLANNED, _S.DOWNLOADED, _S.SUBMITTED}),
    _S.PLANNED: frozenset({_S.SUBMITTING, _S.SUBMITTED, _S.FAILED}),  # submit; adopt a found task; unsendable
    _S.SUBMITTING: frozenset({_S.SUBMITTED, _S.PLANNED, _S.FAILED, _S.AMBIGUOUS}),  # answered; provably no task; refused; unknown
    _S.SUBMITTED: frozenset({_S.SUCCEEDED, _S.FAILED, _S.PLANNED, _S.EXPIRED}),  # the task's end; PLANNED: failed, to submit again
    _S.SUCCEEDED: frozenset({_S.DOWNLOADED, _S.EXPIRED}),
    _S.DOWNLOADED: frozenset({_S.DOWNLOADED, _S.EXPIRED, _S.PLANNED}),  # fetched again; too late for that; --force
    # SUBMITTED from FAILED/AMBIGUOUS: a submit's answer that comes after another run
    # gave up on it names a paid task, which must be followed, not lost.
    _S.FAILED: frozenset({_S.PLANNED, _S.SUBMITTED}),  # --retry-failed, --force; a late answer
    _S.AMBIGUOUS: frozenset({_S.PLANNED, _S.SUBMITTED}),  # --force; a late answer
    _S.EXPIRED: frozenset({_S.PLANNED}),  # --force
}


class IllegalTransition(RuntimeError):
    """A bug: the run tried to move a shot between states the ledger does not allow."""


def check_transition(fingerprint: str, before: LedgerState | None, after: LedgerState) -> None:
    # Writing a state again is no move (two runs racing to record the same end).
    if after is not before and after not in TRANSITIONS[before]:
        raise IllegalTransition(f"internal error: shot {fingerprint[:12]} cannot go from {before or 'no row'} to {after}")


class ShotStatus(str, Enum):
    """What became of a planned shot in one run: the status the report, JUnit and the exit code read."""

    PENDING = "pending"  # not settled when the run stopped (a signal)
    DOWNLOADED = "downloaded"
    COPIED = "copied"
    REUSED = "reused"
    SKIPPED = "skipped"
    FAILED = "failed"
    HELD = "held"
    AMBIGUOUS = "ambiguous"
    EXPIRED = "expired"
    UNFINISHED = "unfinished"
    UNSENT = "unsent"
    ELSEWHERE = "elsewhere"
    UNSELECTED = "unselected"

    def __str__(self) -> str:
        return self.value

    @property
    def done(self) -> bool:
        """Its video is on disk, made now or before."""
        return self in (ShotStatus.DOWNLOADED, ShotStatus.SKIPPED, ShotStatus.COPIED, ShotStatus.REUSED)

    @property
    def needs_attention(self) -> bool:
        """A person should look (and the run does not exit 0)."""
        return self in _ATTENTION

    @property
    def billed(self) -> bool:
        """Its request may have been billed: a failed task bills nothing, a shot not
        submitted neither; one whose task may exist (ambiguous, unfinished) or existed
        (expired before its download) counts until the provider says otherwise."""
        return self not in _NOT_BILLED

    @property
    def failing(self) -> bool:
        """A failed test case in JUnit."""
        return self in _FAILING

    @property
    def skipped(self) -> bool:
        """A skipped test case in JUnit: nothing of it was tried."""
        return self in (ShotStatus.HELD, ShotStatus.ELSEWHERE, ShotStatus.UNSELECTED)

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]

    @classmethod
    def settled(cls, action: Action) -> ShotStatus:
        """The status of a shot this run does not carry, by its decided action."""
        return cls.SKIPPED if action is Action.SKIP else cls(action.value)

    @classmethod
    def of_record(cls, state: LedgerState | None) -> ShotStatus:
        """The status of a shot this run carried, by the ledger state it was left in."""
        if state is None:
            return cls.FAILED
        return _BY_STATE.get(state, cls.UNFINISHED)


_ATTENTION = frozenset(
    {ShotStatus.PENDING, ShotStatus.FAILED, ShotStatus.HELD, ShotStatus.AMBIGUOUS, ShotStatus.EXPIRED, ShotStatus.UNFINISHED, ShotStatus.UNSENT, ShotStatus.ELSEWHERE}
)
_NOT_BILLED = frozenset({ShotStatus.FAILED, ShotStatus.HELD, ShotStatus.ELSEWHERE, ShotStatus.UNSELECTED, ShotStatus.UNSENT})
_FAILING = frozenset({ShotStatus.FAILED, ShotStatus.EXPIRED, ShotStatus.AMBIGUOUS, ShotStatus.UNFINISHED, ShotStatus.UNSENT})
_BY_STATE = {
    LedgerState.DOWNLOADED: ShotStatus.DOWNLOADED,
    LedgerState.FAILED: ShotStatus.FAILED,
    LedgerState.AMBIGUOUS: ShotStatus.AMBIGUOUS,
    LedgerState.EXPIRED: ShotStatus.EXPIRED,
}
_MEANINGS = {
    ShotStatus.PENDING: "not settled when the run stopped; the next run carries it on",
    ShotStatus.DOWNLOADED: "made and downloaded by this run",
    ShotStatus.COPIED: "the same request as another shot: its video is shared",
    ShotStatus.REUSED: "its video was in the store (an undone edit, a renamed shot): nothing billed",
    ShotStatus.SKIPPED: "already downloaded by an earlier run",
    ShotStatus.FAILED: "failed; the reason says why",
    ShotStatus.HELD: "held back: it would cross a budget",
    ShotStatus.AMBIGUOUS: "a submit may have gone through but could not be matched to a task",
    ShotStatus.EXPIRED: "the provider's copy expired before it was downloaded",
    ShotStatus.UNFINISHED: "in progress when the run ended; the next run resumes it",
    ShotStatus.UNSENT: "not sent: the provider could not be reached or stayed busy; nothing billed, the next run sends it",
    ShotStatus.ELSEWHERE: "another r2v run holds it",
    ShotStatus.UNSELECTED: "not selected by --only",
}


class Reconciled(Enum):
    """What looking for the task of an unanswered submit found."""

    ADOPTED = "adopted"  # its task: the shot is submitted
    NO_TASK = "no task"  # provably none: submitting again is safe
    AMBIGUOUS = "ambiguous"  # the provider cannot tell: the shot waits for a person
