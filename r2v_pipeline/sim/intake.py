"""A received submit body, judged the way the provider judges it.

Shared by the DashScope and Freepik routes: read the body with the model's
table, learn what the media are, check every limit, then apply each
violation's reaction — REJECT answers 400, FAIL makes a task that fails,
IGNORE drops the value, TRUNCATE cuts the text — and work out the video the
task will make and the seconds it will bill.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..catalog.billing import Billed, billed_seconds, seconds
from ..catalog.check import Violation, check_request
from ..catalog.formats import frame_size, nearest_ratio, tier_of
from ..catalog.spec import Choice, Kind, ModelSpec, Reaction, Text
from ..catalog.wire import Request, read_body
from ..catalog.media_info import MediaInfo
from .faults import unit
from .ledger import content_fingerprint
from .media import Resolved, resolve
from .tasks import Failure, Output, Task

if TYPE_CHECKING:
    from .state import SimState

# A file the provider could not download for inspection [doc: "media could not be
# downloaded for inspection"]: the closest documented code for an oss:// key that
# is unknown, expired, another account's, or sent without the resolve header.
MEDIA_FAILURE = "InvalidParameter.DataInspection"
MODERATION = "DataInspectionFailed"


@dataclass
class Intake:
    """A submit as the simulated model takes it: the request, what it refuses, truncates or ignores."""

    spec: ModelSpec
    request: Request
    rejected: list[Violation]  # answer 400 with these
    failure: Failure | None  # the task fails as soon as it starts
    truncated: list[str]
    ignored: list[str]
    output: Output
    billed: Billed
    fingerprint: str


async def take_in(state: SimState, spec: ModelSpec, body: Any, account: str, oss_enabled: bool) -> Intake:
    request = read_body(spec, body)
    media = await resolve(state, request, account, spec.model, oss_enabled)
    if not spec.kinds_declared:
        request.references = [replace(ref, kind=kind_of(media.facts.get(ref.url))) for ref in request.references]
    fingerprint = content_fingerprint(spec, request, media.content)
    violations = check_request(spec, request, media.facts)
    by_reaction = {r: [v for v in violations if v.reaction is r] for r in Reaction}
    truncated = [v.topic for v in by_reaction[Reaction.TRUNCATE] if _truncate(spec, request, v.topic)]
    # Only text can be cut: a prompt that is not text at all is refused.
    by_reaction[Reaction.REJECT] += [v for v in by_reaction[Reaction.TRUNCATE] if v.topic not in truncated]
    ignored = [v.topic for v in by_reaction[Reaction.IGNORE] if request.settings.pop(v.topic, None) is not None]
    failure = _media_failure(media) or _first_failure(by_reaction[Reaction.FAIL])
    output = output_of(spec, request, media.facts)
    return Intake(
        spec=spec,
        request=request,
        rejected=by_reaction[Reaction.REJECT],
        failure=failure,
        truncated=truncated,
        ignored=ignored,
        output=output,
        billed=_billed(state, spec, request, media, output.seconds),
        fingerprint=fingerprint,
    )


def moderation(state: SimState, request: Request) -> str | None:
    """"reject" (input moderation, at submit), "fail" (output moderation, the task fails) or None."""
    texts = [t for t in (request.prompt, request.settings.get("negative_prompt")) if isinstance(t, str)]
    text = " ".join(texts).lower()
    if state.config.moderation_reject_word.lower() in text:
        return "reject"
    if state.config.moderation_fail_word.lower() in text:
        return "fail"
    return None


INPUT_MODERATION = Failure(MODERATION, "The input text may contain inappropriate content.")
OUTPUT_MODERATION = Failure(MODERATION, "The generated video may contain inappropriate content.")
INTERNAL_ERROR = Failure("InternalError", "An internal error occurred while generating the video.")


def output_of(spec: ModelSpec, request: Request, facts: dict[str, MediaInfo]) -> Output:
    """The video the request makes: the value sent where valid, else the model's default."""
    chosen = {name: _valid(spec, name, request.settings.get(name)) for name in ("size", "resolution", "ratio", "duration", "audio")}
    if "size" in spec.settings:  # wan2.6 names the frame size itself
        resolution, ratio = tier_of(chosen["size"] or str(spec.defaults["size"])) or ("1080P", "16:9")
    else:
        resolution = chosen["resolution"] or str(spec.defaults.get("resolution", "1080P"))
        ratio = chosen["ratio"] or str(spec.defaults.get("ratio", "16:9"))
        first = facts.get(request.first_frames[0]) if request.first_frames else None
        if first is not None and first.width and first.height:
            ratio = nearest_ratio(first.width, first.height)  # the first frame's shape wins [doc]
        # [guess] a first frame whose shape is not known (declared without it) leaves the ratio as sent
    width, height = frame_size(resolution, ratio)
    duration: Any = chosen["duration"] if chosen["duration"] is not None else spec.defaults.get("duration", 5)
    audio = chosen["audio"] if chosen["audio"] is not None else spec.defaults.get("audio", True)
    return Output(width, height, int(duration), bool(audio), resolution, ratio)


