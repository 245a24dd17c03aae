"""What an edit changed, in the words a person uses: the prompt as a short diff,
settings as old → new, reference files whose content changed.

Compares the request a shot had when it was last carried out (as the ledger
recorded it: provider, model, body, and each local file's hash) with the one
planned now. Pure: no files, no ledger.
"""

from __future__ import annotations

import difflib
import json
import textwrap
from typing import Any, Mapping

from .. import catalog
from ..catalog.spec import ModelSpec
from ..catalog.wire import Request, read_body
from ..catalog.request import LOCAL_SCHEME

MAX_DIFF_LINES = 12
WRAP = 72  # a folded prompt is one long line: wrapped, a diff shows the part that changed


def request_record(spec: ModelSpec, body: dict[str, Any], files: Mapping[str, str]) -> str:
    """The JSON a ledger keeps of a request, for ``describe_changes`` later."""
    return json.dumps({"provider": spec.provider, "model": spec.model, "body": body, "files": dict(files)}, ensure_ascii=False)


def describe_changes(old: Mapping[str, Any], spec: ModelSpec, body: dict[str, Any], files: Mapping[str, str]) -> list[str]:
    """Lines saying how the request ``old`` (from ``request_record``) differs from the new one."""
    changes: list[str] = []
    old_spec = catalog.lookup(str(old.get("provider")), str(old.get("model"))) or spec
    if old_spec.key != spec.key:
        changes.append(f"model: {old_spec.provider} {old_spec.model} → {spec.provider} {spec.model}")
    before, after = read_body(old_spec, old.get("body") or {}), read_body(spec, body)
    changes += _prompt(before, after)
    changes += _settings(before.settings, after.settings)
    changes += _media(before, dict(old.get("files") or {}), after, files)
    return changes or ["the request body differs (nothing a manifest sets)"]


def _prompt(before: Request, after: Request) -> list[str]:
    old, new = before.prompt, after.prompt
    if old == new or not isinstance(old, str) or not isinstance(new, str):
        return []
    diff = [
        line
        for line in difflib.unified_diff(_wrapped(old), _wrapped(new), lineterm="", n=1)
        if not line.startswith(("---", "+++", "@@"))
    ]
    shown = diff[:MAX_DIFF_LINES] + ([f"  … {len(diff) - MAX_DIFF_LINES} more lines"] if len(diff) > MAX_DIFF_LINES else [])
    return ["prompt changed:", *(f"  {line}" for line in shown)]


def _wrapped(text: str) -> list[str]:
    return [part for line in text.splitlines() for part in (textwrap.wrap(line, WRAP) or [""])]


def _settings(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    lines = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old != new:
            lines.append(f"{name}: {_shown(old)} → {_shown(new)}")
    return lines


def _shown(value: Any) -> str:
    if value is None:
        return "(not set)"
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:59] + "…"


def _media(before: Request, old_files: Mapping[str, str], after: Request, new_files: Mapping[str, str]) -> list[str]:
    def items(request: Request) -> list[tuple[str, str]]:
        out = [("first frame", url) for url in request.first_frames]
        out += [(f"{ref.kind} reference", ref.url) for ref in request.references]
        out += [("voice", ref.voice) for ref in request.references if ref.voice]
        out += [("voice", request.voice)] if request.voice else []
        return out

    old_items, new_items = items(before), items(after)
    lines = []
    for role, url in new_items:
        if (role, url) not in old_items:
            lines.append(f"{role} added: {_name(url)}")
        elif url in new_files and old_files.get(url) not in (None, new_files[url]):
            lines.append(f"{_name(url)}: content changed (sha256 {old_files[url][:12]}… → {new_files[url][:12]}…)")
    lines += [f"{role} removed: {_name(url)}" for role, url in old_items if (role, url) not in new_items]
    if not lines and [u for _, u in old_items] != [u for _, u in new_items]:
        lines.append("the references' order changed")
    return lines


def _name(url: str) -> str:
    return url.removeprefix(LOCAL_SCHEME + ":") if not url.startswith("data:") else "an inline image"
