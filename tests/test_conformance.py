"""The conformance corpus (tests/conformance/*.yaml), put to two consumers.

The corpus is the oracle: each case is a raw request body, the facts of the media
it names, and what the provider does with it, resting on a named section of the
provider documents. Neither consumer's tables wrote it, so a wrong limit, default
or billing rule in the catalog shows up here even though the simulator (which
judges requests with the same catalog) would agree with the planner.

1. The planner's catalog directly: ``read_body`` + ``check_request`` with the
   case's media facts + ``billed_seconds``, reactions mapped to outcomes.
2. The simulator as a black box over loopback HTTP: declare the media facts,
   submit with the case's headers, advance time, query.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from r2v_pipeline import catalog
from r2v_pipeline.catalog.billing import billed_seconds, seconds
from r2v_pipeline.catalog.check import Violation, check_request
from r2v_pipeline.catalog.formats import frame_size, nearest_ratio, tier_of
from r2v_pipeline.catalog.labels import assign_labels
from r2v_pipeline.catalog.spec import Choice, Kind, ModelSpec, Reaction, Text
from r2v_pipeline.catalog.wire import Request, read_body
from r2v_pipeline.media.probe import MediaInfo
from r2v_pipeline.sim import Simulator

CORPUS = Path(__file__).parent / "conformance"
LIBRARY = CORPUS / "media.yaml"  # facts shared by every file's cases
OUTCOMES = ("accepted", "refused", "accepted-then-failed")
DOCS = ("000", "001", "002", "003", "api-notes")
DASHSCOPE_KEY, FREEPIK_KEY = "sk-conformance", "fpk-conformance"
SUBMIT = {"dashscope": "/api/v1/services/aigc/video-generation/video-synthesis", "freepik": "/v1/ai/reference-to-video/wan-2-7"}
LONGEST_WAIT = 900  # provider seconds: the pending time plus the longest generation, with room
SIM_SHOWS = ("resolution", "ratio", "size", "duration", "audio")  # of a video: what the simulator's answers tell


@dataclass(frozen=True)
class Case:
    id: str
    file: str
    provider: str
    model: str
    body: Any
    media: dict[str, dict[str, Any]]  # facts of every URL the body names (the library's and the case's own)
    expect: dict[str, Any]
    rests_on: list[dict[str, str]]
    http: dict[str, Any] = field(default_factory=dict)
    undeclared: tuple[str, ...] = ()  # URLs the provider cannot download
    guess: str | None = None


# --- reading the corpus -----------------------------------------------------------------------


def load_corpus() -> list[Case]:
    library = yaml.safe_load(LIBRARY.read_text())
    cases = []
    for path in sorted(CORPUS.glob("*.yaml")):
        if path == LIBRARY:
            continue
        for raw in yaml.safe_load(path.read_text())["cases"]:
            body = expand(raw["body"])
            named = media_urls(body)
            facts = {**library, **raw.get("media", {})}
            cases.append(
                Case(
                    id=raw["id"], file=path.name, provider=raw["provider"], model=raw["model"], body=body,
                    media={url: facts[url] for url in named if url in facts}, expect=raw["expect"],
                    rests_on=raw["rests_on"], http=raw.get("http", {}), undeclared=tuple(raw.get("undeclared", ())),
                    guess=raw.get("guess"),
                )  # fmt: skip
            )
    return cases


def expand(node: Any) -> Any:
    """A body with each ``{$text: T, $length: N}`` written out: T repeated to exactly N characters."""
    if isinstance(node, dict) and set(node) == {"$text", "$length"}:
        text, length = node["$text"], node["$length"]
        return (text * (length // len(text) + 1))[:length]
    if isinstance(node, dict):
        return {key: expand(value) for key, value in node.items()}
    if isinstance(node, list):
        return [expand(item) for item in node]
    return node


def media_urls(body: Any, key: str = "") -> list[str]:
    """Every media URL a body names, in order (a webhook address is not media)."""
    if isinstance(body, str):
        return [body] if key != "webhook_url" and (body.startswith("data:") or "://" in body) else []
    if isinstance(body, dict):
        return [url for name, value in body.items() for url in media_urls(value, name)]
    if isinstance(body, list):
        return [url for item in body for url in media_urls(item, key)]
    return []


CASES = load_corpus()


def by_id(cases: list[Case]) -> list[Any]:
    return [pytest.param(case, id=case.id) for case in cases]


# --- the corpus itself ----------------------------------------------------------------------------


def test_the_corpus_is_well_formed() -> None:
    assert len(CASES) >= 80
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    for case in CASES:
        expect = case.expect
        assert expect["outcome"] in OUTCOMES, case.id
        assert case.rests_on and all(r["doc"] in DOCS and r["section"] and r["fact"] for r in case.rests_on), case.id
        if expect["outcome"] == "refused":
            assert "status" in expect and "billed" not in expect, case.id
        if expect["outcome"] == "accepted":
            assert "billed" in expect and "output" in expect, case.id
        for url in media_urls(case.body):
            if url.split(":", 1)[0] in ("http", "https") and url not in case.undeclared:
                assert url in case.media, f"{case.id}: no facts for {url}"
        ratio = expect.get("output", {}).get("ratio")
        assert ratio is None or isinstance(ratio, str), f"{case.id}: quote the ratio (YAML reads 16:9 as a number)"


def test_every_source_document_is_used() -> None:
    used = {r["doc"] for case in CASES for r in case.rests_on}
    assert used == set(DOCS)


# --- consumer 1: the planner's catalog ------------------------------------------------------------


def catalog_skip_reason(case: Case) -> str | None:
    """Why a case is beyond what the catalog judges (it judges bodies and media facts)."""
    if case.http.get("async") is False or case.http.get("freepik_header"):
        return "request headers are the HTTP layer's; the catalog judges bodies"
    if "key" in case.http:
        return "API keys are checked by the HTTP layer, not the catalog"
    if any(url.startswith("oss://") for url in media_urls(case.body)) and case.provider == "dashscope":
        return "whether an oss:// key resolves is decided at download time by the provider"
    if case.undeclared:
        return "whether a URL can be downloaded is known only to the provider"
    return None


def media_info(url: str, facts: dict[str, Any]) -> MediaInfo:
    kind = facts.get("kind")
    return MediaInfo(
        kind=kind, format=facts["format"], bytes=facts["bytes"], sha256=hashlib.sha256(url.encode()).hexdigest(),
        width=facts.get("width"), height=facts.get("height"), seconds=facts.get("seconds"),
        has_video=kind in ("image", "video"), has_audio=bool(facts.get("audio", kind == "audio")),
    )  # fmt: skip


@pytest.mark.parametrize("case", by_id(CASES))
def test_the_catalog_judges_as_the_corpus_says(case: Case) -> None:
    reason = catalog_skip_reason(case)
    if reason:
        pytest.skip(reason)
    expect = case.expect
    spec = catalog.lookup(case.provider, case.model)
    if spec is None:  # "Model not exist."
        assert (expect["outcome"], expect.get("code")) == ("refused", "InvalidParameter")
        return
    request = read_body(spec, case.body)
    facts = {url: media_info(url, f) for url, f in case.media.items()}
    violations = check_request(spec, request, facts)
    by = {r: [v for v in violations if v.reaction is r] for r in Reaction}
    if expect["outcome"] == "refused":
        assert by[Reaction.REJECT], f"the catalog accepts it: {violations}"
        _same_refusal(case, by[Reaction.REJECT])
        return
    assert not by[Reaction.REJECT], f"the catalog refuses it: {by[Reaction.REJECT]}"
    if expect["outcome"] == "accepted-then-failed":
        assert by[Reaction.FAIL], f"the catalog lets it succeed: {violations}"
        assert expect.get("code") in (None, by[Reaction.FAIL][0].code)
        return
    assert not by[Reaction.FAIL], f"the catalog fails it: {by[Reaction.FAIL]}"
    kinds = [_kind(spec, ref.kind, facts.get(ref.url)) for ref in request.references]
    ignored = {v.topic for v in by[Reaction.IGNORE]}
    duration = _effective(spec, request, "duration", ignored)
    lengths = [seconds(facts[r.url].seconds) if r.url in facts and facts[r.url].seconds is not None else None for r in request.references]
    billed = billed_seconds(spec.billing, duration, list(zip(kinds, lengths)))  # truncated text bills in full
    assert {"input": billed.input, "output": billed.output} == _decimals(expect["billed"])
    want = expect["output"]
    got = _catalog_output(spec, request, facts, ignored)
    assert {k: got[k] for k in want} == want
    if "labels" in expect:
        assert assign_labels(spec.labels, kinds) == expect["labels"]
    if "prompt_chars" in expect:
        limit = spec.settings["prompt"].domain
        cut = any(v.topic == "prompt" for v in by[Reaction.TRUNCATE]) and isinstance(limit, Text)
        assert (limit.max_chars if cut else len(request.prompt)) == expect["prompt_chars"]  # type: ignore[union-attr]


def _same_refusal(case: Case, rejected: list[Violation]) -> None:
    if case.provider == "freepik":
        if "invalid_params" in case.expect:  # each parameter once
            assert sorted({v.field for v in rejected}) == sorted(case.expect["invalid_params"])
    else:  # the first one is what the answer carries
        assert rejected[0].code == case.expect["code"], rejected


def _kind(spec: ModelSpec, declared: Kind, info: MediaInfo | None) -> Kind:
    """A wan2.6 body does not say a reference's kind: the media's facts do."""
    if not spec.kinds_declared and info is not None and info.kind in ("image", "video"):
        return info.kind  # type: ignore[return-value]
    return declared


def _effective(spec: ModelSpec, request: Request, name: str, ignored: set[str]) -> Any:
    """The value the provider uses: the one sent if the table accepts it, else the table's default."""
    value, setting = request.settings.get(name), spec.settings.get(name)
    if value is None or setting is None or name in ignored:
        return spec.defaults.get(name)
    if isinstance(setting.domain, Choice) and value not in setting.domain.values:
        return spec.defaults.get(name)
    return value


