"""Where a request's media URLs lead, and what the bytes there are.

``oss://`` keys lead to uploaded files, ``data:`` URIs carry their bytes, and
URLs of the simulator itself (hosted test media, result videos) are read
directly. The simulator has no network: any other http(s) URL is what it was
told it holds (``POST /_sim/facts``, ``Simulator.declare_media``), and a URL it
was told nothing of is one the provider could not download.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping
from urllib.parse import parse_qsl, urlsplit

import anyio

from ..catalog.wire import Request
from ..media.probe import MediaInfo, probe_bytes
from .config import is_loopback_host
from .facts import read_declarations
from .replies import Refusal, dashscope_error, json_reply, stock
from .results import result_bytes
from .server import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from .state import Call, SimState

HOSTED_PATH = "/_sim/media/"
UNDECLARED = "the simulator has no network and was told nothing of this URL (declare its facts: POST /_sim/facts)"


@dataclass
class Resolved:
    """What the simulator found at a request's media URLs: facts, content hashes, problems."""

    facts: dict[str, MediaInfo] = field(default_factory=dict)  # url -> probed facts
    content: dict[str, str] = field(default_factory=dict)  # url -> sha256 of its bytes
    problems: list[tuple[str, str]] = field(default_factory=list)  # (url, why it could not be downloaded)


class MediaBook:
    """Test media the simulator serves itself, what it was told remote URLs hold,
    and the probe results of every file seen."""

    def __init__(self, declared: Mapping[str, MediaInfo] | None = None) -> None:
        self.hosted: dict[str, tuple[bytes, str]] = {}  # sha256 -> (bytes, content type)
        self.declared: dict[str, MediaInfo] = dict(declared or {})  # remote URL -> its facts, as if downloaded
        self._probes: dict[str, MediaInfo] = {}
        self._limiter = anyio.CapacityLimiter(2)

    def host(self, data: bytes, content_type: str) -> str:
        sha = hashlib.sha256(data).hexdigest()
        self.hosted[sha] = (data, content_type)
        return sha

    def declare(self, declared: Mapping[str, MediaInfo]) -> None:
        self.declared.update(declared)

    async def probe(self, data: bytes) -> MediaInfo:
        return await anyio.to_thread.run_sync(self._probe, data, abandon_on_cancel=True, limiter=self._limiter)

    def _probe(self, data: bytes) -> MediaInfo:
        sha = hashlib.sha256(data).hexdigest()
        info = self._probes.get(sha)
        if info is None:
            info = self._probes[sha] = probe_bytes(data)
        return info


def media_urls(request: Request) -> list[str]:
    """Every media URL of a request, once each, in body order."""
    urls: list[object] = [*request.first_frames]
    for ref in request.references:
        urls += [ref.url, ref.voice]
    urls.append(request.voice)
    return list(dict.fromkeys(u for u in urls if isinstance(u, str) and u))


async def resolve(state: SimState, request: Request, account: str, model: str, oss_enabled: bool) -> Resolved:
    found = Resolved()
    for url in media_urls(request):
        fetched = await fetch(state, url, account, model, oss_enabled)
        if isinstance(fetched, str):
            found.problems.append((url, fetched))
        elif fetched is not None:
            info = fetched if isinstance(fetched, MediaInfo) else await state.media.probe(fetched)
            found.facts[url] = info
            if info.sha256:  # declared facts may not say: the URL then stands for its content
                found.content[url] = info.sha256
    return found


async def fetch(state: SimState, url: str, account: str, model: str, oss_enabled: bool) -> bytes | MediaInfo | str | None:
    """The bytes at ``url`` (or the facts declared for it); a message when they cannot
    be had; None for a scheme no model fetches (check_request refuses it)."""
    scheme = url.partition(":")[0].lower()
    if scheme == "oss":
        if not oss_enabled:
            return "oss:// URLs are resolved only with the header X-DashScope-OssResourceResolve: enable"
        stored = state.uploads.lookup(url[len("oss://") :], account, model, state.clock.now(), state.config.upload_ttl)
        return stored if isinstance(stored, str) else stored.data
    if scheme == "data":
        return _data_uri(url)
    if scheme in ("http", "https"):
        return await _own_url(state, url)
    return None  # not a scheme the model fetches: check_request says so


def _data_uri(url: str) -> bytes | str:
    head, comma, payload = url.partition(",")
    if not comma or not head.endswith(";base64"):
        return "a data URI must be data:<mime>;base64,<data>"
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return "the data URI is not valid base64"


async def _own_url(state: SimState, url: str) -> bytes | MediaInfo | str:
    parts = urlsplit(url)
    if not (parts.hostname and is_loopback_host(parts.hostname) and parts.port == state.port):
        # No network: a remote file is what the simulator was told, or could not be downloaded.
        return state.media.declared.get(url) or UNDECLARED
    if parts.path.startswith(HOSTED_PATH):
        hosted = state.media.hosted.get(parts.path[len(HOSTED_PATH) :])
        return hosted[0] if hosted else "no such file (404)"
    if parts.path.startswith("/results/") and parts.path.endswith(".mp4"):
        task_id = parts.path[len("/results/") : -len(".mp4")]
        data = await result_bytes(state, task_id, dict(parse_qsl(parts.query)))
        return f"{data.message} ({data.status})" if isinstance(data, Refusal) else data
    return "no such file (404)"


# --- routes: test media the simulator serves -----------------------------------


async def host_media(state: SimState, req: HttpRequest, call: Call, params: Mapping[str, str]) -> HttpResponse:
    sha = state.media.host(req.body, req.header("content-type", "application/octet-stream"))
    return json_reply(200, {"url": f"{state.base_url}{HOSTED_PATH}{sha}", "sha256": sha})


async def hosted_media(state: SimState, req: HttpRequest, call: Call, params: Mapping[str, str]) -> HttpResponse:
    hosted = state.media.hosted.get(params["sha"])
    if hosted is None:
        return stock("sim", 404, call.request_id)
    return HttpResponse(200, hosted[0], hosted[1])


async def declare_facts(state: SimState, req: HttpRequest, call: Call, params: Mapping[str, str]) -> HttpResponse:
    """``POST /_sim/facts`` with ``{URL: facts, …}``: what each remote URL would turn out to hold."""
    try:
        declared = read_declarations(req.json())
    except ValueError as err:
        return dashscope_error(400, "InvalidParameter", str(err), call.request_id)
    state.media.declare(declared)
    return json_reply(200, {"declared": len(declared)})
