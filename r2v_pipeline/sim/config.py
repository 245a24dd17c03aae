"""Everything a simulator run can be told: one frozen dataclass with realistic defaults.

Durations are provider seconds (they pass through the time scale) unless a
field says "wall": those concern how a client talks to the server, which the
time scale does not change.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from .faults import FaultSpec

DAY = 86_400.0
ACCOUNT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Rate:
    """At most ``count`` requests in any window of ``seconds``."""

    count: int
    seconds: float = 1.0


@dataclass(frozen=True)
class Limits:
    """One simulated provider's account limits and the keys it accepts."""

    rates: Mapping[str, tuple[Rate, ...]]  # rate group -> its rates; a family's routes name their group
    max_running: int | None = None  # tasks in progress per account; None: no limit
    keys: frozenset[str] | None = field(default=None, repr=False)  # None: any non-empty key


@dataclass(frozen=True)
class SimConfig:
    """Everything the simulator is started with: address, time scale, seed, faults, quotas, keys."""

    host: str = "127.0.0.1"  # loopback only
    port: int = 0  # 0: any free port
    time_scale: float = 1.0  # wall seconds per provider second: 0.01 runs 100 times faster
    seed: int = 0
    faults: str = ""  # the fault spec; grammar in faults.py

    # Generation time, uniform between the two bounds [doc: "typically 1-5 minutes"].
    generation_seconds: tuple[float, float] = (60.0, 300.0)
    # What picks a task's place in that spread: its id (every task its own), or its prompt,
    # so two clients sending the same shots get the same generation times (benchmarks).
    generation_by: Literal["task", "prompt"] = "task"
    # [guess] How long a new task waits in the provider's queue (PENDING) before it may
    # start, slot permitting. Long enough that a task cancelled just after its submit
    # is still PENDING, which is the only state a cancel works in [doc]; 0: at once.
    pending_seconds: float = 3.0

    # Quotas per account [doc]: every key of one account shares them (see accounts).
    submit_rate: tuple[Rate, ...] = (Rate(5, 1.0),)
    query_rate: tuple[Rate, ...] = (Rate(20, 1.0),)  # task get, list and cancel together
    policy_rate: tuple[Rate, ...] = (Rate(100, 1.0),)  # upload policies
    max_running: int | None = 5  # tasks in progress; the rest wait as PENDING [guess]
    # Freepik: 50 requests/s over 5 s and 10 requests/s over 2 minutes, per key [doc].
    freepik_rate: tuple[Rate, ...] = (Rate(250, 5.0), Rate(1200, 120.0))
    freepik_max_running: int | None = None  # [guess] Freepik states no such limit
    # Which clock the rate windows run on. "wall": a client pacing itself in real
    # time is judged in real time whatever the time scale; "provider": windows
    # scale and move with advance(), which makes rate tests deterministic.
    rate_clock: Literal["wall", "provider"] = "wall"

    # Any provider's limits by name (sim.family.Limits), over what the fields above and
    # below set for DashScope and Freepik: a provider added later has no fields here.
    providers: Mapping[str, Limits] = field(default_factory=dict, repr=False)

    # Accepted keys; None accepts any non-empty key. Kept out of repr so a
    # logged config never shows a key.
    dashscope_keys: frozenset[str] | None = field(default=None, repr=False)
    freepik_keys: frozenset[str] | None = field(default=None, repr=False)
    # DashScope key -> account name. The keys of one account share its quotas (tasks in
    # progress, submits and queries per second) [doc] and see its tasks and uploads; a
    # key not listed is an account of its own. Freepik limits each key by itself [doc].
    accounts: Mapping[str, str] = field(default_factory=dict, repr=False)
    # An account's own limit of tasks in progress (account name -> count), over max_running.
    account_max_running: Mapping[str, int] = field(default_factory=dict)

    # Content moderation: a prompt holding the first word is refused at submit,
    # one holding the second fails the task (output moderation). Case-insensitive.
    moderation_reject_word: str = "SIM-BLOCK-INPUT"
    moderation_fail_word: str = "SIM-BLOCK-OUTPUT"

    # What remote URLs hold, declared from the start (POST /_sim/facts adds more later):
    # URL -> {kind, format, bytes, width, height, seconds, audio}. The simulator has no
    # network: a remote URL it was told nothing of is one the provider could not
    # download, and the task fails with the documented download code.
    remote_media: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)

    # For tests only: a succeeded task's usage reports this many more input seconds
    # than the billing rules give, so a test can check that a run notices a provider
    # billing other than planned. 0: bill by the rules, as the provider documents.
    billing_offset_seconds: float = 0.0

    webhook_secret: str = field(default="sim-webhook-secret", repr=False)
    # [guess] Freepik documents no retry policy: delays before each retry.
    webhook_retry_seconds: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0, 1800.0)
    webhook_timeout: float = 10.0  # wall

    task_ttl: float = DAY  # a task older than this answers UNKNOWN [doc]
    result_ttl: float = DAY  # result URLs expire [doc]
    upload_ttl: float = 2 * DAY  # uploaded files live 48 h [doc]
    policy_ttl: float = 300.0  # an upload policy's expire_in_seconds [doc]
    max_upload_mb: int = 1024  # the policy's max_file_size_mb [doc]
    region: str = "cn-beijing"  # the task list's region field [capture]

    cache_dir: Path | None = None  # generated videos; None: <state_dir>/videos, else one temporary folder per process
    # Encode each result video as its task starts, so a download need not wait; tests
    # that never download a result may turn it off and spare the CPU.
    prefetch_videos: bool = True
    # Where the simulator keeps its state (tasks, uploads, task-id counters, the clock), written
    # as it changes, so a simulator started again on the folder is the same provider; see
    # persist.py. None: in memory only, forgotten when it stops.
    state_dir: Path | None = None
    # Provider time across a stop, for a state_dir: "paused" resumes where it stood (the
    # provider lives only while it runs); "wall" counts the stop at the time scale, as an
    # outage during which generation went on.
    clock_while_stopped: Literal["paused", "wall"] = "paused"
    max_body_bytes: int = 300 * 1024 * 1024  # a simulator limit, not a provider's
    idle_seconds: float = 60.0  # wall: an idle keep-alive connection is closed
    ledger_max_requests: int = 1_000_000  # the oldest entries go beyond this

    def __post_init__(self) -> None:
        if not self.time_scale > 0:
            raise ValueError(f"time_scale must be above 0, not {self.time_scale}")
        lo, hi = self.generation_seconds
        if not 0 <= lo <= hi:
            raise ValueError(f"generation_seconds must be 0 <= low <= high, not {self.generation_seconds}")
        if not is_loopback_host(self.host):
            raise ValueError(f"host {self.host!r} is not a loopback address; the simulator serves loopback only")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is out of range")
        given = [rates for limits in self.providers.values() for rates in limits.rates.values()]
        for rates in (self.submit_rate, self.query_rate, self.policy_rate, self.freepik_rate, *given):
            if any(r.count < 1 or r.seconds <= 0 for r in rates):
                raise ValueError(f"rates need a count of 1 or more over a positive window: {rates}")
        if not 0 <= self.pending_seconds < math.inf:
            raise ValueError(f"pending_seconds must be 0 or more, not {self.pending_seconds}")
        if not math.isfinite(self.billing_offset_seconds):
            raise ValueError(f"billing_offset_seconds must be a finite number, not {self.billing_offset_seconds}")
        for name, count in self.account_max_running.items():
            if not ACCOUNT_NAME.match(name) or count < 1:
                raise ValueError(f"account_max_running {name}={count}: an account name and a count of 1 or more")
        for name in set(self.accounts.values()):
            if not ACCOUNT_NAME.match(name):
                raise ValueError(f"account name {name!r}: use 1-64 letters, digits, '-' or '_'")
        if self.generation_by not in ("task", "prompt"):
            raise ValueError(f"generation_by must be 'task' or 'prompt', not {self.generation_by!r}")
        if self.clock_while_stopped not in ("paused", "wall"):
            raise ValueError(f"clock_while_stopped must be 'paused' or 'wall', not {self.clock_while_stopped!r}")
        FaultSpec.parse(self.faults)  # raises with a message naming the bad item
        if self.remote_media:
            from .facts import read_declarations  # media probing (PyAV) loads only when needed

            read_declarations(self.remote_media)  # raises naming the URL and the fact

    @property
    def fault_spec(self) -> FaultSpec:
        return FaultSpec.parse(self.faults)


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost, judged without resolving any name."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
