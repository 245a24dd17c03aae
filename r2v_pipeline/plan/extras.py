"""What the catalog does not know yet, sent as the manifest gives it.

``extra_body`` (on defaults or a shot) is merged into the request body, a cast
member's ``extra`` into its own media item (``reference_description``, say),
``extra_headers`` into the request's headers. None of it is checked against the
model's table: the plan marks such shots unchecked, and their billed seconds
are a floor ("at least"). It is part of the fingerprint. It may add to what r2v
writes, never replace it, and it may not carry what r2v knows as a setting (say
``seed``) nor a credential.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from ..catalog import registry
from ..catalog.spec import ModelSpec

# Headers any HTTP client writes itself or that carry credentials; each provider's
# table adds its own (registry): a manifest may set none of them.
COMMON_RESERVED_HEADERS = ("Authorization", "Content-Type", "Content-Length", "Host", "Cookie")


def reserved_headers() -> frozenset[str]:
    tables = (registry.table(name) for name in registry.names())
    return frozenset(h.lower() for h in (*COMMON_RESERVED_HEADERS, *(h for t in tables for h in t.reserved_headers)))


def merge(body: dict[str, Any], extra: Mapping[str, Any], spec: ModelSpec, where: str) -> tuple[dict[str, Any], list[str], list[str]]:
    """``body`` with ``extra`` merged in: (new body, the paths added, problems). A problem
    is an extra that would replace what r2v writes, or that r2v knows as a setting."""
    known = {setting.path: name for name, setting in spec.settings.items()}
    merged = _copy(body)
    added: list[str] = []
    problems: list[str] = []
    for path, value in _leaves(extra):
        shown = where + "." + ".".join(path)
        if path in known:
            problems.append(f"{shown} is the {known[path]} setting r2v checks: set {known[path]} instead")
            continue
        node: Any = merged
        for key in path[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            problems.append(f"{shown}: r2v writes something else there")
        elif path[-1] in node and node[path[-1]] != value:
            problems.append(f"{shown} would replace what r2v writes ({node[path[-1]]!r})")
        else:
            node[path[-1]] = value
            added.append(".".join(path))
    return merged, added, problems


def header_problems(headers: Mapping[str, Any]) -> list[str]:
    return [f"extra_headers.{name}: r2v writes this header itself (a key comes from the environment only)" for name in headers if name.lower() in reserved_headers()]


def _leaves(node: Mapping[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for key, value in node.items():
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, (*path, str(key)))
        else:
            yield (*path, str(key)), value


def _copy(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node
