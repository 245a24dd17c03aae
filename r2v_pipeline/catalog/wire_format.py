"""A provider-neutral request, and the shape of a wire format that sends one.

Apart from ``wire`` (which builds and reads bodies) so that a model's table can
name its format without the catalog's modules importing each other in a circle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from .media_info import Kind


@dataclass(frozen=True)
class Reference:
    """One reference as a body carries it: its kind, URL and any voice."""

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


class WireFormat(Protocol):
    """Where one wire format puts a request's media, and how it reads them back."""

    names_model: bool  # the body says its model ("model": …)
    kinds_declared: bool  # the body says which references are images and which videos
    references_field: str  # the references, as the provider names them in errors
    first_frame_field: str
    voice_field: str  # the voice for the whole request

    def put_media(self, body: dict[str, Any], request: Request) -> None: ...

    def read_media(self, body: dict[str, Any], request: Request) -> None: ...

    def reference_items(self, body: dict[str, Any], references: list[Reference]) -> list[dict[str, Any]] | None:
        """Each reference's own object in ``body``, in reference order; None where the
        format gives references no object of their own."""

    def reference_field(self, kind: Kind, request: Request, index: int) -> str:
        """Where the ``index``-th reference stands, as the provider names it."""
