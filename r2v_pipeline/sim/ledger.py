"""What the simulator saw and did, for tests and benchmarks to read.

Every request (never a key: accounts are short hashes of keys, or the names
SimConfig.accounts gives), every task with the content fingerprint of its
submit, the video it makes and what it billed, every webhook delivery attempt.
Written on the event loop thread, read from any thread.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from typing import Any, Mapping

from ..catalog.spec import ModelSpec
from ..catalog.fingerprint import fingerprint
from ..catalog.wire import Request, build_body, map_strings
from .tasks import SUCCEEDED, Output, Task

# Headers that carry credentials; the ledger never keeps them.
SECRET_HEADERS = frozenset({"authorization", "x-freepik-api-key", "x-magnific-api-key", "cookie", "proxy-authorization"})


def account_name(name: str) -> str:
    """How the ledger names an account SimConfig.accounts gives its keys."""
    return f"acct-{name}"


def account_id(key: str) -> str:
    """The account a key stands for, as the ledger names it."""
    return "acct-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def content_fingerprint(spec: ModelSpec, request: Request, content: Mapping[str, str]) -> str:
    """The hash of the canonical submit body, each media URL whose bytes are known
    standing in by their sha256: the same shot resubmitted under a new oss:// key
    has the same fingerprint."""
    body = map_strings(build_body(spec, request), lambda s: f"sha256:{content[s]}" if s in content else s)
    return fingerprint(spec, body, {})


@dataclass(frozen=True)
class RequestEntry:
    """One request the simulator answered (credentials removed)."""

    seq: int
    at: float  # provider time, epoch seconds
    method: str
    path: str  # path and query
    status: int | None  # None: the connection was closed without an answer
    family: str  # dashscope, oss, freepik, sim
    kind: str  # submit, query, list, cancel, policy, upload, download, sim, …
    account: str | None
    task_id: str | None
    fault: str | None
    request_id: str
    headers: Mapping[str, str]  # credentials removed
    body: Any  # the parsed JSON body, when there was one


@dataclass(frozen=True)
class TaskEntry:
    """One task the simulator made, with what it was asked and what it billed."""

    task_id: str
    provider: str
    model: str
    account: str
    fingerprint: str
    submitted_at: float
    status: str
    billed_seconds: Decimal | None = None  # set when the task succeeds; failed tasks bill nothing
    failure_code: str | None = None
    fault: str | None = None
    adjusted: tuple[str, ...] = ()  # values the provider silently cut or dropped
    # The video the task makes: resolution, ratio, size, duration, audio (Freepik's
    # answers do not say; its tests read them here).
    output: Mapping[str, Any] | None = None


def task_entry(task: Task) -> TaskEntry:
    """A task as the ledger lists it, in its current state."""
    return TaskEntry(
        task.task_id, task.provider, task.model, task.account, task.fingerprint, task.submitted, task.status,
        billed_seconds=task.billed.total if task.status == SUCCEEDED else None,  # failed tasks bill nothing [doc]
        failure_code=task.failure.code if task.failure else None,
        fault=task.fault,
        adjusted=task.adjusted,
        output=output_facts(task.output),
    )  # fmt: skip


def output_facts(output: Output) -> dict[str, Any]:
    return {"resolution": output.resolution, "ratio": output.ratio, "size": output.size, "duration": output.seconds, "audio": output.audio}


@dataclass(frozen=True)
class WebhookEntry:
    """One webhook call the simulator made."""

    at: float
    task_id: str
    webhook_id: str
    url: str
    event: str  # the status announced
    attempt: int
    delivered: bool
    status: int | None = None  # the receiver's answer
    error: str | None = None
    fault: str | None = None


class Ledger:
    def __init__(self, max_requests: int = 1_000_000):
        self._lock = threading.Lock()
        self._requests: deque[RequestEntry] = deque(maxlen=max_requests)
        self._seq = 0
        self._tasks: dict[str, TaskEntry] = {}
        self._webhooks: list[WebhookEntry] = []

    # --- writing (event loop thread) ---------------------------------------

    def record_request(self, **fields: Any) -> RequestEntry:
        headers = {k: v for k, v in fields.pop("headers", {}).items() if k.lower() not in SECRET_HEADERS}
        with self._lock:
            self._seq += 1
            entry = RequestEntry(seq=self._seq, headers=headers, **fields)
            self._requests.append(entry)
        return entry

    def record_task(self, entry: TaskEntry) -> None:
        with self._lock:
            self._tasks[entry.task_id] = entry

    def update_task(self, task_id: str, **changes: Any) -> None:
        with self._lock:
            self._tasks[task_id] = replace(self._tasks[task_id], **changes)

    def record_webhook(self, entry: WebhookEntry) -> None:
        with self._lock:
            self._webhooks.append(entry)

    # --- reading (any thread) ----------------------------------------------

    @property
    def request_count(self) -> int:
        return self._seq

    def requests(self, kind: str | None = None, account: str | None = None, family: str | None = None) -> list[RequestEntry]:
        with self._lock:
            entries = list(self._requests)
        return [
            e
            for e in entries
            if (kind is None or e.kind == kind) and (account is None or e.account == account) and (family is None or e.family == family)
        ]

    def tasks(self, account: str | None = None) -> list[TaskEntry]:
        with self._lock:
            return [t for t in self._tasks.values() if account is None or t.account == account]

    def task(self, task_id: str) -> TaskEntry | None:
        with self._lock:
            return self._tasks.get(task_id)

    def webhooks(self, task_id: str | None = None) -> list[WebhookEntry]:
        with self._lock:
            return [w for w in self._webhooks if task_id is None or w.task_id == task_id]

    def accounts(self) -> list[str]:
        return sorted({t.account for t in self.tasks()})

    def submissions(self) -> dict[tuple[str, str], list[str]]:
        """(account, content fingerprint) -> the tasks created for it, oldest first."""
        found: dict[tuple[str, str], list[str]] = {}
        for t in sorted(self.tasks(), key=lambda t: t.submitted_at):
            found.setdefault((t.account, t.fingerprint), []).append(t.task_id)
        return found

    def duplicate_submissions(self) -> dict[tuple[str, str], list[str]]:
        """The (account, fingerprint) pairs that got more than one task: paid-twice candidates."""
        return {key: ids for key, ids in self.submissions().items() if len(ids) > 1}

    def billed_seconds(self, account: str | None = None) -> Decimal:
        return sum((t.billed_seconds for t in self.tasks(account) if t.billed_seconds is not None), Decimal(0))

    def to_json(self, since: int = 0) -> dict[str, Any]:
        """Everything, as JSON-ready data (GET /_sim/ledger)."""
        tasks = self.tasks()
        return {
            "requests": [asdict(e) for e in self.requests() if e.seq > since],
            "tasks": [{**asdict(t), "billed_seconds": _decimal(t.billed_seconds)} for t in tasks],
            "webhooks": [asdict(w) for w in self.webhooks()],
            "duplicates": [
                {"account": account, "fingerprint": fp, "task_ids": ids} for (account, fp), ids in self.duplicate_submissions().items()
            ],
            "billed_seconds": {account: str(self.billed_seconds(account)) for account in self.accounts()},
        }


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
