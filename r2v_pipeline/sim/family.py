"""How the simulator imitates one provider's API: its routes below a base path, how a
request names its key, its account limits, what a task's status change sets off.

Each provider's simulator module defines one ``Family``; the catalog's registry
names it, and the route table, the keys, the limits and the task slots are read
from it by provider name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable, Mapping

from ..catalog import registry
from .config import Limits, SimConfig
from .replies import ErrorShape
from .server import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from .state import Call, SimState
    from .tasks import Task

RouteHandler = Callable[["SimState", HttpRequest, "Call", Mapping[str, str]], Awaitable[HttpResponse]]


@dataclass(frozen=True)
class FamilyRoute:
    """One route of a provider family: method, path, what it is, its handler and rate group."""

    method: str
    template: str  # below the family's base path, with {name} for a segment the handler receives
    kind: str  # what it is, for fault scopes and the ledger
    handler: RouteHandler
    rates: str | None = None  # the rate group; routes naming the same group share its rates


@dataclass(frozen=True)
class Family:
    """One provider's API as the simulator serves it: its routes, error shape, keys and limits."""

    shape: str  # the family's name in fault scopes and the ledger: a provider's own, or the one it imitates
    errors: ErrorShape  # how it words answers that are not about one request
    base_path: str  # below the simulator's base URL: the provider's API base
    routes: tuple[FamilyRoute, ...]
    key_of: Callable[[HttpRequest], str]  # the key a request carries ("" when none)
    limits: Callable[[SimConfig], Limits]  # as the config sets them
    shared_accounts: bool = False  # keys may share an account (SimConfig.accounts)
    announce: Callable[["SimState", "Task"], None] | None = None  # after each status change of a task


def family(provider: str) -> Family:
    family: Family = registry.entry(provider).simulator_family()
    return family


def limits(config: SimConfig, provider: str) -> Limits:
    """A provider's limits: ``SimConfig.providers`` where it names the provider, else as
    its family reads the config."""
    given = config.providers.get(provider)
    return given if given is not None else family(provider).limits(config)


def families() -> tuple[str, ...]:
    """The names of the registered providers' families, as fault scopes name them."""
    return tuple(dict.fromkeys(family(name).shape for name in registry.names()))
