"""Freepik's hosted "WAN 2.7 Reference-to-Video" API.

Sources: Freepik's integration page and the project's API notes. Freepik
publishes no per-second billing rule; the project counts output seconds
[guess] so budgets still apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .dashscope import IMAGE_FORMATS, MB, NEGATIVE_PROMPT, SEED, VIDEO_FORMATS, VOICE_FIELD, VOICES
from .formats import RATIOS, RESOLUTIONS
from .spec import Boolean, Choice, Integer, Kind, LabelRule, MediaLimits, ModelSpec, ProviderTable, Setting, Span, Text, Url
from .wire import as_list
from .wire_format import Reference, Request


@dataclass(frozen=True)
class KindUrls:
    """``image_urls`` and ``video_urls``, lists of ``{url, reference_voice}``, and one
    ``start_image_url``; the endpoint names the model, the body does not."""

    names_model: bool = False
    kinds_declared: bool = True
    references_field: str = "image_urls"
    first_frame_field: str = "start_image_url"
    voice_field: str = VOICE_FIELD  # Freepik takes no voice for the whole request

    def put_media(self, body: dict[str, Any], request: Request) -> None:
        for kind in ("image", "video"):
            items = [_item(ref) for ref in request.references if ref.kind == kind]
            if items:
                body[f"{kind}_urls"] = items
        if request.first_frames:
            body["start_image_url"] = request.first_frames[0]

    def read_media(self, body: dict[str, Any], request: Request) -> None:
        for kind in ("image", "video"):
            key = f"{kind}_urls"
            for i, item in enumerate(as_list(body.get(key), key, request)):
                url = item.get("url") if isinstance(item, dict) else None
                if isinstance(url, str):
                    request.references.append(Reference(kind, url, item.get("reference_voice")))  # type: ignore[arg-type]
                else:
                    request.malformed.append((f"{key}[{i}].url", "each item needs a url string"))
        if isinstance(body.get("start_image_url"), str):
            request.first_frames.append(body["start_image_url"])

    def reference_items(self, body: dict[str, Any], references: list[Reference]) -> list[dict[str, Any]] | None:
        seen = {"image": 0, "video": 0}
        out = []
        for ref in references:
            out.append(body[f"{ref.kind}_urls"][seen[ref.kind]])
            seen[ref.kind] += 1
        return out

    def reference_field(self, kind: Kind, request: Request, index: int) -> str:
        same_kind = sum(1 for ref in request.references[:index] if ref.kind == kind)
        return f"{kind}_urls[{same_kind}].url"


def _item(ref: Reference) -> dict[str, str]:
    item = {"url": ref.url}
    if ref.voice is not None:
        item["reference_voice"] = ref.voice
    return item


WAN27 = ModelSpec(
    provider="freepik",
    model="wan2.7-r2v",
    wire=KindUrls(),
    labels=LabelRule(image="Image {n}", video="Video {n}"),
    settings={
        "prompt": Setting(("prompt",), Text(5000)),
        "negative_prompt": Setting(("negative_prompt",), NEGATIVE_PROMPT),
        "ratio": Setting(("aspect_ratio",), Choice(RATIOS)),
        "resolution": Setting(("resolution",), Choice(RESOLUTIONS)),
        "duration": Setting(("duration",), Integer(Span(2, 10))),
        "seed": Setting(("seed",), SEED),
        "prompt_extend": Setting(("additional_settings", "prompt_extend"), Boolean()),
        "webhook_url": Setting(("webhook_url",), Url()),
    },
    references=Span(1, 5),
    max_images=5,
    max_videos=5,
    first_frame=True,
    reference_voice=True,
    shot_voice=False,
    storyboard=False,
    durations_with_video=Span(2, 10),
    defaults={"ratio": "16:9", "resolution": "1080P", "duration": 5, "prompt_extend": True},
    images=MediaLimits(IMAGE_FORMATS, 20 * MB, side_px=Span(240, 8000)),
    videos=MediaLimits(VIDEO_FORMATS, 100 * MB),
    voices=VOICES,  # [guess] Freepik states no voice limits; DashScope's apply
    url_schemes=frozenset({"http", "https"}),
    local_transport={},  # every file must be at a public URL
    billing=None,
    # Where the result is announced does not change the video.
    fingerprint_excludes=frozenset({("webhook_url",)}),
)

MODELS: dict[str, ModelSpec] = {WAN27.model: WAN27}
# [guess] Freepik documents 10 requests/s averaged over two minutes and no limit on
# tasks in progress; the runner keeps to DashScope's 5 in progress and under the rate.
QUOTA = {"in_progress": 5, "submits_per_second": 2.0, "queries_per_second": 6.0}
RESUBMIT_CODES: tuple[str, ...] = ()  # a FAILED task gives no reason: never resubmitted blindly
REUPLOAD_CODES: tuple[str, ...] = ()  # Freepik fetches public URLs itself: nothing is uploaded
DEFAULT_MODEL = "wan2.7-r2v"
BASE_URL = "https://api.freepik.com"
ENDPOINT = "/v1/ai/reference-to-video/wan-2-7"

# One fixed base URL and no regions: a manifest's base_url still wins (a proxy, the renamed host).
TABLE = ProviderTable(
    name="freepik",
    models=MODELS,
    default_model=DEFAULT_MODEL,
    base_url=BASE_URL,
    key_variable="FREEPIK_API_KEY",
    quota=QUOTA,
    resubmit_codes=RESUBMIT_CODES,
    reupload_codes=REUPLOAD_CODES,
    submit_path=ENDPOINT,
    reserved_headers=("x-freepik-api-key", "x-magnific-api-key"),
)
