"""Episodes to concrete requests: labels, limits, billed seconds, cost, fingerprints.

Knows nothing of HTTP. Every problem is collected, not raised, so one run of
``r2v validate`` shows them all.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable

from .. import catalog
from ..catalog import registry
from ..catalog.billing import Billed, billed_seconds, seconds
from ..catalog.check import Violation, check_request
from ..catalog.labels import assign_labels
from ..catalog.spec import ModelSpec
from ..catalog.wire import Reference, Request, build_body, reference_items
from ..diagnostics import Diagnostics, Position, did_you_mean
from ..manifest.load import load_episodes
from ..manifest.model import CastMember, Episode, Shot, Source
from ..manifest.selects import TakeReview, review_of
from ..catalog.media_info import MediaInfo, MediaKind
from .body_format import FORMAT, earlier_bodies
from .extras import header_problems, merge, reserved_headers
from ..catalog.wire import get as body_value
from ..catalog.fingerprint import fingerprint
from ..catalog.request import LOCAL_SCHEME, LocalFile, OutgoingRequest
from .collector import collector_paused
from .media import MediaFiles
from .budget import Budget, over_budget
from .pricing import cost, rate_for
from .prompt import PromptError, compile_prompt, render_labelled, render_tracking, undefined_names
from .settings import Chosen, choose_settings, take_seeds


# Beside the series folders of an output folder: every paid video, by fingerprint.
STORE_FOLDER = ".r2v-store"


@dataclass(frozen=True)
class AccountTarget:
    """One account requests may go through: the variable holding its key (never the key),
    where it talks, and its quotas (the unit quotas count against is the account)."""

    name: str  # "" for the provider's one account when the manifest names none
    key_variable: str
    base_url: str
    region: str | None = None
    workspace: str | None = None
    quota: dict[str, float] = field(default_factory=dict)
    where: str = ""  # where the manifest names its key variable, for messages (file:line:col)


@dataclass(frozen=True)
class Target:
    """Where an episode's requests go."""

    provider: str
    base_url: str
    region: str | None = None
    workspace: str | None = None
    webhook_url: str | None = None
    quota: dict[str, float] = field(default_factory=dict)
    accounts: tuple[AccountTarget, ...] = ()  # the pool; one unnamed account when the manifest names none

    def account(self, name: str) -> AccountTarget:
        return next(a for a in self.accounts if a.name == name)


@dataclass(frozen=True)
class EarlierFormat:
    """The same request as an earlier r2v version wrote it (see body_format.py)."""

    fingerprint: str
    version: str  # the version whose change made the difference
    what: str


@dataclass(frozen=True)
class PlannedReference:
    """One reference a shot sends: whose, in which role, and how the prompt names it."""

    name: str  # cast name, "first_frame" or "voice"
    role: str  # image | video | storyboard | first_frame | voice
    label: str | None  # how the prompt names it
    source: str  # as the manifest wrote it
    url: str  # as the body carries it
    description: str = ""  # the cast entry's, for people reading plans and reports


@dataclass(frozen=True)
class PlannedShot:
    """One take of one shot, planned: the request to send, what it bills and costs, and its fingerprint."""

    series: str
    episode: str
    shot: str
    take: int | None  # None when the shot has one take
    manifest: str
    spec: ModelSpec
    target: Target
    request: OutgoingRequest  # what the provider's client is handed
    references: tuple[PlannedReference, ...]
    billed: Billed
    rate: Decimal | None
    resolution: str  # the tier it is made at, default included
    fingerprint: str
    output: Path
    state_dir: Path
    store_dir: Path  # the video store of the output folder
    earlier: tuple[EarlierFormat, ...] = ()  # fingerprints earlier versions gave this request, newest first
    unchecked: tuple[str, ...] = ()  # what the manifest sends that the catalog does not know (extras.py)
    review: TakeReview = TakeReview()  # picked for the cut? approved or rejected in review (selects)
    # The target's accounts this shot may go through, in the manifest's order: one when it
    # is pinned (account:), else those whose region serves its model. Not in the
    # fingerprint: moving a shot between accounts is not an edit.
    accounts: tuple[str, ...] = ("",)
    pinned: bool = False

    @property
    def key(self) -> str:
        suffix = f"#take{self.take}" if self.take is not None else ""
        return f"{self.series}/{self.episode}/{self.shot}{suffix}"

    @property
    def seconds(self) -> Decimal:
        return self.billed.total

    # The request's parts, as the stages after the plan read them.
    @property
    def body(self) -> dict[str, Any]:
        return self.request.body

    @property
    def files(self) -> dict[str, LocalFile]:
        return self.request.files

    @property
    def transports(self) -> dict[str, str]:
        return self.request.transports

    @property
    def prompt(self) -> str:
        """The rendered prompt the body carries."""
        return self.request.prompt

    @property
    def cost(self) -> Decimal | None:
        return cost(self.billed.total, self.rate)


