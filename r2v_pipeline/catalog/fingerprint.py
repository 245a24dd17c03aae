"""A shot's fingerprint: what decides whether a video already made is still the one asked for.

It hashes the exact request body (so comments, key order and formatting of the
YAML do not count) with local files standing in by their content hash (so a
changed file counts and a renamed one does not). Fields that only say where
to announce the result are left out.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from .request import LOCAL_SCHEME
from .spec import ModelSpec
from .wire import map_strings

LOCAL = LOCAL_SCHEME + ":"


def fingerprint(spec: ModelSpec, body: dict[str, Any], content: Mapping[str, str], headers: Mapping[str, str] | None = None) -> str:
    """``content`` maps each URL or placeholder of a local file to its sha256; ``headers``,
    extra headers a manifest sends (counted only when there are any, so a request without
    them keeps the fingerprint it always had)."""
    payload: dict[str, Any] = {
        "provider": spec.provider,
        "model": spec.model,
        "body": map_strings(_without(body, spec.fingerprint_excludes), lambda s: f"sha256:{content[s]}" if s.startswith(LOCAL) and s in content else s),
        # a public URL stays in the body; its file's content counts too
        "content": sorted(sha for url, sha in content.items() if not url.startswith(LOCAL)),
    }
    if headers:
        payload["headers"] = {name.lower(): value for name, value in headers.items()}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _without(body: dict[str, Any], paths: frozenset[tuple[str, ...]]) -> dict[str, Any]:
    if not paths:
        return body
    trimmed = json.loads(json.dumps(body))
    for path in paths:
        node = trimmed
        for key in path[:-1]:
            node = node.get(key, {})
        node.pop(path[-1], None)
    return trimmed
