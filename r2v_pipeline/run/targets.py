"""The providers a run talks to: the real services (keys from the environment), the
embedded simulator (``--simulate``), or a simulator already running (``--simulator URL``)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx

from ..plan.planner import PlannedShot
from ..providers.base import Provider, ProviderTime
from ..providers.dashscope import DashScope, UploadCache
from ..providers.freepik import Freepik
from ..providers.http import api_key, new_client
from .reach import Unreachable

SIM_KEY = "sim-key"  # any non-empty key opens the simulator


@dataclass(frozen=True)
class Simulation:
    """Where the simulated providers answer and how fast their clock runs."""

    dashscope_url: str
    freepik_url: str
    time: ProviderTime
    faults: str = ""


@dataclass(frozen=True)
class SimulateOptions:
    time_scale: float = 0.02
    seed: int = 0
    faults: str = ""
    # Where the simulator keeps its state, so the next simulated run meets the same
    # provider (tasks, uploads, clock) and resumes instead of finding its tasks gone;
    # None: in memory, for this run only.
    state_dir: Path | None = None


@contextmanager
def embedded_simulation(options: SimulateOptions) -> Iterator[Simulation]:
    """Start the simulator in this process for the run's duration."""
    from ..sim import SimConfig, start_simulator  # only a simulated run needs it

    config = SimConfig(
        time_scale=options.time_scale,
        seed=options.seed,
        faults=options.faults,
        state_dir=options.state_dir,  # encoded result videos are kept there too: later runs need not encode them again
        # Between runs the simulated provider does not exist: at a time scale of 0.02, half an
        # hour between runs would otherwise be 25 provider hours, and every task expired.
        clock_while_stopped="paused",
    )
    with start_simulator(config) as sim:
        yield Simulation(sim.dashscope_url, sim.freepik_url, ProviderTime(now=sim.now, scale=options.time_scale), options.faults)


def attached_simulation(url: str) -> Simulation:
    """A simulator started elsewhere (``r2v sim``): ask it where it serves and how fast its clock runs."""
    try:
        health = httpx.get(url.rstrip("/") + "/_sim/health", timeout=10.0, trust_env=False).json()
        asked, provider_now, scale = time.time(), float(health["now"]), float(health["time_scale"])
        dashscope_url, freepik_url = str(health["dashscope_url"]), str(health["freepik_url"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
        raise Unreachable(f"provider unreachable: the simulator at {url}: {type(error).__name__}: {error}") from None

    def now() -> float:
        return provider_now + (time.time() - asked) / scale

    return Simulation(dashscope_url, freepik_url, ProviderTime(now=now, scale=scale))


def build_providers(
    shots: list[PlannedShot], uploads: UploadCache, simulation: Simulation | None = None
) -> tuple[dict[tuple[str, str], Provider], list[str]]:
    """A client per target the shots need, and the keys in use (for redaction).
    Raises MissingKey before anything is sent when a real key is absent."""
    providers: dict[tuple[str, str], Provider] = {}
    keys: list[str] = []
    for shot in shots:
        target = shot.target
        where = (target.provider, target.base_url)
        if where in providers:
            continue
        if simulation is not None:
            key, time_ = SIM_KEY, simulation.time
            base = simulation.dashscope_url if target.provider == "dashscope" else simulation.freepik_url
        else:
            key, time_, base = api_key(target.provider), ProviderTime(), target.base_url
        keys.append(key)
        client = new_client(local=simulation is not None)
        if target.provider == "dashscope":
            providers[where] = DashScope(base, key, workspace=target.workspace, uploads=uploads, time=time_, client=client)
        else:
            providers[where] = Freepik(base, key, time=time_, client=client)
    return providers, keys


def declare_public_media(simulation: Simulation, shots: list[PlannedShot]) -> None:
    """A simulated provider has no network: tell it what the public URLs the shots name
    hold (their local files, probed by the plan), as the real one finds on downloading
    them. Raises Unreachable when the simulator cannot be told."""
    from ..sim.facts import facts_json  # only a simulated run needs it

    facts = {url: facts_json(shot.files[url].info) for shot in shots for url, how in shot.transports.items() if how == "public"}
    if not facts:
        return
    base = simulation.freepik_url.rstrip("/")  # Freepik's base is the simulator's own
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