@dataclass(frozen=True)
class PlanOptions:
    """What the command line (or the API) sets for planning, above the manifests."""

    provider: str | None = None
    region: str | None = None
    base_url: str | None = None
    budget_seconds: Decimal | None = None
    budget_money: Decimal | None = None
    output_dir: Path | None = None
    state_dir: Path | None = None
    namespace: str | None = None  # a subfolder of both, keeping simulated runs apart from real ones
    body_format: int = FORMAT  # write requests as this format did (an earlier version's: for tests of upgrades)


@dataclass
class Plan:
    """Every planned shot of the episodes given, with their currency and budgets."""

    shots: list[PlannedShot]
    episodes: list[Episode]
    currency: str | None = None
    budgets: list[Budget] = field(default_factory=list)

    def over_budget(self) -> list[str]:
        """A message for each budget the shots would cross if every one were submitted
        (what a run submits depends on the ledger: run/actions.py decides)."""
        return over_budget(self.budgets, self.shots, self.currency)


def state_dir_of(plan: Plan) -> Path | None:
    """The one ledger folder the plan's shots share (None when there are no shots)."""
    folders = {folder.resolve() for folder in {s.state_dir for s in plan.shots}}  # each folder resolved once, not once a shot
    if len(folders) > 1:
        raise ValueError("the episodes keep their ledgers in different folders (output.state); run them apart")
    return next(iter(folders), None)


def make_plan(paths: Iterable[Path], options: PlanOptions, diagnostics: Diagnostics) -> Plan:
    with collector_paused():
        return _make_plan(paths, options, diagnostics)


def _make_plan(paths: Iterable[Path], options: PlanOptions, diagnostics: Diagnostics) -> Plan:
    episodes = load_episodes(list(paths), diagnostics)
    media = MediaFiles(diagnostics)
    plan = Plan([], episodes)
    currencies = set()
    for episode in episodes:
        target = _target(episode, options, diagnostics)
        if target is None:
            continue
        _probe_cast(episode, media)
        planner = _EpisodePlanner(episode, target, options, media)
        shots = [planned for shot in episode.shots for planned in planner.plan(shot)]
        planner.findings.emit(diagnostics)
        _check_prices(episode, shots, options, diagnostics)
        plan.shots.extend(shots)
        prices = episode.prices.value if episode.prices else None
        if prices and prices.get("currency"):
            currencies.add(prices["currency"])
        if episode.budget:
            seconds_cap, money_cap = (episode.budget.get(k) for k in ("seconds", "money"))
            plan.budgets.append(
                Budget(
                    f"budget of {episode.name}",
                    _decimal(seconds_cap.value) if seconds_cap else None,
                    _decimal(money_cap.value) if money_cap else None,
                    (episode.series, episode.episode),
                )
            )
    if len(currencies) > 1:
        diagnostics.error(Position(episodes[0].name), f"the episodes price in several currencies ({', '.join(sorted(currencies))}); plan them apart")
    plan.currency = next(iter(currencies), None)
    if options.budget_seconds is not None or options.budget_money is not None:
        plan.budgets.append(Budget("budget given on the command line", options.budget_seconds, options.budget_money))
    return plan


