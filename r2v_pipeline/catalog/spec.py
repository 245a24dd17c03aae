"""The shape of a model's entry in a provider table.

Everything a provider accepts, rejects, ignores or bills is a value here; the
functions in ``check``, ``billing``, ``labels`` and ``wire`` read these values
and never name a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Callable, Literal, Mapping, Union

from .media_info import Kind, MediaKind  # noqa: F401  (Kind: the tables import it from here)
from .wire_format import WireFormat


@dataclass(frozen=True)
class Span:
    """An inclusive range of numbers."""

    lo: float
    hi: float

    def __contains__(self, x: object) -> bool:
        return isinstance(x, (int, float)) and self.lo <= x <= self.hi

    def __str__(self) -> str:
        return f"{_num(self.lo)}–{_num(self.hi)}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


# --- setting domains -------------------------------------------------------


@dataclass(frozen=True)
class Integer:
    """A whole-number setting within a span."""

    span: Span


@dataclass(frozen=True)
class Boolean:
    """A true/false setting."""


@dataclass(frozen=True)
class Choice:
    """A setting that takes one of a few values."""

    values: tuple
    hint: str = ""  # said after the list of accepted values


@dataclass(frozen=True)
class Text:
    """A text setting of at most so many characters."""

    max_chars: int


@dataclass(frozen=True)
class Url:
    """A setting that takes a URL."""


Domain = Union[Integer, Boolean, Choice, Text, Url]


class Reaction(Enum):
    """What the provider does with a request that breaks a rule."""

    REJECT = "reject"  # answers 400 at submit
    FAIL = "fail"  # accepts, then the task ends FAILED
    IGNORE = "ignore"  # accepts and silently drops the value
    TRUNCATE = "truncate"  # accepts, cuts the text, still bills


@dataclass(frozen=True)
class Setting:
    """One request parameter: where it goes in the body and what it accepts."""

    path: tuple[str, ...]
    domain: Domain


@dataclass(frozen=True)
class MediaLimits:
    """What a provider accepts of one kind of reference file."""

    formats: frozenset[str]  # as the probe names them: png jpeg bmp webp mp4 mov wav mp3
    max_bytes: int
    side_px: Span | None = None  # every side of an image
    seconds: Span | None = None  # media duration


@dataclass(frozen=True)
class LabelRule:
    """How a prompt names the n-th reference of a kind."""

    image: str  # format with {n}
    video: str
    shared_count: bool = False  # one counter for images and videos together
    sole: Mapping[str, str] = field(default_factory=dict)  # label when it is the only reference


@dataclass(frozen=True)
class BillingRule:
    """Billed seconds = output seconds + input video seconds, each video capped.

    ``split_over`` says which references share the input cap: "videos" (only the
    reference videos count) or "references" (images and videos together);
    ``caps`` gives each video's cap by that count, exactly as the provider's
    table states it (3 shares 1.65 s each, not 5/3).
    """

    caps: Mapping[int, Decimal]
    split_over: Literal["videos", "references"]


@dataclass(frozen=True)
class ModelSpec:
    """One model of one provider: its settings, limits, labels and wire format."""

    provider: str
    model: str
    wire: WireFormat  # where references, first frames and voices go in a body
    labels: LabelRule
    settings: Mapping[str, Setting]  # manifest setting name -> body placement and domain
    references: Span  # images + videos (first frame not counted)
    max_images: int
    max_videos: int
    first_frame: bool
    reference_voice: bool  # a voice per image/video reference
    shot_voice: bool  # one voice for the whole request
    storyboard: bool  # a multi-panel storyboard image is understood
    durations_with_video: Span  # the duration setting's range holds with images only
    defaults: Mapping[str, object]  # what the provider assumes when a setting is absent
    images: MediaLimits
    videos: MediaLimits
    voices: MediaLimits
    url_schemes: frozenset[str]
    # how a local file reaches the provider, per media kind; absent = it cannot
    local_transport: Mapping[str, Literal["inline", "upload"]]
    billing: BillingRule | None  # None: the provider bills output seconds only
    reactions: Mapping[str, Reaction] = field(default_factory=dict)  # topic -> reaction, default REJECT
    fingerprint_excludes: frozenset[tuple[str, ...]] = frozenset()  # delivery-only body paths
    # Settings always sent, with the manifest's value or this one: where the documents
    # leave the provider's default unsettled, the request says what the manifest means.
    explicit: Mapping[str, object] = field(default_factory=dict)
    family: str | None = None  # a dated snapshot id's model (its table); None: the model is its own family

    @property
    def key(self) -> tuple[str, str]:
        return (self.provider, self.model)

    @property
    def table(self) -> str:
        """The model whose table this is: itself, or a snapshot's model."""
        return self.family or self.model

    @property
    def kinds_declared(self) -> bool:
        """Whether the body says which references are images and which videos."""
        return self.wire.kinds_declared

    def reaction(self, topic: str) -> Reaction:
        return self.reactions.get(topic, Reaction.REJECT)

    def limits_for(self, kind: MediaKind) -> MediaLimits:
        return {"image": self.images, "video": self.videos, "audio": self.voices}[kind]


