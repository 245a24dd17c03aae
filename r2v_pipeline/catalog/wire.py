"""Request bodies: a provider-neutral request, and the JSON each wire format sends.

``build_body`` is what the planner sends; ``read_body`` is how the simulator
reads what it receives. Both place settings at the paths the model's table
gives, so a new parameter is a table row, not code here; where references,
first frames and voices go is the model's ``WireFormat`` (one object per format,
kept with its provider's table).
"""

from __future__ import annotations

from typing import Any, Callable

from .spec import ModelSpec
from .wire_format import Reference, Request, WireFormat

__all__ = ["Reference", "Request", "WireFormat", "build_body", "read_body", "reference_items", "map_strings"]


def build_body(spec: ModelSpec, request: Request) -> dict[str, Any]:
    """The JSON body for ``request`` (settings that are None are left out)."""
    body: dict[str, Any] = {"model": spec.model} if spec.wire.names_model else {}
    put(body, spec.settings["prompt"].path, request.prompt)
    values = {name: request.settings.get(name) for name in spec.settings if name != "prompt"}
    for name in ("negative_prompt",):  # text settings sit beside the prompt, before the media
        put(body, spec.settings[name].path, values.pop(name))
    spec.wire.put_media(body, request)
    for name, value in values.items():
        put(body, spec.settings[name].path, value)
    return body


def reference_items(spec: ModelSpec, body: dict[str, Any], references: list[Reference]) -> list[dict[str, Any]] | None:
    """Each reference's own object in ``body``, in reference order; None where the wire
    format gives references no object of their own (wan2.6's plain URLs)."""
    return spec.wire.reference_items(body, references)


def read_body(spec: ModelSpec, body: Any) -> Request:
    """The request a body asks for. Unknown fields are ignored, as providers do;
    values that cannot be read are listed in ``malformed``."""
    request = Request()
    if not isinstance(body, dict):
        request.malformed.append(("body", "the body is not a JSON object"))
        return request
    request.prompt = get(body, spec.settings["prompt"].path)
    for name, setting in spec.settings.items():
        value = get(body, setting.path)
        if name != "prompt" and value is not None:
            request.settings[name] = value
    spec.wire.read_media(body, request)
    return request


def as_list(value: Any, name: str, request: Request) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        request.malformed.append((name, "must be an array"))
        return []
    return value


def map_strings(node: Any, change: Callable[[str], str]) -> Any:
    """A copy of a JSON value with ``change`` applied to every string in it."""
    if isinstance(node, str):
        return change(node)
    if isinstance(node, list):
        return [map_strings(item, change) for item in node]
    if isinstance(node, dict):
        return {key: map_strings(value, change) for key, value in node.items()}
    return node


def put(body: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    if value is None:
        return
    node = body
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def get(body: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = body
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node