def _catalog_output(spec: ModelSpec, request: Request, facts: dict[str, MediaInfo], ignored: set[str]) -> dict[str, Any]:
    """The video the catalog's tables say the request makes."""
    if "size" in spec.settings:
        size = _effective(spec, request, "size", ignored)
        resolution, ratio = tier_of(size)  # type: ignore[misc]
    else:
        resolution, ratio = _effective(spec, request, "resolution", ignored), _effective(spec, request, "ratio", ignored)
        first = facts.get(request.first_frames[0]) if request.first_frames else None
        if first is not None and first.width and first.height:
            ratio = nearest_ratio(first.width, first.height)
    width, height = frame_size(resolution, ratio)
    audio = _effective(spec, request, "audio", ignored)
    return {
        "resolution": resolution, "ratio": ratio, "size": f"{width}*{height}",
        "duration": _effective(spec, request, "duration", ignored), "audio": True if audio is None else audio,
        "watermark": _effective(spec, request, "watermark", ignored),
    }  # fmt: skip


def _decimals(billed: dict[str, Any]) -> dict[str, Decimal]:
    return {name: seconds(value) for name, value in billed.items()}


# --- consumer 2: the simulator over HTTP -------------------------------------------------------------


@pytest.fixture
def sim(start_sim: Any) -> Simulator:
    # Keys restricted, so a wrong one is refused; no video is downloaded, so none is encoded ahead.
    return start_sim(dashscope_keys=frozenset({DASHSCOPE_KEY}), freepik_keys=frozenset({FREEPIK_KEY}), prefetch_videos=False)