@dataclass(frozen=True)
class Endpoint:
    """Where a target's requests go, as its provider's table reads a manifest's choices."""

    base_url: str
    region: str | None  # None: the provider has no regions, or the host is not one r2v knows
    unknown_host: bool = False  # a base URL whose region (and so models) cannot be told


@dataclass(frozen=True)
class ProviderTable:
    """Everything the catalog knows of one provider: its models and its account."""

    name: str
    models: Mapping[str, ModelSpec]
    default_model: str
    base_url: str  # the API base URL when a manifest names neither one nor a region
    key_variable: str  # the environment variable that holds the API key
    quota: Mapping[str, float]  # in_progress, submits_per_second, queries_per_second
    resubmit_codes: tuple[str, ...]  # a FAILED task with one of these may succeed if submitted again
    reupload_codes: tuple[str, ...]  # a FAILED task with one of these could not read an upload
    submit_path: str  # where the provider takes new tasks, below its base URL
    regions: Mapping[str, str] = field(default_factory=dict)  # region -> API base URL; empty: one fixed base URL
    default_region: str | None = None
    # The region a base URL serves, None for a host r2v does not know; absent: no regions.
    region_of: Callable[[str], str | None] | None = None
    region_models: Mapping[str, frozenset[str]] = field(default_factory=dict)  # a region missing here serves every model
    # Headers its client writes itself or that carry its key: a manifest may not set them.
    reserved_headers: tuple[str, ...] = ()
    # A submit refused with one of these HTTP statuses or codes says the account itself
    # cannot be used (a bad key, no permission, unpaid, quota spent): no other shot
    # would fare better through it, so a run takes it out of its pool.
    account_lost_statuses: tuple[int, ...] = (401, 403)
    account_lost_codes: tuple[str, ...] = ()

    def account_lost(self, status: int | None, code: str | None) -> bool:
        """Whether a refusal says the account, not the request, is at fault."""
        return status in self.account_lost_statuses or bool(code and code in self.account_lost_codes)

    def endpoint(self, base_url: str | None, region: str | None) -> Endpoint:
        """Where requests go: a given base URL wins (its host says its region), else the
        region's (or the default region's) URL, else the provider's own."""
        if base_url:
            found = self.region_of(base_url) if self.region_of is not None else None
            return Endpoint(base_url, found, unknown_host=self.region_of is not None and found is None)
        if self.regions:
            chosen = region or self.default_region or next(iter(self.regions))
            return Endpoint(self.regions[chosen], chosen)
        return Endpoint(self.base_url, None)

    def serves(self, region: str | None, model: str) -> frozenset[str] | None:
        """The models ``region`` serves when ``model`` is not one of them; None when it is."""
        served = self.region_models.get(region or "")
        return served if served is not None and model not in served else None
