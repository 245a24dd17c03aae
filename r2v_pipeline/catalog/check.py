"""Every documented limit of a model, checked against one request.

The planner runs this before anything is sent and refuses on any violation;
the simulator runs the same function on what it receives and answers the way
the provider would (``Violation.reaction``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .media_info import MediaInfo
from .spec import Boolean, Choice, Integer, Kind, MediaKind, ModelSpec, Reaction, Text, Url
from .wire import Request

CODE_INVALID = "InvalidParameter"
CODE_URL = "InvalidURL"
CODE_FORMAT = "BadRequest.UnsupportedFileFormat"
CODE_TOO_LARGE = "BadRequest.TooLarge"


@dataclass(frozen=True)
class Violation:
    """One way a request breaks a model's rules, said where the provider would say it."""

    topic: str  # the rule: a setting name, "references", "reference", "first_frame", "voice", …
    field: str  # where in the body, as the provider would name it
    message: str  # for a person
    code: str = CODE_INVALID
    reaction: Reaction = Reaction.REJECT
    url: str | None = None  # the media file the violation is about


def check_request(
    spec: ModelSpec,
    request: Request,
    facts: Mapping[str, MediaInfo] | None = None,
    local_scheme: str | None = None,
) -> list[Violation]:
    """All violations of ``spec``'s limits by ``request``.

    ``facts`` gives what is known of media by URL (probed bytes); media without
    facts are checked by URL only. URLs of ``local_scheme`` stand for local files
    the caller delivers by the model's local transport.
    """
    found = _Found(spec)
    facts = facts or {}
    for name, problem in request.malformed:
        found.add("body", name, problem)
    _check_prompt(spec, request, found)
    for name, value in request.settings.items():
        _check_setting(spec, name, value, found)
    kinds = [_kind(spec, ref.kind, facts.get(ref.url)) for ref in request.references]
    _check_counts(spec, request, kinds, found)
    _check_duration_with_video(spec, request, kinds, found)
    for i, (ref, kind) in enumerate(zip(request.references, kinds)):
        field = spec.wire.reference_field(kind, request, i)
        _check_media(spec, ref.url, kind, field, facts, local_scheme, found)
        if ref.voice is not None:
            if not spec.reference_voice:
                found.add("voice", field, f"{spec.model} takes no reference voice")
            else:
                _check_media(spec, ref.voice, "audio", field + ".reference_voice", facts, local_scheme, found)
    for url in request.first_frames:
        _check_media(spec, url, "image", spec.wire.first_frame_field, facts, local_scheme, found)
    if request.voice is not None:
        if not spec.shot_voice:
            found.add("voice", spec.wire.voice_field, f"{spec.model} takes no voice for the whole request")
        else:
            _check_media(spec, request.voice, "audio", spec.wire.voice_field, facts, local_scheme, found)
    return found.items


class _Found:
    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.items: list[Violation] = []

    def add(self, topic: str, field: str, message: str, code: str = CODE_INVALID, url: str | None = None) -> None:
        self.items.append(Violation(topic, field, message, code, self.spec.reaction(topic), url))


def _check_prompt(spec: ModelSpec, request: Request, found: _Found) -> None:
    field = ".".join(spec.settings["prompt"].path)
    if not isinstance(request.prompt, str) or not request.prompt.strip():
        found.add("prompt.missing", field, "a prompt is required")
        return
    _check_setting(spec, "prompt", request.prompt, found)


def _check_setting(spec: ModelSpec, name: str, value: Any, found: _Found) -> None:
    setting = spec.settings.get(name)
    if setting is None:
        found.add(name, name, f"{name} is not a parameter of {spec.model}")
        return
    field = ".".join(setting.path)
    domain = setting.domain
    if isinstance(domain, Integer):
        if not isinstance(value, int) or isinstance(value, bool):
            found.add(name, field, f"{name} must be a whole number, not {value!r}")
        elif value not in domain.span:
            found.add(name, field, f"{name} {value} is outside {domain.span} for {spec.model}")
    elif isinstance(domain, Boolean):
        if not isinstance(value, bool):
            found.add(name, field, f"{name} must be true or false, not {value!r}")
    elif isinstance(domain, Choice):
        if value not in domain.values or isinstance(value, bool) != isinstance(domain.values[0], bool):
            accepted = ", ".join(_show(v) for v in domain.values)
            hint = f" ({domain.hint})" if domain.hint else ""
            found.add(name, field, f"{name} {_show(value)} is not accepted by {spec.model}: use {accepted}{hint}")
    elif isinstance(domain, Text):
        if not isinstance(value, str):  # its own topic: a provider that cuts long text still refuses this
            found.add(f"{name}.type", field, f"{name} must be text")
        elif len(value) > domain.max_chars:
            found.add(
                name,
                field,
                f"{name} is {len(value)} characters; {spec.model} takes at most {domain.max_chars}",
            )
    elif isinstance(domain, Url):
        if not isinstance(value, str) or _scheme(value) not in ("http", "https"):
            found.add(name, field, f"{name} must be an http(s) URL", CODE_URL)


