"""Running the simulator: as a coroutine (the CLI), or in a background thread with its
own event loop (tests, the runner's embedded default), so sync and async clients alike can use it."""

from __future__ import annotations

import functools
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator, Mapping

import anyio
import anyio.abc
from anyio.from_thread import BlockingPortal, start_blocking_portal

from ..catalog import registry
from ..catalog.media_info import MediaInfo
from .config import SimConfig
from .family import family, limits
from .introspect import advance_clock, stats, urls
from .ledger import Ledger
from .facts import facts_json, read_declarations
from .media import HOSTED_PATH
from .persist import SimStore
from .routes import dispatch
from .server import listen, serve
from .state import SimState, build_state
from .tasks import Task


async def run_simulator(config: SimConfig, *, task_status: anyio.abc.TaskStatus[SimState] = anyio.TASK_STATUS_IGNORED) -> None:
    """Serve until cancelled; reports its state once it accepts connections.
    ValueError (naming the path) when ``config.state_dir`` cannot be used."""
    with SimStore.open(config.state_dir) if config.state_dir is not None else nullcontext() as store:
        listener, port = await _listen(config, store)
        state: SimState | None = None
        try:
            async with anyio.create_task_group() as group:
                max_running = {name: limits(config, name).max_running for name in registry.names()}
                state = build_state(config, port, lambda job: group.start_soon(job), max_running, _announce, store)
                group.start_soon(state.tasks.run)
                handler = functools.partial(dispatch, state)
                group.start_soon(functools.partial(serve, listener, handler, max_body=config.max_body_bytes, idle=config.idle_seconds))
                task_status.started(state)
        finally:
            with anyio.CancelScope(shield=True):
                await listener.aclose()
                if state is not None:
                    await state.webhooks.aclose()


def _announce(state: SimState, task: Task) -> None:
    """A task's status change, told to its provider's family."""
    announce = family(task.provider).announce
    if announce is not None:
        announce(state, task)


async def _listen(config: SimConfig, store: SimStore | None) -> tuple[anyio.abc.Listener[anyio.abc.SocketStream], int]:
    """Listen where asked. Asked for any port, a restarted simulator tries its previous one
    first, so the result URLs it handed out still lead to it; if that port is taken, any
    free port [guess]."""
    if store is not None and store.port and config.port == 0:
        try:
            return await listen(config.host, store.port)
        except OSError:
            pass
    return await listen(config.host, config.port)


class Simulator:
    """A simulator running in a background thread; made by ``start_simulator``."""

    def __init__(self, portal: BlockingPortal, state: SimState):
        self._portal = portal
        self._state = state

    @property
    def config(self) -> SimConfig:
        return self._state.config

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``; also the Freepik base URL."""
        return self._state.base_url

    @property
    def urls(self) -> dict[str, str]:
        """Each provider's simulated API base URL, by provider name."""
        return urls(self._state)

    @property
    def dashscope_url(self) -> str:
        """The DashScope base, for ``dashscope.base_http_api_url``."""
        return self.urls["dashscope"]

    @property
    def freepik_url(self) -> str:
        return self.urls["freepik"]

    @property
    def port(self) -> int:
        return self._state.port

    @property
    def ledger(self) -> Ledger:
        return self._state.ledger

    def now(self) -> float:
        """Simulated provider time, epoch seconds."""
        return self._state.clock.now()

    def advance(self, seconds: float) -> None:
        """Jump simulated time forward; every task, expiry and retry that falls due happens."""
        self._portal.call(advance_clock, self._state, seconds)

    def host_media(self, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Serve ``data`` at a URL of the simulator, which it can read when a request names it."""
        sha = self._portal.call(self._state.media.host, data, content_type)
        return f"{self.base_url}{HOSTED_PATH}{sha}"

    def declare_media(self, url: str, facts: MediaInfo | Mapping[str, Any]) -> None:
        """Say what the remote ``url`` holds (the simulator has no network; an undeclared
        remote URL cannot be downloaded). ``facts``: probed ``MediaInfo``, or the JSON
        form ``POST /_sim/facts`` takes. ValueError when they do not read."""
        declared = read_declarations({url: facts_json(facts) if isinstance(facts, MediaInfo) else facts})
        self._portal.call(self._state.media.declare, declared)

    def stats(self) -> dict[str, Any]:
        return self._portal.call(stats, self._state)


@contextmanager
def start_simulator(config: SimConfig | None = None) -> Iterator[Simulator]:
    """Start a simulator on a loopback port; it stops when the block ends."""
    with start_blocking_portal(backend="asyncio") as portal:
        future, state = portal.start_task(run_simulator, config or SimConfig(), name="r2v-sim")
        try:
            yield Simulator(portal, state)
        finally:
            future.cancel()