def headers_for(case: Case) -> dict[str, str]:
    http = case.http
    key = {"wrong": "sk-not-this-one", "missing": None}.get(http.get("key", ""), DASHSCOPE_KEY if case.provider == "dashscope" else FREEPIK_KEY)
    headers: dict[str, str] = {}
    if case.provider == "dashscope":
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if http.get("async", True):
            headers["X-DashScope-Async"] = "enable"
        if http.get("oss_resolve"):
            headers["X-DashScope-OssResourceResolve"] = "enable"
    elif key:
        headers[http.get("freepik_header", "x-freepik-api-key")] = key
    return headers


def declared_facts(case: Case) -> dict[str, dict[str, Any]]:
    """The facts the simulator is told: remote URLs it could download (it reads data: URIs itself)."""
    return {url: facts for url, facts in case.media.items() if url.split(":", 1)[0] in ("http", "https") and url not in case.undeclared}


@pytest.mark.parametrize("case", by_id(CASES))
def test_the_simulator_answers_as_the_corpus_says(case: Case, sim: Simulator, http_client: Any) -> None:
    client = http_client(sim.base_url)
    told = client.post("/_sim/facts", json=declared_facts(case))
    assert told.status_code == 200, told.text
    response = client.post(SUBMIT[case.provider], json=case.body, headers=headers_for(case))
    expect = case.expect
    if expect["outcome"] == "refused":
        assert response.status_code == expect["status"], response.text
        _same_sim_refusal(case, response.json())
        return
    assert response.status_code == 200, response.text
    task_id = response.json()["output" if case.provider == "dashscope" else "data"]["task_id"]
    assert client.post("/_sim/advance", params={"seconds": LONGEST_WAIT}).status_code == 200
    if case.provider == "dashscope":
        _dashscope_task_as_expected(case, client.get(f"/api/v1/tasks/{task_id}", headers=headers_for(case)).json())
    else:
        _freepik_task_as_expected(case, client, task_id)


