"""report.json as text: the top level and each of its lists and tables one entry a line.

A 1,000-shot report is megabytes; ``json.dumps(indent=2)`` writes it in pure Python,
slowly, where a line per entry goes through the C encoder and still diffs shot by shot.
"""

from __future__ import annotations

import json
from typing import Any


def report_json(report: dict[str, Any]) -> str:
    """The same data as ``json.dumps(report)``, laid out for people and diffs."""
    entries = [f"  {_compact(key)}: {_expanded(value)}" for key, value in report.items()]
    return "{\n" + ",\n".join(entries) + "\n}\n"


def _expanded(value: Any) -> str:
    if isinstance(value, list) and value:
        return "[\n" + ",\n".join(f"    {_compact(item)}" for item in value) + "\n  ]"
    if isinstance(value, dict) and value:
        return "{\n" + ",\n".join(f"    {_compact(key)}: {_compact(item)}" for key, item in value.items()) + "\n  }"
    return _compact(value)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
