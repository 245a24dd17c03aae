"""The validated manifest: plain dataclasses, every value still knowing its place."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from ..catalog import setting_names
from ..diagnostics import Position

if TYPE_CHECKING:
    from .selects import Selects

T = TypeVar("T")

CastKind = Literal["image", "video", "storyboard"]
URL_SCHEMES = ("http://", "https://", "oss://")

# Request settings a manifest gives elsewhere than among a shot's settings: the shot's
# own prompt, the provider's webhook_url.
SET_ELSEWHERE = ("prompt", "webhook_url")
# Settings of a shot (or its defaults) that are not request settings of the catalog's.
MANIFEST_ONLY = ("model", "extra_body", "extra_headers", "account")
# Settings a shot may set itself or take from defaults.
SETTINGS = (
    MANIFEST_ONLY[0],
    *(name for name in setting_names() if name not in SET_ELSEWHERE),
    *MANIFEST_ONLY[1:],
)


@dataclass(frozen=True)
class Value(Generic[T]):
    """A value from a manifest, with where it was written."""

    value: T
    pos: Position


@dataclass(frozen=True)
class Source:
    """A media file as a manifest names it: a local path or a URL."""

    text: str
    pos: Position
    base: Path  # the folder of the manifest that names it
    field: str = ""  # where in the manifest, as messages name it: cast.mia.image, shots[intro].voice

    @property
    def is_url(self) -> bool:
        return self.text.lower().startswith(URL_SCHEMES)

    @property
    def path(self) -> Path:
        return self.base / self.text


@dataclass(frozen=True)
class CastMember:
    """One named reference of a series' cast."""

    name: str
    kind: CastKind
    media: Source
    voice: Source | None
    description: str
    duration: Value[float] | None  # stated length of a remote video, for billing
    pos: Position  # where the name stands
    extra: Value[dict[str, Any]] | None = None  # merged into its media item, unchecked

    @property
    def reference_kind(self) -> Literal["image", "video"]:
        return "video" if self.kind == "video" else "image"


@dataclass(frozen=True)
class Shot:
    """One shot of an episode, as its manifest writes it."""

    id: str
    pos: Position  # where the id stands
    prompt: Value[str]
    prompt_line: int | None  # file line of the template's first line (block scalars)
    settings: dict[str, Value[Any]]  # set on the shot itself
    first_frame: Source | None = None
    voice: Source | None = None
    cast: tuple[Value[str], ...] = ()
    vars: dict[str, Value[Any]] = field(default_factory=dict)
    takes: Value[Any] | None = None
    pick: Value[int] | None = None  # the take an episode cut uses


@dataclass(frozen=True)
class PublicUrl:
    """A local folder also served at a public URL."""

    folder: Path
    base_url: str
    pos: Position


@dataclass(frozen=True)
class Account:
    """One of a provider's accounts: its key's variable (never the key), where it talks, its quotas."""

    name: Value[str]
    key_env: Value[str]
    pos: Position  # where the entry stands
    region: Value[str] | None = None
    base_url: Value[str] | None = None
    workspace: Value[str] | None = None
    quota: dict[str, Value[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Provider:
    """The provider a manifest names: region or address, quotas, accounts."""

    name: Value[str] | None = None
    region: Value[str] | None = None
    base_url: Value[str] | None = None
    workspace: Value[str] | None = None
    webhook_url: Value[str] | None = None
    public_urls: tuple[PublicUrl, ...] = ()
    quota: dict[str, Value[float]] = field(default_factory=dict)
    accounts: tuple[Account, ...] = ()  # none: the provider's one account, keyed by its table's variable


@dataclass(frozen=True)
class Episode:
    """One episode file with everything it extends folded in."""

    file: Path
    name: str  # how messages name the file
    pos: Position  # the top of the file
    series: str
    episode: str
    title: str | None
    provider: Provider
    defaults: dict[str, Value[Any]]
    cast: dict[str, CastMember]  # in declaration order, series first
    vars: dict[str, Value[Any]]
    shots: tuple[Shot, ...]
    prices: Value[dict[str, Any]] | None
    budget: dict[str, Value[float]]
    output_dir: Path
    state_dir: Path
    selects: Selects | None = None  # review's picks, from the file beside the episode
