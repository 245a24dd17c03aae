"""What each provider's models accept and bill: one declarative table per provider,
each registered once in ``registry``."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Callable, Generic, Iterator, Mapping, TypeVar

from . import registry
from .spec import ModelSpec, ProviderTable

T = TypeVar("T")


class _ByProvider(Mapping[str, T], Generic[T]):
    """One value of each registered provider's table, read when asked (a provider
    registered later is in it too)."""

    def __init__(self, pick: Callable[[ProviderTable], T]):
        self._pick = pick

    def __getitem__(self, name: str) -> T:
        return self._pick(registry.table(name))

    def __iter__(self) -> Iterator[str]:
        return iter(registry.names())

    def __len__(self) -> int:
        return len(registry.names())


PROVIDERS: Mapping[str, Mapping[str, ModelSpec]] = _ByProvider(lambda t: t.models)
DEFAULT_MODELS: Mapping[str, str] = _ByProvider(lambda t: t.default_model)


def setting_names() -> tuple[str, ...]:
    """Every request setting a registered model takes, by manifest name, first seen first."""
    return tuple(dict.fromkeys(name for models in PROVIDERS.values() for spec in models.values() for name in spec.settings))


# A dated snapshot of a model (wan2.7-r2v-2026-06-12) [sdk]: sent as named, checked and
# billed by its model's table. [guess] A snapshot keeps its model's limits and rules.
SNAPSHOT = re.compile(r"^(?P<family>.+)-(?P<date>\d{4}-\d{2}-\d{2})$")


def lookup(provider: str, model: str) -> ModelSpec | None:
    table = PROVIDERS.get(provider, {})
    spec = table.get(model)
    if spec is not None:
        return spec
    snapshot = SNAPSHOT.match(model)
    if snapshot is None or snapshot["family"] not in table:
        return None
    return replace(table[snapshot["family"]], model=model, family=snapshot["family"])
