"""Fault injection: a seeded spec, and decisions that are pure functions.

Spec grammar (``r2v sim --faults SPEC``, ``SimConfig(faults=SPEC)``)::

    SPEC  := ITEM ("," ITEM)*            empty: no faults
    ITEM  := NAME "=" ARGS ["@" SCOPE ("+" SCOPE)*]
    SCOPE := KIND | FAMILY | FAMILY "." KIND

    NAME              ARGS        effect
    throttle          P           answer 429
    burst429          N[:P]       answer 429 to the first N tries of a request (chosen with P, default 1)
    error500          P           answer 500 (InternalError)
    error503          P           answer 503 (DashScope ModelUnavailable, Freepik "Service Unavailable")
    drop_before_body  P           close the connection without processing the request or answering
    drop_after_body   P           process the request, then close without answering (an ambiguous submit)
    slow              P:SECONDS   answer SECONDS later, in wall seconds (client timeouts run on real time)
    task_internal_error P         the task ends FAILED with InternalError (not billed)
    cut_download      P           a download announces its full length and closes half way
    arrearage         ACCOUNT:N   the account answers 400 Arrearage (an overdue bill) to every
                                  submit after its first N (ACCOUNT: a name R2V_SIM_DASHSCOPE_ACCOUNTS
                                  gives, or the account id the ledger shows)

    P is a probability from 0 to 1. KIND is one of submit, query, list, cancel,
    policy, upload, download, webhook, task; FAMILY is dashscope, oss (uploads
    and result downloads) or freepik. Without a scope an item applies to every
    HTTP endpoint kind (task_internal_error: to tasks; cut_download: to
    downloads); webhook deliveries are only hit when a scope names them, and
    there any answer or drop fault loses that delivery attempt.

    Example: throttle=0.1@submit,error503=0.05,drop_after_body=0.02@submit,
             slow=0.05:2.0@query,task_internal_error=0.05,cut_download=0.1

Determinism: whether an item fires for a request is a pure function of (seed,
the item as written, a stable key of the request, and how many times that key
was seen before). The key is method, target, account and body hash for HTTP
requests, the task id for tasks and the webhook id for deliveries, so the
order in which concurrent clients arrive changes no outcome.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Literal

Effect = Literal["reply", "drop_before", "drop_after", "delay", "cut", "task"]

KINDS = ("submit", "query", "list", "cancel", "policy", "upload", "download", "webhook", "task")
HTTP_KINDS = frozenset({"submit", "query", "list", "cancel", "policy", "upload", "download"})


@dataclass(frozen=True)
class FaultKind:
    """One kind of fault the spec can name: its effect, arguments and the endpoints it hits."""

    effect: Effect
    status: int | None  # the HTTP status of a "reply" fault
    args: Literal["p", "p:seconds", "n[:p]", "account:n"]
    kinds: frozenset[str]  # endpoint kinds hit when the item has no scope
    about: str
    code: str | None = None  # the error code of a "reply" fault, where not the status's stock one


FAULTS: dict[str, FaultKind] = {
    "throttle": FaultKind("reply", 429, "p", HTTP_KINDS, "answer 429"),
    "burst429": FaultKind("reply", 429, "n[:p]", HTTP_KINDS, "answer 429 to the first N tries of a request"),
    "error500": FaultKind("reply", 500, "p", HTTP_KINDS, "answer 500"),
    "error503": FaultKind("reply", 503, "p", HTTP_KINDS, "answer 503"),
    "drop_before_body": FaultKind("drop_before", None, "p", HTTP_KINDS, "close without processing or answering"),
    "drop_after_body": FaultKind("drop_after", None, "p", HTTP_KINDS, "process, then close without answering"),
    "slow": FaultKind("delay", None, "p:seconds", HTTP_KINDS, "answer SECONDS (wall) later"),
    "task_internal_error": FaultKind("task", None, "p", frozenset({"task"}), "the task fails with InternalError"),
    "cut_download": FaultKind("cut", None, "p", frozenset({"download"}), "close a download half way"),
    "arrearage": FaultKind("reply", 400, "account:n", frozenset({"submit"}), "the account answers Arrearage after N submits", "Arrearage"),
}


class FaultSpecError(ValueError):
    """A fault spec that does not follow the grammar; the message names the item."""


@dataclass(frozen=True)
class FaultItem:
    """One fault of a spec, as parsed: name, probability, arguments, scope."""

    name: str
    probability: float
    seconds: float = 0.0  # slow
    count: int = 0  # burst429; arrearage: submits let through first
    account: str = ""  # arrearage: whose
    scope: frozenset[str] = frozenset()
    text: str = ""  # as written; salts the hash so two items never fire together by construction

    def applies(self, family: str, kind: str) -> bool:
        defaults = FAULTS[self.name].kinds
        if not self.scope:
            return kind in defaults
        return kind in self.scope or f"{family}.{kind}" in self.scope or (family in self.scope and kind in defaults)

    def fires(self, seed: int, key: str, n: int, account: str | None = None, account_n: int = 0) -> bool:
        if self.name == "arrearage":  # from the account's (N+1)-th request of the kind on, for good
            return account is not None and account in (self.account, f"acct-{self.account}") and account_n >= self.count
        if self.name == "burst429":  # a chosen request is refused on its first N tries
            return n < self.count and unit(seed, self.text, key) < self.probability
        return unit(seed, self.text, key, n) < self.probability


@dataclass(frozen=True)
class FaultSpec:
    """A parsed fault spec: its items in order."""

    items: tuple[FaultItem, ...] = ()

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        items = tuple(_parse_item(part.strip()) for part in text.split(",") if part.strip())
        return cls(items)

    def __str__(self) -> str:
        return ",".join(item.text for item in self.items)


@dataclass(frozen=True)
class Decision:
    """What the faults decided for one request: an effect, a delay, which items fired."""

    effect: Effect | None = None  # the first terminal effect that fired (spec order)
    status: int | None = None
    delay: float = 0.0  # wall seconds, summed over the slow items that fired
    applied: tuple[str, ...] = ()
    code: str | None = None  # a reply's own error code (arrearage)

    @property
    def fault(self) -> str | None:
        """What the ledger records: the names of the items that fired."""
        return "+".join(self.applied) or None


NO_FAULT = Decision()


def unit(seed: int, *parts: object) -> float:
    """A number in [0, 1) that depends on nothing but its arguments."""
    text = "\x1f".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2.0**64


def decide(spec: FaultSpec, seed: int, family: str, kind: str, key: str, n: int, account: str | None = None, account_n: int = 0) -> Decision:
    """The faults of the ``n``-th occurrence (from 0) of request ``key``, the ``account_n``-th
    request of its kind from ``account``."""
    effect: Effect | None = None
    status: int | None = None
    code: str | None = None
    delay = 0.0
    applied: list[str] = []
    for item in spec.items:
        if not item.applies(family, kind) or not item.fires(seed, key, n, account, account_n):
            continue
        fault = FAULTS[item.name]
        if fault.effect == "delay":
            delay += item.seconds
            applied.append(item.name)
        elif effect is None:
            effect, status, code = fault.effect, fault.status, fault.code
            applied.append(item.name)
    return Decision(effect, status, delay, tuple(applied), code=code) if applied else NO_FAULT


class FaultBook:
    """A spec, its seed, and how many times each request key was seen."""

    def __init__(self, spec: FaultSpec, seed: int):
        self.spec = spec
        self.seed = seed
        self._seen: Counter[tuple[str, str, str]] = Counter()
        self._by_account: Counter[tuple[str, str, str]] = Counter()

    def decide(self, family: str, kind: str, key: str, account: str | None = None) -> Decision:
        if not self.spec.items:
            return NO_FAULT
        n = self._seen[(family, kind, key)]
        self._seen[(family, kind, key)] = n + 1
        account_n = self._by_account[(family, kind, account or "-")]
        self._by_account[(family, kind, account or "-")] = account_n + 1
        return decide(self.spec, self.seed, family, kind, key, n, account, account_n)


def request_key(method: str, target: str, account: str | None, body: bytes) -> str:
    """A request's stable identity for fault decisions."""
    return f"{account or '-'}|{method} {target}|{hashlib.sha256(body).hexdigest()[:16]}"


