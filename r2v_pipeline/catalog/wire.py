"""Request bodies: a provider-neutral request, and the JSON each wire format sends.

``build_body`` is what the planner sends; ``read_body`` is how the simulator
reads what it receives. Both place settings at the paths the model's table
gives, so a new parameter is a table row, not code here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .spec import Kind, ModelSpec

_MEDIA_TYPES: dict[str, Kind] = {"reference_image": "image", "reference_video": "video"}
_FIRST_FRAME = "first_frame"


@dataclass(frozen=True)
class Reference:
    kind: Kind
    url: str
    voice: str | None = None


@dataclass
class Request:
    """What a request asks for, whatever its wire format."""

    prompt: Any = None
    references: list[Reference] = field(default_factory=list)
    first_frames: list[str] = field(default_factory=list)
    voice: str | None = None  # one voice for the whole request
    settings: dict[str, Any] = field(default_factory=dict)  # other settings, by manifest name
    malformed: list[tuple[str, str]] = field(default_factory=list)  # (wire field, problem) found by read_body


def build_body(spec: ModelSpec, request: Request) -> dict[str, Any]:
    """The JSON body for ``request`` (settings that are None are left out)."""
    body: dict[str, Any] = {"model": spec.model} if spec.wire != "freepik" else {}
    _put(body, spec.settings["prompt"].path, request.prompt)
    values = {name: request.settings.get(name) for name in spec.settings if name != "prompt"}
    for name in ("negative_prompt",):  # text settings sit beside the prompt, before the media
        _put(body, spec.settings[name].path, values.pop(name))
    if spec.wire == "dashscope-media":
        media = [{"type": _FIRST_FRAME, "url": url} for url in request.first_frames]
        for ref in request.references:
            item = {"type": f"reference_{ref.kind}", "url": ref.url}
            if ref.voice is not None:
                item["reference_voice"] = ref.voice
            media.append(item)
        body.setdefault("input", {})["media"] = media
        _put(body, ("input", "reference_voice"), request.voice)
    elif spec.wire == "dashscope-reference-urls":
        body.setdefault("input", {})["reference_urls"] = [ref.url for ref in request.references]
    else:
        for kind in ("image", "video"):
            items = [_freepik_item(ref) for ref in request.references if ref.kind == kind]
            if items:
                body[f"{kind}_urls"] = items
        if request.first_frames:
            body["start_image_url"] = request.first_frames[0]
    for name, value in values.items():
        _put(body, spec.settings[name].path, value)
    return body


def reference_items(spec: ModelSpec, body: dict[str, Any], references: list[Reference]) -> list[dict[str, Any]] | None:
    """Each reference's own object in ``body``, in reference order; None where the wire
    format gives references no object of their own (wan2.6's plain URLs)."""
    if spec.wire == "dashscope-media":
        items = [m for m in _get(body, ("input", "media")) or [] if isinstance(m, dict) and m.get("type") in _MEDIA_TYPES]
        return items if len(items) == len(references) else None
    if spec.wire == "freepik":
        seen = {"image": 0, "video": 0}
        out = []
        for ref in references:
            out.append(body[f"{ref.kind}_urls"][seen[ref.kind]])
            seen[ref.kind] += 1
        return out
    return None


def _freepik_item(ref: Reference) -> dict[str, str]:
    item = {"url": ref.url}
    if ref.voice is not None:
        item["reference_voice"] = ref.voice
    return item


def read_body(spec: ModelSpec, body: Any) -> Request:
    """The request a body asks for. Unknown fields are ignored, as providers do;
    values that cannot be read are listed in ``malformed``."""
    request = Request()
    if not isinstance(body, dict):
        request.malformed.append(("body", "the body is not a JSON object"))
        return request
    request.prompt = _get(body, spec.settings["prompt"].path)
    for name, setting in spec.settings.items():
        value = _get(body, setting.path)
        if name != "prompt" and value is not None:
            request.settings[name] = value
    if spec.wire == "dashscope-media":
        _read_media(_get(body, ("input", "media")), request)
        request.voice = _get(body, ("input", "reference_voice"))
    elif spec.wire == "dashscope-reference-urls":
        urls = _get(body, ("input", "reference_urls"))
        for i, url in enumerate(_as_list(urls, "input.reference_urls", request)):
            if isinstance(url, str):
                request.references.append(Reference(_kind_from_url(url), url))
            else:
                request.malformed.append((f"input.reference_urls[{i}]", "a reference URL must be a string"))
    else:
        for kind in ("image", "video"):
            key = f"{kind}_urls"
            for i, item in enumerate(_as_list(body.get(key), key, request)):
                url = item.get("url") if isinstance(item, dict) else None
                if isinstance(url, str):
                    request.references.append(Reference(kind, url, item.get("reference_voice")))  # type: ignore[arg-type]
                else:
                    request.malformed.append((f"{key}[{i}].url", "each item needs a url string"))
        if isinstance(body.get("start_image_url"), str):
            request.first_frames.append(body["start_image_url"])
    return request


def _read_media(media: Any, request: Request) -> None:
    for i, item in enumerate(_as_list(media, "input.media", request)):
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            request.malformed.append((f"input.media[{i}]", "each media item needs a type and a url"))
            continue
        kind = item.get("type")
        if kind == _FIRST_FRAME:
            request.first_frames.append(item["url"])
        elif kind in _MEDIA_TYPES:
            request.references.append(Reference(_MEDIA_TYPES[kind], item["url"], item.get("reference_voice")))
        else:
            request.malformed.append((f"input.media[{i}].type", f"unknown media type {kind!r}"))


def _as_list(value: Any, name: str, request: Request) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        request.malformed.append((name, "must be an array"))
        return []
    return value


# A wan2.6 reference URL does not say its kind; its extension is the only hint a
# server has before downloading it [guess].
_VIDEO_SUFFIXES = (".mp4", ".mov")


def _kind_from_url(url: str) -> Kind:
    path = url.split("?", 1)[0].lower()
    return "video" if path.endswith(_VIDEO_SUFFIXES) or url.startswith("data:video/") else "image"


def map_strings(node: Any, change: Callable[[str], str]) -> Any:
    """A copy of a JSON value with ``change`` applied to every string in it."""
    if isinstance(node, str):
        return change(node)
    if isinstance(node, list):
        return [map_strings(item, change) for item in node]
    if isinstance(node, dict):
        return {key: map_strings(value, change) for key, value in node.items()}
    return node


def _put(body: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    if value is None:
        return
    node = body
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def _get(body: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = body
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node
