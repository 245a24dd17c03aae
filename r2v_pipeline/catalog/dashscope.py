"""DashScope (Alibaba Cloud Model Studio) reference-to-video models.

Sources: the provider's reference-to-video guide and API reference, and the
project's API notes. A value marked [guess] is not documented; it is the
behaviour the project assumes and the simulator imitates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit

from .formats import RATIOS, RESOLUTIONS, SIZES
from .spec import (
    Boolean,
    BillingRule,
    Choice,
    Integer,
    LabelRule,
    MediaLimits,
    ModelSpec,
    Reaction,
    Setting,
    Span,
    Kind,
    ProviderTable,
    Text,
)
from .wire import as_list, get, put
from .wire_format import Reference, Request

MB = 1_000_000  # [guess] decimal megabytes: the stricter reading of "MB"

IMAGE_FORMATS = frozenset({"jpeg", "png", "bmp", "webp"})
VIDEO_FORMATS = frozenset({"mp4", "mov"})
VOICE_FORMATS = frozenset({"wav", "mp3"})

SEED = Integer(Span(0, 2_147_483_647))
NEGATIVE_PROMPT = Text(500)

# The input-video cap of 5 s shared by n videos, as the billing table states it.
INPUT_CAPS = {1: Decimal("5"), 2: Decimal("2.5"), 3: Decimal("1.65"), 4: Decimal("1.25"), 5: Decimal("1")}

VOICES = MediaLimits(VOICE_FORMATS, 15 * MB, seconds=Span(1, 10))

# Local images go inline as data URIs; videos and voices need the upload flow.
LOCAL_TRANSPORT: dict[str, Literal["inline", "upload"]] = {"image": "inline", "video": "upload", "audio": "upload"}
URL_SCHEMES = frozenset({"http", "https", "oss", "data"})

# --- wire formats -------------------------------------------------------------

_MEDIA_TYPES: dict[str, Kind] = {"reference_image": "image", "reference_video": "video"}
_FIRST_FRAME = "first_frame"
# Where a model that takes no voice for the whole request is refused one, the field is
# named as wan2.7 reads it.
VOICE_FIELD = "input.reference_voice"


@dataclass(frozen=True)
class MediaArray:
    """wan2.7: one ``input.media`` array of typed items, first frames first."""

    names_model: bool = True
    kinds_declared: bool = True
    references_field: str = "input.media"
    first_frame_field: str = "input.media"
    voice_field: str = VOICE_FIELD

    def put_media(self, body: dict[str, Any], request: Request) -> None:
        media = [{"type": _FIRST_FRAME, "url": url} for url in request.first_frames]
        for ref in request.references:
            item = {"type": f"reference_{ref.kind}", "url": ref.url}
            if ref.voice is not None:
                item["reference_voice"] = ref.voice
            media.append(item)
        body.setdefault("input", {})["media"] = media
        put(body, ("input", "reference_voice"), request.voice)

    def read_media(self, body: dict[str, Any], request: Request) -> None:
        for i, item in enumerate(as_list(get(body, ("input", "media")), "input.media", request)):
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
        request.voice = get(body, ("input", "reference_voice"))

    def reference_items(self, body: dict[str, Any], references: list[Reference]) -> list[dict[str, Any]] | None:
        items = [m for m in get(body, ("input", "media")) or [] if isinstance(m, dict) and m.get("type") in _MEDIA_TYPES]
        return items if len(items) == len(references) else None

    def reference_field(self, kind: Kind, request: Request, index: int) -> str:
        return f"input.media[{index + len(request.first_frames)}]"  # first frames come first


@dataclass(frozen=True)
class ReferenceUrls:
    """wan2.6: ``input.reference_urls``, plain URLs that do not say their kind."""

    names_model: bool = True
    kinds_declared: bool = False
    references_field: str = "input.reference_urls"
    first_frame_field: str = "input.media"  # wan2.6 takes none; named as wan2.7 would
    voice_field: str = VOICE_FIELD

    def put_media(self, body: dict[str, Any], request: Request) -> None:
        body.setdefault("input", {})["reference_urls"] = [ref.url for ref in request.references]

    def read_media(self, body: dict[str, Any], request: Request) -> None:
        urls = get(body, ("input", "reference_urls"))
        for i, url in enumerate(as_list(urls, "input.reference_urls", request)):
            if isinstance(url, str):
                request.references.append(Reference(_kind_from_url(url), url))
            else:
                request.malformed.append((f"input.reference_urls[{i}]", "a reference URL must be a string"))

    def reference_items(self, body: dict[str, Any], references: list[Reference]) -> list[dict[str, Any]] | None:
        return None

    def reference_field(self, kind: Kind, request: Request, index: int) -> str:
        return f"input.reference_urls[{index}]"


# A wan2.6 reference URL does not say its kind; its extension is the only hint a
# server has before downloading it [guess].
_VIDEO_SUFFIXES = (".mp4", ".mov")


def _kind_from_url(url: str) -> Kind:
    path = url.split("?", 1)[0].lower()
    return "video" if path.endswith(_VIDEO_SUFFIXES) or url.startswith("data:video/") else "image"


WAN27 = ModelSpec(
    provider="dashscope",
    model="wan2.7-r2v",
    wire=MediaArray(),
    labels=LabelRule(
        image="Image {n}",
        video="Video {n}",
        sole={"image": "reference image", "video": "reference video"},
    ),
    settings={
        "prompt": Setting(("input", "prompt"), Text(5000)),
        "negative_prompt": Setting(("input", "negative_prompt"), NEGATIVE_PROMPT),
        "resolution": Setting(("parameters", "resolution"), Choice(RESOLUTIONS)),
        "ratio": Setting(("parameters", "ratio"), Choice(RATIOS)),
        "duration": Setting(("parameters", "duration"), Integer(Span(2, 15))),
        "prompt_extend": Setting(("parameters", "prompt_extend"), Boolean()),
        "watermark": Setting(("parameters", "watermark"), Boolean()),
        "seed": Setting(("parameters", "seed"), SEED),
    },
    references=Span(1, 5),
    max_images=5,
    max_videos=5,
    first_frame=True,
    reference_voice=True,
    shot_voice=True,
    storyboard=True,
    durations_with_video=Span(2, 10),
    defaults={"resolution": "1080P", "ratio": "16:9", "duration": 5, "prompt_extend": True, "watermark": False},
    images=MediaLimits(IMAGE_FORMATS, 20 * MB, side_px=Span(240, 8000)),
    videos=MediaLimits(VIDEO_FORMATS, 100 * MB),
    voices=VOICES,
    url_schemes=URL_SCHEMES,
    local_transport=LOCAL_TRANSPORT,
    billing=BillingRule(INPUT_CAPS, split_over="videos"),
    # A request without media is accepted and fails later [capture].
    reactions={"references.missing": Reaction.FAIL},
)


def _wan26(model: str, silent_video: bool) -> ModelSpec:
    audio = Boolean() if silent_video else Choice((True,), hint="silent video needs wan2.6-r2v-flash")
    return ModelSpec(
        provider="dashscope",
        model=model,
        wire=ReferenceUrls(),
        labels=LabelRule(image="character{n}", video="character{n}", shared_count=True),
        settings={
            "prompt": Setting(("input", "prompt"), Text(1500)),
            "negative_prompt": Setting(("input", "negative_prompt"), NEGATIVE_PROMPT),
            "size": Setting(("parameters", "size"), Choice(SIZES)),
            "duration": Setting(("parameters", "duration"), Integer(Span(2, 10))),
            "audio": Setting(("parameters", "audio"), audio),
            "shot_type": Setting(("parameters", "shot_type"), Choice(("single", "multi"))),
            "watermark": Setting(("parameters", "watermark"), Boolean()),
            "seed": Setting(("parameters", "seed"), SEED),
        },
        references=Span(1, 5),
        max_images=5,
        max_videos=3,
        first_frame=False,
        reference_voice=False,
        shot_voice=False,
        storyboard=False,
        durations_with_video=Span(2, 10),
        # [guess] watermark on: seed 000 lists wan2.7's "off by default" as a difference from
        # wan2.6 (one third-party client says false): unsettled, so it is always sent.
        defaults={"size": "1920*1080", "duration": 5, "audio": True, "shot_type": "single", "watermark": True},
        explicit={"watermark": False},
        images=MediaLimits(IMAGE_FORMATS, 10 * MB, side_px=Span(240, 5000)),
        videos=MediaLimits(VIDEO_FORMATS, 100 * MB, seconds=Span(1, 30)),
        voices=VOICES,
        url_schemes=URL_SCHEMES,
        local_transport=LOCAL_TRANSPORT,
        billing=BillingRule(INPUT_CAPS, split_over="references"),
        reactions={
            # Over-long text is cut yet billed in full [doc].
            "prompt": Reaction.TRUNCATE,
            "negative_prompt": Reaction.TRUNCATE,
            # A size off the list is accepted and the task fails later [capture].
            "size": Reaction.FAIL,
            "references.missing": Reaction.FAIL,
            # Only the flash model honours audio [doc]; the other one ignores it.
            **({} if silent_video else {"audio": Reaction.IGNORE}),
        },
    )


WAN26 = _wan26("wan2.6-r2v", silent_video=False)
WAN26_FLASH = _wan26("wan2.6-r2v-flash", silent_video=True)

MODELS: dict[str, ModelSpec] = {m.model: m for m in (WAN27, WAN26, WAN26_FLASH)}
DEFAULT_MODEL = "wan2.7-r2v"

# The account's limits [doc]: tasks in progress, submissions and task queries per second.
QUOTA = {"in_progress": 5, "submits_per_second": 5.0, "queries_per_second": 20.0}
# Submit refusals that are the account's, not the request's [doc: error table]: an overdue
# account (400 Arrearage), a spent quota (429 Throttling.AllocationQuota), and the 401/403
# of a bad key or missing permission, which every provider's table counts by status.
ACCOUNT_LOST_CODES = ("Arrearage", "Throttling.AllocationQuota", "InvalidApiKey")
# A FAILED task with one of these codes may succeed if submitted again (failed tasks are not billed).
RESUBMIT_CODES = ("InternalError", "SystemError", "ModelServiceFailed")
# A FAILED task with one of these codes could not read its media [doc: "media could not be
# downloaded for inspection"]: an oss:// upload the provider no longer has (it restarted,
# 48 h passed) is uploaded again, once.
REUPLOAD_CODES = ("InvalidParameter.DataInspection",)

# Region -> API base URL. Model, key and endpoint must share a region.
REGIONS: dict[str, str] = {
    "cn": "https://dashscope.aliyuncs.com/api/v1",
    "intl": "https://dashscope-intl.aliyuncs.com/api/v1",
    "us": "https://dashscope-us.aliyuncs.com/api/v1",
}
DEFAULT_REGION = "intl"
SUBMIT_PATH = "/services/aigc/video-generation/video-synthesis"
# Models served in each region; a region missing here serves them all [doc]. Workspace
# regions are named by their region id (eu-central-1: Frankfurt).
REGION_MODELS: dict[str, frozenset[str]] = {"us": frozenset({"wan2.6-r2v"}), "eu-central-1": frozenset({"wan2.6-r2v"})}
# The region an API host serves [doc]: the three public hosts, and workspace-scoped
# hosts {WorkspaceId}.{region-id}.maas.aliyuncs.com.
HOSTS: dict[str, str] = {urlsplit(url).hostname or "": region for region, url in REGIONS.items()}
WORKSPACE_HOST = re.compile(r"^[^.]+\.(?P<region>[a-z]+-[a-z]+-[0-9]+)\.maas\.aliyuncs\.com$")
# [guess] Workspace region ids of the public regions: the models they serve are the same.
REGION_IDS: dict[str, str] = {"cn-beijing": "cn", "ap-southeast-1": "intl", "us-east-1": "us"}


def region_of(base_url: str) -> str | None:
    """The region an API base URL serves, from its host; None for a host r2v does not know
    (a proxy, a gateway, a simulator): then which models it serves cannot be checked."""
    host = (urlsplit(base_url).hostname or "").lower()
    if host in HOSTS:
        return HOSTS[host]
    workspace = WORKSPACE_HOST.match(host)
    if workspace is None:
        return None
    return REGION_IDS.get(workspace["region"], workspace["region"])


TABLE = ProviderTable(
    name="dashscope",
    models=MODELS,
    default_model=DEFAULT_MODEL,
    base_url=REGIONS[DEFAULT_REGION],
    key_variable="DASHSCOPE_API_KEY",
    quota=QUOTA,
    resubmit_codes=RESUBMIT_CODES,
    reupload_codes=REUPLOAD_CODES,
    submit_path=SUBMIT_PATH,
    regions=REGIONS,
    default_region=DEFAULT_REGION,
    region_of=region_of,
    region_models=REGION_MODELS,
    reserved_headers=("X-DashScope-Async", "X-DashScope-WorkSpace", "X-DashScope-OssResourceResolve"),
    account_lost_codes=ACCOUNT_LOST_CODES,
)