def _check_prices(episode: Episode, shots: list[PlannedShot], options: PlanOptions, diagnostics: Diagnostics) -> None:
    """A money budget can only be kept when every shot it covers has a price."""
    unpriced = sorted({f"{s.spec.provider} {s.spec.model} {s.resolution}" for s in shots if s.rate is None})
    if not unpriced:
        return
    why = f"needs a price for every shot, and prices has none for {', '.join(unpriced)}"
    money_cap = episode.budget.get("money")
    if money_cap is not None:
        diagnostics.error(money_cap.pos, f"budget.money {why}")
    if options.budget_money is not None:
        diagnostics.error(episode.pos, f"--budget-money {why} in this episode")


def _decimal(value: float) -> Decimal:
    return Decimal(str(value))


def _target(episode: Episode, options: PlanOptions, diagnostics: Diagnostics) -> Target | None:
    p = episode.provider
    name = options.provider or (p.name.value if p.name else registry.DEFAULT_PROVIDER)
    base_url = options.base_url or (p.base_url.value if p.base_url else None)
    # the provider's table says where a region's requests go, and which region a host serves
    endpoint = registry.table(name).endpoint(base_url, options.region or (p.region.value if p.region else None))
    if endpoint.unknown_host:
        where = p.base_url.pos if p.base_url and not options.base_url else episode.pos
        diagnostics.warning(where, f"{base_url}: a host r2v does not know; which models it serves is not checked")
    table = registry.table(name)
    workspace = p.workspace.value if p.workspace else None
    quota = {k: v.value for k, v in p.quota.items()}
    accounts = [AccountTarget("", table.key_variable, endpoint.base_url.rstrip("/"), endpoint.region, workspace, quota)]
    if p.accounts:
        accounts = []
        for a in p.accounts:
            # The command line's endpoint wins over everything; then the account's own; then the provider's.
            own_url = options.base_url or (a.base_url.value if a.base_url else None)
            own_region = options.region or (a.region.value if a.region else None)
            place = table.endpoint(own_url, own_region) if (own_url or own_region) else endpoint
            accounts.append(
                AccountTarget(
                    a.name.value, a.key_env.value, place.base_url.rstrip("/"), place.region,
                    a.workspace.value if a.workspace else workspace, {**quota, **{k: v.value for k, v in a.quota.items()}},
                    where=str(a.key_env.pos),
                )
            )  # fmt: skip
    return Target(
        provider=name,
        base_url=endpoint.base_url.rstrip("/"),
        region=endpoint.region,
        workspace=workspace,
        webhook_url=p.webhook_url.value if p.webhook_url else None,
        quota=quota,
        accounts=tuple(accounts),
    )


def _probe_cast(episode: Episode, media: MediaFiles) -> None:
    """Every local file the cast names must be readable media of its kind, used by a shot or not."""
    for member in episode.cast.values():
        if not member.media.is_url:
            media.local(member.media, member.reference_kind)
        if member.voice is not None and not member.voice.is_url:
            media.local(member.voice, "audio")


class _Findings:
    """Problems found while planning shots, each said once with the shots it affects."""

    def __init__(self) -> None:
        # shots as the keys of a dict: in order, each once, found in constant time
        self.items: dict[tuple[Position, str, str], dict[str, None]] = defaultdict(dict)

    def add(self, position: Position, message: str, shot: str, severity: str = "error") -> None:
        self.items[(position, message, severity)][shot] = None

    def emit(self, diagnostics: Diagnostics) -> None:
        for (position, message, severity), found in self.items.items():
            shots = list(found)
            named = ", ".join(f"shots[{s}]" for s in shots[:4]) + (f" and {len(shots) - 4} more" if len(shots) > 4 else "")
            text = f"{message} ({named})"
            (diagnostics.error if severity == "error" else diagnostics.warning)(position, text)


@dataclass
class _Request:
    """The media of one shot's request, gathered while planning it."""

    sources: dict[str, Source] = field(default_factory=dict)  # body URL -> where the manifest names it
    files: dict[str, LocalFile] = field(default_factory=dict)
    transports: dict[str, str] = field(default_factory=dict)
    facts: dict[str, MediaInfo] = field(default_factory=dict)
    references: list[Reference] = field(default_factory=list)
    planned: list[PlannedReference] = field(default_factory=list)
    lengths: dict[str, Decimal | None] = field(default_factory=dict)  # video URL -> seconds, if known
    members: list[CastMember | None] = field(default_factory=list)  # the cast member of each reference
    unusable: bool = False  # a file could not be read

    def locate(self, media: MediaFiles, source: Source, expect: MediaKind, episode: Episode, spec: ModelSpec) -> str | None:
        where = media.locate(source, expect, episode.provider, spec.local_transport)
        if where is None:
            self.unusable = True
            return None
        self.sources.setdefault(where.url, source)
        if where.file is not None:
            self.files[where.url] = where.file
            self.facts[where.url] = where.file.info
        if where.transport is not None:
            self.transports[where.url] = where.transport
        return where.url