def _valid(spec: ModelSpec, name: str, value: Any) -> Any:
    """``value`` if the model's table accepts it for ``name``, else None."""
    setting = spec.settings.get(name)
    if setting is None or value is None:
        return None
    domain = setting.domain
    if isinstance(domain, Choice):
        return value if value in domain.values and isinstance(value, bool) == isinstance(domain.values[0], bool) else None
    if name == "duration":
        return value if isinstance(value, int) and not isinstance(value, bool) and value in domain.span else None  # type: ignore[union-attr]
    return value


def _truncate(spec: ModelSpec, request: Request, topic: str) -> bool:
    """Cut an over-long text to the model's limit; False when the value is not text."""
    domain = spec.settings[topic].domain
    value = request.prompt if topic == "prompt" else request.settings.get(topic)
    if not isinstance(domain, Text) or not isinstance(value, str):
        return False
    if topic == "prompt":
        request.prompt = value[: domain.max_chars]
    else:
        request.settings[topic] = value[: domain.max_chars]
    return True


def _media_failure(media: Resolved) -> Failure | None:
    if not media.problems:
        return None
    url, why = media.problems[0]
    shown = url if len(url) <= 80 else url[:79] + "…"
    return Failure(MEDIA_FAILURE, f"The media at {shown} could not be downloaded for inspection: {why}.")


def _first_failure(violations: list[Violation]) -> Failure | None:
    return Failure(violations[0].code, violations[0].message) if violations else None


def kind_of(info: MediaInfo | None) -> Kind:
    """A wan2.6 reference's kind: its body does not say, so the media's facts do, never
    the URL's spelling. Media with no such facts (not downloaded, no picture) count as
    images here; they fail or are refused on their own account."""
    return "video" if info is not None and info.kind == "video" else "image"


def _billed(state: SimState, spec: ModelSpec, request: Request, media: Resolved, output_seconds: int) -> Billed:
    references: list[tuple[Kind, Decimal | None]] = []
    for ref in request.references:
        info = media.facts.get(ref.url)
        # A video of unknown length (declared without seconds) bills its full share of the cap.
        length = seconds(info.seconds) if info is not None and info.seconds is not None else None
        references.append((ref.kind, length))
    billed = billed_seconds(spec.billing, output_seconds, references)
    offset = state.config.billing_offset_seconds  # a test switch: a provider billing other than its rules
    if offset:
        billed = Billed(billed.output, max(Decimal(0), billed.input + seconds(offset)), billed.exact)
    return billed


def make_task(state: SimState, intake: Intake, provider: str, account: str, body: bytes, request_id: str, webhook_url: str | None = None) -> Task:
    """Create the task an accepted submit asks for and hand it to the scheduler."""
    new_id = task_id(state, account, body)
    fault = state.faults.decide(provider, "task", new_id)
    late = OUTPUT_MODERATION if moderation(state, intake.request) == "fail" else None
    if late is None and fault.effect == "task":
        late = INTERNAL_ERROR
    prompt = intake.request.prompt
    task = Task(
        task_id=new_id,
        provider=provider,
        account=account,
        model=intake.spec.model,
        request_id=request_id,
        prompt=prompt if isinstance(prompt, str) else "",
        output=intake.output,
        billed=intake.billed,
        fingerprint=intake.fingerprint,
        submitted=state.clock.now(),
        generation_seconds=generation_seconds(state, prompt if state.config.generation_by == "prompt" and isinstance(prompt, str) else new_id),
        fail_at_start=intake.failure,
        fail_at_end=late,
        webhook_url=webhook_url,
        fault=fault.fault,
        adjusted=tuple(f"{t} truncated" for t in intake.truncated) + tuple(f"{t} ignored" for t in intake.ignored),
    )
    state.tasks.add(task)
    return task


def task_id(state: SimState, account: str, body: bytes) -> str:
    """A task id that depends only on the seed, the account, the body and how many
    times the account sent it, so concurrency does not change it."""
    key = (account, hashlib.sha256(body).hexdigest())
    n = state.submit_counts[key]
    state.submit_counts[key] = n + 1
    if state.store is not None:
        state.store.save_count(key, n + 1)  # before the task: a kill between the two only skips a number
    digest = hashlib.sha256(f"{state.config.seed}|{account}|{key[1]}|{n}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def generation_seconds(state: SimState, key: str) -> float:
    """A place in the configured spread, fixed by ``key`` (a task id or a prompt)."""
    lo, hi = state.config.generation_seconds
    return lo + (hi - lo) * unit(state.config.seed, "generation", key)
