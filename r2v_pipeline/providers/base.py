"""The one small interface every provider client offers the runner.

A submit's outcome says what is known about money: ``Submitted`` (a task
exists), ``Refused`` (the provider said no: nothing to retry, nothing billed),
``Busy`` (429/5xx: no task, retry later), ``Unsent`` (it never reached the
server: retry), ``Unknown`` (it may have reached the server: reconcile, never
blindly repeat).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Protocol, Union

import httpx

from ..catalog.request import OutgoingRequest


@dataclass(frozen=True)
class Submitted:
    """A submit the provider answered with a task: paid for."""

    task_id: str


@dataclass(frozen=True)
class Refused:
    """A submit the provider refused: no task was made."""

    code: str
    message: str
    status: int


@dataclass(frozen=True)
class Busy:
    """A submit the provider turned away for now (rate limit, full queue): no task was made, try again."""

    code: str
    message: str
    retry_after: float | None = None


@dataclass(frozen=True)
class Unsent:
    """A submit that provably never reached the provider."""

    message: str
    unreachable: bool = False  # no connection could be made at all (refused, DNS, connect timeout)


@dataclass(frozen=True)
class Unknown:
    """A submit whose answer was lost: a task may or may not exist."""

    message: str


SubmitOutcome = Union[Submitted, Refused, Busy, Unsent, Unknown]

TaskState = Literal["pending", "running", "succeeded", "failed", "canceled", "unknown"]


@dataclass(frozen=True)
class TaskStatus:
    """A task as the provider reports it: state, video URL, usage, error, times."""

    state: TaskState
    video_url: str | None = None
    usage: dict[str, Any] | None = None
    code: str | None = None
    message: str | None = None
    submitted: float | None = None  # provider times, epoch seconds
    started: float | None = None
    ended: float | None = None
    prompt: str | None = None  # the prompt the provider reports back (succeeded tasks)
    billed: float | None = None  # seconds the provider says it billed, where it says (usage)
    billing_note: str | None = None  # how the provider's usage was read, where it was unclear


@dataclass(frozen=True)
class ListedTask:
    """A task as the provider's task list shows it."""

    task_id: str
    state: TaskState
    model: str
    created: float | None = None  # provider time, epoch seconds


class Transient(Exception):
    """A query that may succeed if asked again (network trouble, 429, 5xx)."""

    def __init__(self, message: str, retry_after: float | None = None, throttled: bool = False, unreachable: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.throttled = throttled
        self.unreachable = unreachable  # no connection could be made: the provider is not reachable


class Unsendable(Exception):
    """The request cannot be sent as planned (a local file changed since the plan)."""

    code = "FileChanged"


class ProviderError(Exception):
    """A query the provider refuses for good (a bad key, no permission)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ProviderTime:
    """The provider's clock as the runner sees it. Real providers keep wall time;
    the simulator's runs faster, ``scale`` wall seconds per provider second."""

    now: Callable[[], float] = time.time
    scale: float = 1.0


class UploadCache(Protocol):
    """Uploads an earlier request made, still alive at the provider (the run's ledger)."""

    def upload(self, sha256: str, account: str, model: str, alive_until: float) -> str | None: ...

    def remember_upload(self, sha256: str, account: str, model: str, url: str, expires_at: float) -> None: ...


@dataclass(frozen=True)
class Connection:
    """What a provider's client factory is given (the registry names the factory)."""

    base_url: str
    key: str
    time: ProviderTime
    client: httpx.AsyncClient
    workspace: str | None = None  # a DashScope workspace id, where the target names one
    uploads: UploadCache | None = None


@dataclass(frozen=True)
class Prepared:
    """A request ready to send: its final body and headers beyond authentication."""

    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    reused_uploads: tuple[str, ...] = ()  # sha256 of files sent as uploads an earlier request made


class Provider(Protocol):
    name: str
    base_url: str
    account: str  # who the quotas count against: a hash, never the key
    time: ProviderTime

    async def prepare(self, request: OutgoingRequest, fresh_uploads: bool = False) -> Prepared:
        """Turn the plan's body into the one to send (local files uploaded or inlined);
        ``fresh_uploads``: do not reuse earlier uploads (the provider forgot them)."""

    async def submit(self, request: Prepared) -> SubmitOutcome: ...

    async def status(self, task_id: str) -> TaskStatus:
        """Raises Transient or ProviderError."""

    async def candidates(self, model: str, since: float, until: float) -> list[str] | None:
        """Task ids of ``model`` created between two provider times, to reconcile an
        ambiguous submit; None when the provider cannot list its tasks that way."""

    async def recent_tasks(self, since: float, until: float) -> list[ListedTask] | None:
        """Every task of the account created between two provider times (one paged
        query), to find tasks a lost ledger forgot; None when the provider's tasks
        cannot be matched to requests."""

    async def list_states(self, since: float, until: float) -> dict[str, TaskState] | None:
        """The state of every task of the account created between two provider times, as
        the task list shows it (few queries, for watching many tasks at once); None when
        the provider cannot list its tasks that way. A task missing from the answer is
        not known to have ended: ask it on its own."""

    async def aclose(self) -> None: ...


def retry_after(response: httpx.Response) -> float | None:
    """Seconds a server asks to wait; none documents it, but honour it if sent."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


# No connection was made: the server cannot have seen the request, and is not reachable now.
UNREACHABLE = (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol)


def classify_transport_error(error: httpx.HTTPError) -> Unsent | Unknown:
    """Whether a failed request provably never reached the server."""
    if isinstance(error, (*UNREACHABLE, httpx.PoolTimeout)):
        return Unsent(f"{type(error).__name__}: {error}", unreachable=isinstance(error, UNREACHABLE))
    # Timeouts and drops after the request went out (read/write errors, the server
    # closing without an answer, an answer that cannot be read) may have created a task.
    return Unknown(f"{type(error).__name__}: {error}")


def transport_trouble(error: httpx.HTTPError, what: str = "") -> Transient:
    """A query or upload that failed on the way: worth asking again; ``unreachable``
    when no connection could be made at all."""
    return Transient(f"{what}{type(error).__name__}: {error}", unreachable=isinstance(error, UNREACHABLE))


def busy_or_unknown(status: int, code: str | None, message: str, after: float | None) -> Busy | Unknown:
    """A 429 or 5xx answer. Said by the provider itself (its error body has a code),
    it means no task was made; a bare 502/504 from a gateway on the way says nothing
    about whether the provider got the request."""
    if status == 429 or code:
        return Busy(code or f"HTTP{status}", message, after)
    return Unknown(f"HTTP {status} from something on the way, not the provider: {message}")


def redact(text: str, secret: str) -> str:
    """Provider and proxy messages are stored and shown: never with the key in them."""
    return text.replace(secret, "***") if secret else text
