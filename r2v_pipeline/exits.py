"""The exit codes of ``r2v``: a contract with cron, make and CI, documented in the README."""

from __future__ import annotations

OK = 0  # all done: every selected shot's video is on disk
FAILED = 1  # some shot failed, was held back by a budget, is ambiguous, expired or unfinished
INVALID = 2  # invalid input or usage; nothing was sent
INTERNAL = 3  # a bug in r2v itself
UNREACHABLE = 4  # the provider could not be reached (or stayed busy): shots not sent stay planned; run again later
LOCKED = 5  # --exclusive, and another r2v run is working on the same ledger; nothing was done
ENVIRONMENT = 6  # the machine failed r2v: disk full, permission denied, an unusable folder or ledger, a ledger database that cannot be reached
INTERRUPTED = 130  # SIGINT/SIGTERM; the next run resumes
PLAN_SPENDS = 10  # ``plan --detailed-exitcode`` only: running would submit (spend); 0: it would not

MEANINGS = {
    OK: "all done",
    FAILED: "some shot failed, was held back, or needs attention (the report says which and why)",
    INVALID: "invalid input or usage; nothing was sent",
    INTERNAL: "an internal error (a bug: please report it)",
    UNREACHABLE: "the provider could not be reached; shots not sent stay planned and nothing was spent on them",
    LOCKED: "another r2v run holds the ledger (--exclusive); nothing was done",
    ENVIRONMENT: "the environment failed (disk full, permission denied, unusable folder or ledger, ledger database unreachable)",
    INTERRUPTED: "interrupted; the next run resumes",
}