def _parse_item(text: str) -> FaultItem:
    head, _, scope_text = text.partition("@")
    name, eq, args = head.partition("=")
    name = name.strip()
    if name not in FAULTS:
        raise FaultSpecError(f"{text!r}: unknown fault {name!r}; known: {', '.join(FAULTS)}")
    if not eq:
        raise FaultSpecError(f"{text!r}: expected {name}=ARGS")
    scope = frozenset(s.strip() for s in scope_text.split("+") if s.strip()) if scope_text else frozenset()
    known = _families()
    for token in scope:
        family, dot, kind = token.partition(".")
        if not (token in KINDS or token in known or (dot and family in known and kind in KINDS)):
            raise FaultSpecError(f"{text!r}: unknown scope {token!r}; use a kind ({', '.join(KINDS)}), a family ({', '.join(known)}) or family.kind")
    if "@" in text and not scope:
        raise FaultSpecError(f"{text!r}: empty scope after '@'")
    form = FAULTS[name].args
    if form == "account:n":
        account, colon, count_text = args.strip().rpartition(":")
        count = _number(count_text, text, "N") if colon else -1.0
        if not account or count != int(count) or count < 0:
            raise FaultSpecError(f"{text!r}: {name} takes ACCOUNT:N (N a whole number of 0 or more)")
        return FaultItem(name, 1.0, count=int(count), account=account, scope=scope, text=text)
    first, colon, second = args.strip().partition(":")
    if form == "p":
        if colon:
            raise FaultSpecError(f"{text!r}: {name} takes one probability")
        return FaultItem(name, _probability(first, text), scope=scope, text=text)
    if form == "p:seconds":
        if not colon:
            raise FaultSpecError(f"{text!r}: {name} takes P:SECONDS")
        return FaultItem(name, _probability(first, text), seconds=_number(second, text, "seconds"), scope=scope, text=text)
    count = _number(first, text, "N")
    if count != int(count) or count < 1:
        raise FaultSpecError(f"{text!r}: N must be a whole number of 1 or more")
    probability = _probability(second, text) if colon else 1.0
    return FaultItem(name, probability, count=int(count), scope=scope, text=text)


def _number(text: str, item: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FaultSpecError(f"{item!r}: {what} must be a number, not {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise FaultSpecError(f"{item!r}: {what} must be a finite number of 0 or more")
    return value


def _probability(text: str, item: str) -> float:
    value = _number(text, item, "P")
    if value > 1:
        raise FaultSpecError(f"{item!r}: P must be between 0 and 1")
    return value


def _families() -> tuple[str, ...]:
    from .family import families  # the providers' families, as registered (the config imports this module)

    return ("oss", *families())
