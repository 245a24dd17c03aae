"""Freepik's hosted "WAN 2.7 Reference-to-Video" API.

Sources: Freepik's integration page and the project's API notes. Freepik
publishes no per-second billing rule; the project counts output seconds
[guess] so budgets still apply.
"""

from __future__ import annotations

from .dashscope import IMAGE_FORMATS, MB, NEGATIVE_PROMPT, SEED, VIDEO_FORMATS, VOICES
from .formats import RATIOS, RESOLUTIONS
from .spec import Boolean, Choice, Integer, LabelRule, MediaLimits, ModelSpec, Setting, Span, Text, Url

WAN27 = ModelSpec(
    provider="freepik",
    model="wan2.7-r2v",
    wire="freepik",
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
