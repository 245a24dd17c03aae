"""Simulated runs: the embedded simulator or an attached ``r2v sim``, wired to a run.

A composition module above ``run`` and ``sim``: the runner knows nothing of the
simulator; it is handed a ``Redirect`` (where each provider answers, on which
clock, with which key), which a ``Simulation`` is.
"""

from __future__ import annotations

import os
import time
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Sequence

from .plan.planner import AccountTarget, PlannedShot
from .run.reach_policy import Unreachable

if TYPE_CHECKING:  # HTTP and the provider clients load once a run talks to a simulator, not for a rerun with nothing to do
    from .providers.base import ProviderTime

SIM_KEY = "sim-key"  # any non-empty key opens the simulator


def account_sim_key(name: str) -> str:
    """The key a named account talks to the embedded simulator with (it is told the account's name)."""
    return f"{SIM_KEY}-{name}"


@dataclass(frozen=True)
class Simulation:
    """Where the simulated providers answer and how fast their clock runs."""

    base_url: str  # the simulator's own
    urls: Mapping[str, str]  # provider -> its simulated base URL
    time: ProviderTime
    faults: str = ""
    key: str = SIM_KEY
    # A simulator started elsewhere may be told which keys make which account
    # (R2V_SIM_DASHSCOPE_ACCOUNTS): a named account then talks with the key its
    # variable holds, when set.
    keys_from_environment: bool = False

    @property
    def where(self) -> str:
        return self.base_url

    def account_key(self, account: AccountTarget) -> str:
        if self.keys_from_environment and os.environ.get(account.key_variable, "").strip():
            return os.environ[account.key_variable].strip()
        return account_sim_key(account.name)

    def declare(self, shots: Sequence[PlannedShot]) -> None:
        declare_public_media(self, shots)


@dataclass(frozen=True)
class SimulateOptions:
    """How the embedded simulator runs: time scale, seed, faults, where it keeps its state."""

    time_scale: float = 0.02
    seed: int = 0
    faults: str = ""
    # Where the simulator keeps its state, so the next simulated run meets the same
    # provider (tasks, uploads, clock) and resumes instead of finding its tasks gone;
    # None: in memory, for this run only.
    state_dir: Path | None = None
    accounts: tuple[str, ...] = ()  # the accounts the manifests name: the simulator serves each as itself


@contextmanager
def embedded_simulation(options: SimulateOptions) -> Iterator[Simulation]:
    """Start the simulator in this process for the run's duration."""
    from .sim import SimConfig, start_simulator  # only a simulated run needs it
    from .providers.base import ProviderTime

    config = SimConfig(
        time_scale=options.time_scale,
        seed=options.seed,
        faults=options.faults,
        state_dir=options.state_dir,  # encoded result videos are kept there too: later runs need not encode them again
        # Between runs the simulated provider does not exist: at a time scale of 0.02, half an
        # hour between runs would otherwise be 25 provider hours, and every task expired.
        clock_while_stopped="paused",
        accounts={account_sim_key(name): name for name in options.accounts},
    )
    with start_simulator(config) as sim:
        yield Simulation(sim.base_url, sim.urls, ProviderTime(now=sim.now, scale=options.time_scale), options.faults)


def attached_simulation(url: str) -> Simulation:
    """A simulator started elsewhere (``r2v sim``): ask it where it serves and how fast its clock runs."""
    import httpx

    from .providers.base import ProviderTime

    try:
        health = httpx.get(url.rstrip("/") + "/_sim/health", timeout=10.0, trust_env=False).json()
        asked, provider_now, scale = time.time(), float(health["now"]), float(health["time_scale"])
        base_url, urls = str(health["base_url"]), {str(name): str(at) for name, at in health["urls"].items()}
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise Unreachable(f"provider unreachable: the simulator at {url}: {type(error).__name__}: {error}") from None

    def now() -> float:
        return provider_now + (time.time() - asked) / scale

    return Simulation(base_url, urls, ProviderTime(now=now, scale=scale), keys_from_environment=True)


def declare_public_media(simulation: Simulation, shots: Sequence[PlannedShot]) -> None:
    """A simulated provider has no network: tell it what the public URLs the shots name
    hold (their local files, probed by the plan), as the real one finds on downloading
    them. Raises Unreachable when the simulator cannot be told."""
    import httpx

    from .sim.facts import facts_json  # only a simulated run needs it

    facts = {url: facts_json(shot.files[url].info) for shot in shots for url, how in shot.transports.items() if how == "public"}
    if not facts:
        return
    base = simulation.base_url.rstrip("/")
    try:
        httpx.post(base + "/_sim/facts", json=facts, timeout=30.0, trust_env=False).raise_for_status()
    except httpx.HTTPError as error:
        raise Unreachable(f"provider unreachable: the simulator at {base}: {type(error).__name__}: {error}") from None


@contextmanager
def simulation(simulate: SimulateOptions | None, attach: str | None) -> Iterator[Simulation | None]:
    """The simulation a run uses, if any, for as long as the run lasts."""
    if simulate is not None:
        with embedded_simulation(simulate) as sim:
            yield sim
    elif attach is not None:
        yield attached_simulation(attach)
    else:
        yield None


SIMULATOR_STATE = "simulator"  # the embedded simulator's state, under the ledger's folder


def opener(simulate: SimulateOptions | None, attach: str | None) -> Callable[[Path], AbstractContextManager[Simulation | None]] | None:
    """What a run opens, given its ledger folder, to reach the simulated providers; None: the real ones."""
    if simulate is None and attach is None:
        return None

    def open_(folder: Path) -> AbstractContextManager[Simulation | None]:
        if simulate is not None and simulate.state_dir is None:
            # Beside the (simulated) ledger: the next run meets the simulator that knows its tasks.
            return simulation(replace(simulate, state_dir=folder / SIMULATOR_STATE), attach)
        return simulation(simulate, attach)

    return open_