def _check_counts(spec: ModelSpec, request: Request, kinds: list[Kind], found: _Found) -> None:
    refs_field = spec.wire.references_field
    images, videos = kinds.count("image"), kinds.count("video")
    if not kinds:
        besides = " besides the first frame" if request.first_frames else ""
        found.add("references.missing", refs_field, f"{spec.model} needs at least one reference image or video{besides}")
    elif len(kinds) > spec.references.hi:
        found.add("references", refs_field, f"{len(kinds)} references; {spec.model} takes at most {int(spec.references.hi)} images and videos in all")
    if images > spec.max_images:
        found.add("references", refs_field, f"{images} reference images; {spec.model} takes at most {spec.max_images}")
    if videos > spec.max_videos:
        found.add("references", refs_field, f"{videos} reference videos; {spec.model} takes at most {spec.max_videos}")
    if request.first_frames and not spec.first_frame:
        found.add("first_frame", refs_field, f"{spec.model} takes no first frame")
    elif len(request.first_frames) > 1:
        found.add("first_frame", refs_field, f"{len(request.first_frames)} first frames; {spec.model} takes one at most")


def _check_duration_with_video(spec: ModelSpec, request: Request, kinds: list[Kind], found: _Found) -> None:
    duration = request.settings.get("duration", spec.defaults.get("duration"))
    if "video" not in kinds or not isinstance(duration, int) or isinstance(duration, bool):
        return
    span = spec.durations_with_video
    if duration not in span:
        field = ".".join(spec.settings["duration"].path)
        found.add("duration", field, f"duration {duration} is outside {span} for {spec.model} with a reference video")


def _check_media(
    spec: ModelSpec,
    url: Any,
    kind: MediaKind,
    field: str,
    facts: Mapping[str, MediaInfo],
    local_scheme: str | None,
    found: _Found,
) -> None:
    role = {"image": "an image", "video": "a video", "audio": "a voice"}[kind]
    if not isinstance(url, str) or not url:
        found.add("reference", field, f"{role} needs a URL", CODE_URL)
        return
    scheme = _scheme(url)
    if local_scheme is not None and scheme == local_scheme:
        if kind not in spec.local_transport:
            found.add(
                "reference",
                field,
                f"{spec.provider} fetches only public URLs; map this file's folder to one in provider.public_urls",
                CODE_URL,
                url,
            )
    elif scheme == "data":
        if kind != "image" or "data" not in spec.url_schemes:
            found.add("reference", field, f"{spec.model} takes inline data only for images", CODE_URL, url)
    elif scheme not in spec.url_schemes:
        schemes = " or ".join(sorted(s for s in spec.url_schemes if s != "data"))
        found.add("reference", field, f"{_short(url)} is not a URL {spec.provider} can fetch (use {schemes})", CODE_URL, url)
        return
    info = facts.get(url)
    if info is not None:
        _check_facts(spec, info, kind, field, url, found)


def _check_facts(spec: ModelSpec, info: MediaInfo, kind: MediaKind, field: str, url: str, found: _Found) -> None:
    limits = spec.limits_for(kind)
    accepted = " or ".join(sorted(f.upper() for f in limits.formats))
    if info.kind != kind or info.format not in limits.formats:
        found.add("reference", field, f"it is {info.describe()}; {spec.model} takes {accepted} for this", CODE_FORMAT, url)
        return
    if info.bytes > limits.max_bytes:
        found.add(
            "reference",
            field,
            f"it is {info.bytes / 1e6:.1f} MB; {spec.model} takes {kind} files up to {limits.max_bytes / 1e6:g} MB",
            CODE_TOO_LARGE,
            url,
        )
    if limits.side_px is not None and info.width and info.height:
        if info.width not in limits.side_px or info.height not in limits.side_px:
            found.add(
                "reference",
                field,
                f"it is {info.width}×{info.height} px; {spec.model} takes images of {limits.side_px} px on every side",
                url=url,
            )
    if limits.seconds is not None and info.seconds is not None and info.seconds not in limits.seconds:
        found.add(
            "reference",
            field,
            f"it lasts {info.seconds:.2f} s; {spec.model} takes {kind} of {limits.seconds} s",
            url=url,
        )


def _kind(spec: ModelSpec, declared: Kind, info: MediaInfo | None) -> Kind:
    """Where the body does not say a reference's kind, its bytes do."""
    if not spec.kinds_declared and info is not None and info.kind in ("image", "video"):
        return info.kind  # type: ignore[return-value]
    return declared


def _scheme(url: str) -> str:
    head, sep, _ = url.partition(":")
    return head.lower() if sep else ""


def _short(url: str, limit: int = 60) -> str:
    return url if len(url) <= limit else url[: limit - 1] + "…"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else str(value)