def _same_sim_refusal(case: Case, payload: dict[str, Any]) -> None:
    if case.provider == "dashscope":
        assert payload["code"] == case.expect["code"], payload
    elif "invalid_params" in case.expect:
        assert sorted(p["name"] for p in payload["invalid_params"]) == sorted(case.expect["invalid_params"]), payload


def _dashscope_task_as_expected(case: Case, answer: dict[str, Any]) -> None:
    output, expect = answer["output"], case.expect
    if expect["outcome"] == "accepted-then-failed":
        assert (output["task_status"], output.get("code")) == ("FAILED", expect.get("code", output.get("code"))), output
        assert "usage" not in answer  # failed tasks bill nothing [doc]
        return
    assert output["task_status"] == "SUCCEEDED", output
    usage = answer["usage"]
    billed = {"input": usage["input_video_duration"], "output": usage["output_video_duration"]}
    assert _decimals(billed) == _decimals(expect["billed"])
    seen = {"resolution": f"{usage['SR']}P", "duration": usage["output_video_duration"], "audio": usage["audio"]}
    seen.update({"size": usage["size"]} if "size" in usage else {"ratio": usage["ratio"]})
    want = {k: v for k, v in expect["output"].items() if k in SIM_SHOWS}
    assert {k: seen.get(k) for k in want} == want
    if "prompt_chars" in expect:
        assert len(output["orig_prompt"]) == expect["prompt_chars"]


def _freepik_task_as_expected(case: Case, client: httpx.Client, task_id: str) -> None:
    """Freepik's answer has no usage or reason: what was made and billed comes from the simulator's ledger."""
    data = client.get(f"{SUBMIT['freepik']}/{task_id}", headers=headers_for(case)).json()["data"]
    expect = case.expect
    if expect["outcome"] == "accepted-then-failed":
        assert data["status"] == "FAILED"
        return
    assert data["status"] == "COMPLETED" and len(data["generated"]) == 1
    (task,) = [t for t in client.get("/_sim/ledger").json()["tasks"] if t["task_id"] == task_id]
    assert _decimals({"total": task["billed_seconds"]}) == _decimals({"total": sum(expect["billed"].values())})
    made = task["output"]
    want = {k: v for k, v in expect["output"].items() if k in SIM_SHOWS}
    assert {k: made[k] for k in want} == want
