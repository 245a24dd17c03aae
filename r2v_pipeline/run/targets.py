"""The clients a run talks to: one per target, made by the factory the provider's
registry entry names; keys from the environment, or wherever a ``Redirect`` says
the providers answer (a simulator: see ``r2v_pipeline.simulation``)."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence

from ..catalog import registry
from ..plan.planner import AccountTarget, PlannedShot
from ..providers.base import Connection, Provider, ProviderTime, UploadCache
from ..providers.http import MissingKey, api_key, new_client
from .pool import provider_key


class Redirect(Protocol):
    """Providers answering somewhere other than their targets, on another clock, to one key."""

    @property
    def urls(self) -> Mapping[str, str]: ...  # provider -> the base URL that answers for it

    @property
    def time(self) -> ProviderTime: ...

    @property
    def key(self) -> str: ...

    def account_key(self, account: AccountTarget) -> str:
        """The key a named account talks with (the provider's one account uses ``key``)."""

    @property
    def where(self) -> str: ...  # for the run's log: where the providers answer

    def declare(self, shots: Sequence[PlannedShot]) -> None:
        """Tell the providers what the shots' public URLs hold, where they cannot fetch
        them (a simulator has no network). Raises Unreachable when they cannot be told."""


# Given the ledger's folder, the redirect for the run's duration (None: the real
# providers). Raises ValueError (unusable settings) or Unreachable.
OpenRedirect = Callable[[Path], AbstractContextManager["Redirect | None"]]


def build_providers(
    shots: list[PlannedShot], uploads: UploadCache, redirect: Redirect | None = None
) -> tuple[dict[tuple[str, str, str], Provider], list[str]]:
    """A client per account and endpoint the shots may use (keyed as pool.provider_key),
    and the keys in use (for redaction). Raises MissingKey before anything is sent when
    a real key is absent."""
    providers: dict[tuple[str, str, str], Provider] = {}
    keys: list[str] = []
    for shot in shots:
        target = shot.target
        for name in shot.accounts:
            account = target.account(name)
            where = provider_key(target.provider, account.base_url, name)
            if where in providers:
                continue
            if redirect is not None:
                key, time_, base = redirect.account_key(account) if name else redirect.key, redirect.time, redirect.urls[target.provider]
            else:
                key, time_, base = account_key(target.provider, account), ProviderTime(), account.base_url
            keys.append(key)
            # a redirect is a simulator on loopback: never reached through a proxy
            connection = Connection(base, key, time_, new_client(local=redirect is not None), account.workspace, uploads)
            providers[where] = registry.entry(target.provider).client_factory()(connection)
    return providers, keys


def account_key(provider: str, account: AccountTarget) -> str:
    """An account's key, from the environment only: the variable the manifest names for it
    (or the provider's own, for its one account)."""
    if not account.name:
        return api_key(provider)
    key = os.environ.get(account.key_variable, "").strip()
    if not key:
        raise MissingKey(provider, account.key_variable, f"{account.where}: provider.accounts[{account.name}].key_env: account {account.name!r}")
    return key
