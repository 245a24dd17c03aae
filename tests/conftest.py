"""Shared fixtures: manifests written into a temporary folder, small real media."""

from __future__ import annotations

import textwrap
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from r2v_pipeline.media import synth
from r2v_pipeline.sim import SimConfig, Simulator, start_simulator

REPO = Path(__file__).resolve().parent.parent

# The simulator has no network: the remote files tests name are declared to it, as a
# provider would find them on downloading. Any other remote URL fails its task.
REMOTE_IMAGE = {"kind": "image", "format": "png", "bytes": 480_000, "width": 1024, "height": 1024}
REMOTE_VIDEO = {"kind": "video", "format": "mp4", "bytes": 8_000_000, "width": 1280, "height": 720, "seconds": 5.0, "audio": True}
REMOTE_MEDIA = {
    "https://example.com/a.png": REMOTE_IMAGE,
    "https://example.com/mia.png": REMOTE_IMAGE,
    "https://example.com/cast/mia.png": REMOTE_IMAGE,
    "https://example.com/cast/kai.mp4": REMOTE_VIDEO,
}


@pytest.fixture(autouse=True, scope="session")
def probe_cache_of_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Probe verdicts go to a folder of the test session (r2v processes the tests start
    inherit it), never to the user's own cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("R2V_CACHE_DIR", str(tmp_path_factory.mktemp("r2v-cache")))
        yield


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str | bytes], Path]:
    """write(name, text_or_bytes) -> path, in a fresh folder; text is dedented."""

    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"))
        return path

    return _write


@pytest.fixture(scope="session")
def media_bytes() -> dict[str, bytes]:
    """Small real media, made once per test session."""
    return {
        "png": synth.image_bytes(256, 256, "png"),
        "jpeg": synth.image_bytes(320, 240, "jpeg"),
        "small_png": synth.image_bytes(200, 256, "png"),
        "video_3s": synth.video_bytes(240, 240, 3.0),
        "video_2s_silent": synth.video_bytes(240, 240, 2.0, audio=False),
        "wav_2s": synth.audio_bytes(2.0, "wav"),
        "mp3_2s": synth.audio_bytes(2.0, "mp3"),
        "wav_12s": synth.audio_bytes(12.0, "wav"),
    }


@pytest.fixture
def media(write: Callable[[str, str | bytes], Path], media_bytes: dict[str, bytes]) -> Callable[[str, str], Path]:
    """media(name, kind) writes one of ``media_bytes`` under the manifest folder."""

    def _media(name: str, kind: str) -> Path:
        return write(name, media_bytes[kind])

    return _media


@pytest.fixture(scope="session")
def sim_video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where simulators keep generated videos: each size is encoded once per session."""
    return tmp_path_factory.mktemp("sim-videos")


@pytest.fixture
def start_sim(sim_video_dir: Path) -> Iterator[Callable[..., Simulator]]:
    """start_sim(**SimConfig fields) -> a running simulator, stopped when the test ends.

    Defaults: seed 1; time all but standing still (time_scale 1000), so a test
    moves it with ``sim.advance``; rate windows on the simulated clock; the
    remote files of REMOTE_MEDIA declared.
    """
    with ExitStack() as stack:

        def _start(**fields: Any) -> Simulator:
            chosen = {"seed": 1, "time_scale": 1000.0, "rate_clock": "provider", "cache_dir": sim_video_dir, "remote_media": REMOTE_MEDIA, **fields}
            return stack.enter_context(start_simulator(SimConfig(**chosen)))

        yield _start


@pytest.fixture
def simulator(start_sim: Callable[..., Simulator]) -> Simulator:
    return start_sim()


@pytest.fixture
def http_client() -> Iterator[Callable[..., httpx.Client]]:
    """http_client(base_url, headers) -> an httpx client, closed when the test ends; no proxy from the environment."""
    with ExitStack() as stack:

        def _client(base_url: str = "", headers: dict[str, str] | None = None) -> httpx.Client:
            return stack.enter_context(httpx.Client(base_url=base_url, headers=headers or {}, trust_env=False, timeout=30))

        yield _client


# --- a real PostgreSQL for the shared ledger (tests marked ``postgres``) --------------


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    """One throwaway PostgreSQL cluster for the session (tests/pg.py), stopped at the end."""
    from .pg import find_bindir, start_cluster

    bindir = find_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL binaries (initdb, pg_ctl) in pg_config --bindir, PATH or /usr/lib/postgresql/*/bin; .ci/run installs Debian's postgresql")
    cluster = start_cluster(bindir)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Any) -> str:
    """The URL of a new, empty database: each test its own shared ledger."""
    return str(pg_cluster.new_database())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest) -> str | None:
    """Each ledger store in turn: None for the SQLite file, a database URL for PostgreSQL."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("pg_url"))
