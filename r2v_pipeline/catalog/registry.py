"""The providers r2v knows: one entry each, naming its catalog table, its client and
its simulator.

The catalog is the bottom layer and never imports the clients or the simulator:
an entry names them as "module:attribute" strings, resolved only when a run or a
simulator needs them. Adding a provider is a catalog module, a client module, a
simulator module and one ``register`` line here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from . import dashscope, freepik
from .spec import ProviderTable


@dataclass(frozen=True)
class Entry:
    """One provider: its table, and where its client and simulator family are."""

    table: ProviderTable
    client: str  # "module:attribute" of the client factory: (providers.base.Connection) -> Provider
    simulator: str  # "module:attribute" of the simulator family (sim.family.Family)

    @property
    def name(self) -> str:
        return self.table.name

    def client_factory(self) -> Any:
        return resolve(self.client)

    def simulator_family(self) -> Any:
        return resolve(self.simulator)


_ENTRIES: dict[str, Entry] = {}
DEFAULT_PROVIDER = "dashscope"  # when neither a manifest nor the command line names one


def register(entry: Entry) -> Entry:
    _ENTRIES[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Forget a provider (tests that register one of their own)."""
    _ENTRIES.pop(name, None)


def names() -> tuple[str, ...]:
    return tuple(_ENTRIES)


def entries() -> tuple[Entry, ...]:
    return tuple(_ENTRIES.values())


def entry(name: str) -> Entry:
    """KeyError for a provider r2v does not know."""
    return _ENTRIES[name]


def table(name: str) -> ProviderTable:
    return _ENTRIES[name].table


def resolve(dotted: str) -> Any:
    """The object a "package.module:attribute" string names."""
    module, _, attribute = dotted.partition(":")
    return getattr(importlib.import_module(module), attribute)


register(Entry(dashscope.TABLE, "r2v_pipeline.providers.dashscope:connect", "r2v_pipeline.sim.dashscope:FAMILY"))
register(Entry(freepik.TABLE, "r2v_pipeline.providers.freepik:connect", "r2v_pipeline.sim.freepik:FAMILY"))