class _EpisodePlanner:
    def __init__(self, episode: Episode, target: Target, options: PlanOptions, media: MediaFiles):
        self.episode = episode
        self.target = target
        self.media = media
        self.findings = _Findings()
        self.output_dir = options.output_dir or episode.output_dir
        self.state_dir = options.state_dir or episode.state_dir
        if options.namespace:
            self.output_dir, self.state_dir = self.output_dir / options.namespace, self.state_dir / options.namespace
        self.episode_dir = self.output_dir / episode.series / episode.episode
        self.store_dir = self.output_dir / STORE_FOLDER
        self.prices = episode.prices.value if episode.prices else None
        self.body_format = options.body_format
        self.descriptions = {name: m.description for name, m in episode.cast.items()}

    def plan(self, shot: Shot) -> list[PlannedShot]:
        found = Diagnostics()
        planned = self._plan(shot, found)
        for d in found.items:
            self.findings.add(d.position, d.message, shot.id, d.severity)
        return planned if not found.errors else []

    def _plan(self, shot: Shot, found: Diagnostics) -> list[PlannedShot]:
        spec = self._spec(shot, found)
        if spec is None:
            return []
        accounts = self._accounts(shot, spec, found)
        if accounts is None:
            return []
        rendered = self._prompt(shot, spec, found)
        if rendered is None:
            return []
        prompt, members, labels = rendered
        media = _Request()
        first_frames = []
        if shot.first_frame is not None:
            url = media.locate(self.media, shot.first_frame, "image", self.episode, spec)
            if url is not None:
                first_frames.append(url)
                media.planned.append(PlannedReference("first_frame", "first_frame", None, shot.first_frame.text, url))
        for member, label in zip(members, labels):
            self._reference(member, label, spec, media, found)
        voice = media.locate(self.media, shot.voice, "audio", self.episode, spec) if shot.voice else None
        if voice is not None and shot.voice is not None:
            media.planned.append(PlannedReference("voice", "voice", None, shot.voice.text, voice))
        chosen = choose_settings(spec, shot, self.episode.defaults, bool(shot.first_frame), found)
        seeds = take_seeds(shot, self.episode.defaults, self.episode.series, self.episode.episode, found)
        if media.unusable:  # the file's own error says why
            return []
        planned = []
        for number, seed in enumerate(seeds, start=1):
            settings = {name: value.value for name, value in chosen.values.items()}
            if seed is not None:
                settings["seed"] = seed.value
            if self.target.webhook_url and "webhook_url" in spec.settings:
                settings["webhook_url"] = self.target.webhook_url
            request = Request(prompt, media.references, first_frames, voice, settings)
            for violation in check_request(spec, request, media.facts, LOCAL_SCHEME):
                self._report(violation, shot, chosen, media, found)
            take = number if len(seeds) > 1 else None
            planned.append(replace(self._planned(shot, spec, request, chosen, media, take, found), accounts=accounts[0], pinned=accounts[1]))
        return planned

    # --- the parts of a request ----------------------------------------

    def _spec(self, shot: Shot, found: Diagnostics) -> ModelSpec | None:
        chosen = shot.settings.get("model") or self.episode.defaults.get("model")
        provider = self.target.provider
        model = chosen.value if chosen else catalog.DEFAULT_MODELS[provider]
        spec = catalog.lookup(provider, model)
        where = chosen.pos if chosen else shot.pos
        if spec is None:
            offered = ", ".join(catalog.PROVIDERS[provider])
            found.error(where, f"{provider} does not offer {model} (it offers {offered})")
            return None
        if not self.target.accounts or not self.target.accounts[0].name:  # the provider's one account
            served = registry.table(provider).serves(self.target.region, spec.table)
            if served is not None:
                found.error(where, f"region {self.target.region} serves only {', '.join(sorted(served))}, not {model}")
                return None
        return spec

    def _accounts(self, shot: Shot, spec: ModelSpec, found: Diagnostics) -> tuple[tuple[str, ...], bool] | None:
        """The accounts the shot may go through (pinned: its one), those whose region serves its model."""
        pools = self.target.accounts
        if not pools or not pools[0].name:
            return ("",), False
        pin = shot.settings.get("account") or self.episode.defaults.get("account")
        table = registry.table(spec.provider)
        candidates = [a for a in pools if pin is None or a.name == pin.value]
        serving = tuple(a.name for a in candidates if table.serves(a.region, spec.table) is None)
        if not serving:
            where = pin.pos if pin else shot.pos
            regions = ", ".join(sorted({str(a.region) for a in candidates}))
            found.error(where, f"{spec.model} is not served in the region of {'account ' + repr(pin.value) if pin else 'any account'} ({regions})")
            return None
        return serving, pin is not None

    def _prompt(self, shot: Shot, spec: ModelSpec, found: Diagnostics) -> tuple[str, list[CastMember], list[str]] | None:
        context = {name: v.value for name, v in {**self.episode.vars, **shot.vars}.items()}
        known = {**context, **self.descriptions}
        try:
            template = compile_prompt(shot.prompt.value)
            missing = undefined_names(template, known)
            for name, line in missing:
                found.error(
                    self._prompt_pos(shot, line),
                    f'prompt uses "{name}", which is neither cast nor a var{did_you_mean(name, known)}',
                )
            if missing:
                return None
            _, used = render_tracking(template, context, self.descriptions)
            listed = {v.value for v in shot.cast}
            members = [m for name, m in self.episode.cast.items() if name in used or name in listed]
            if not self._storyboards_ok(shot, spec, members, found):
                return None
            labels = assign_labels(spec.labels, [m.reference_kind for m in members])
            text = render_labelled(template, context, self.descriptions, {m.name: l for m, l in zip(members, labels)})
        except PromptError as err:
            found.error(self._prompt_pos(shot, err.line), f"prompt: {err.message}")
            return None
        return text, members, labels

    def _prompt_pos(self, shot: Shot, line: int | None) -> Position:
        pos = shot.prompt.pos
        if line is None or shot.prompt_line is None:
            return pos
        return Position(pos.file, shot.prompt_line + line - 1, pos.col)

    def _storyboards_ok(self, shot: Shot, spec: ModelSpec, members: list[CastMember], found: Diagnostics) -> bool:
        boards = [m.name for m in members if m.kind == "storyboard"]
        if boards and not spec.storyboard:
            found.error(shot.pos, f"{spec.model} does not read multi-panel storyboards ({', '.join(boards)}); use wan2.7-r2v")
            return False
        if len(boards) > 1:
            found.error(shot.pos, f"sends {len(boards)} storyboards ({', '.join(boards)}); a request takes one")
            return False
        return True

    def _reference(self, member: CastMember, label: str, spec: ModelSpec, media: _Request, found: Diagnostics) -> None:
        url = media.locate(self.media, member.media, member.reference_kind, self.episode, spec)
        voice = None
        if member.voice is not None:
            if spec.reference_voice:
                voice = media.locate(self.media, member.voice, "audio", self.episode, spec)
            else:
                found.warning(member.voice.pos, f"cast.{member.name}.voice is not sent: {spec.model} takes no reference voice")
        if url is None:
            return
        media.references.append(Reference(member.reference_kind, url, voice))
        media.members.append(member)
        media.planned.append(PlannedReference(member.name, member.kind, label, member.media.text, url, member.description))
        if voice is not None and member.voice is not None:
            media.planned.append(PlannedReference(member.name, "voice", None, member.voice.text, voice))
        if member.reference_kind == "video":
            info = media.facts.get(url)
            if info is not None and info.seconds is not None:
                media.lengths[url] = seconds(info.seconds)
            else:
                media.lengths[url] = seconds(member.duration.value) if member.duration else None

    def _report(self, violation: Violation, shot: Shot, chosen: Chosen, media: _Request, found: Diagnostics) -> None:
        if violation.url is not None and violation.url in media.sources:
            source = media.sources[violation.url]
            found.error(source.pos, f"{source.text}: {violation.message}")
            return
        topic = violation.topic
        if topic.startswith("prompt"):
            where = shot.prompt.pos
        elif topic in chosen.values:
            where = chosen.values[topic].pos
        elif topic == "first_frame" and shot.first_frame is not None:
            where = shot.first_frame.pos
        else:
            where = shot.pos
        found.error(where, violation.message)

    def _extras(
        self, shot: Shot, spec: ModelSpec, request: Request, media: _Request, body: dict[str, Any], found: Diagnostics
    ) -> tuple[dict[str, Any], tuple[str, ...], dict[str, str]]:
        """Fields and headers the manifest sends unchecked (see extras.py)."""
        unchecked: list[str] = []
        for level in (self.episode.defaults, shot.settings):
            extra = level.get("extra_body")
            if extra is not None and isinstance(extra.value, dict):
                body, added, problems = merge(body, extra.value, spec, "extra_body")
                unchecked += added
                for problem in problems:
                    found.error(extra.pos, problem)
        members = [m for m in media.members if m is not None]
        if any(m.extra is not None for m in members):
            items = reference_items(spec, body, request.references)
            for i, member in enumerate(media.members):
                if member is None or member.extra is None:
                    continue
                if items is None:
                    found.error(member.extra.pos, f"cast.{member.name}.extra: {spec.model} names references by plain URLs, with no fields of their own")
                    continue
                merged, added, problems = merge(items[i], member.extra.value, spec, f"cast.{member.name}.extra")
                items[i].update(merged)
                unchecked += [f"{member.name}.{path}" for path in added]
                for problem in problems:
                    found.error(member.extra.pos, problem)
        headers: dict[str, str] = {}
        for level in (self.episode.defaults, shot.settings):
            extra = level.get("extra_headers")
            if extra is not None and isinstance(extra.value, dict):
                for problem in header_problems(extra.value):
                    found.error(extra.pos, problem)
                headers.update({str(k): str(v) for k, v in extra.value.items() if str(k).lower() not in reserved_headers()})
        unchecked += [f"header {name}" for name in headers]
        return body, tuple(dict.fromkeys(unchecked)), headers

    def _planned(
        self, shot: Shot, spec: ModelSpec, request: Request, chosen: Chosen, media: _Request, take: int | None, found: Diagnostics
    ) -> PlannedShot:
        body, unchecked, headers = self._extras(shot, spec, request, media, build_body(spec, request), found)
        earlier = earlier_bodies(spec, body, chosen.manifest_set)
        if self.body_format < FORMAT:  # as an earlier version wrote it
            body = next((e.body for e in earlier if e.format <= self.body_format), body)
            earlier = []
        duration = chosen.effective(spec, "duration")
        billed = billed_seconds(
            spec.billing,
            duration if isinstance(duration, int) and not isinstance(duration, bool) else 0,
            [(ref.kind, media.lengths.get(ref.url)) for ref in request.references],
        )
        name = f"{shot.id}-take{take}.mp4" if take is not None else f"{shot.id}.mp4"
        content = {url: f.info.sha256 for url, f in media.files.items()}
        return PlannedShot(
            series=self.episode.series,
            episode=self.episode.episode,
            shot=shot.id,
            take=take,
            manifest=self.episode.name,
            spec=spec,
            target=self.target,
            # The prompt as the body carries it (after any extra_body): what the provider reports back and reconciling matches.
            request=OutgoingRequest(spec.model, body, dict(media.files), dict(media.transports), headers, body_value(body, spec.settings["prompt"].path)),
            references=tuple(media.planned),
            billed=billed,
            rate=rate_for(self.prices, spec.provider, spec.model, chosen.resolution, chosen.audio, spec.family),
            resolution=chosen.resolution,
            fingerprint=fingerprint(spec, body, content, headers),
            earlier=tuple(EarlierFormat(fingerprint(spec, e.body, content, headers), e.version, e.what) for e in earlier),
            unchecked=unchecked,
            review=review_of(shot, self.episode.selects, take),
            output=self.episode_dir / name,
            state_dir=self.state_dir,
            store_dir=self.store_dir,
        )
