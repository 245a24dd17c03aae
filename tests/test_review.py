"""r2v review: the takes side by side in Chromium; a click lands in the selects file,
survives a reload, and the next cut uses it. Only this server's own page may write."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from r2v_pipeline.cli import main
from r2v_pipeline.diagnostics import Diagnostics
from r2v_pipeline.plan.planner import PlanOptions, make_plan
from r2v_pipeline.review.server import ReviewServer, start
from r2v_pipeline.review.state import Review

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("R2V_TEST_ARTIFACTS", REPO / "test-artifacts"))


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example episode run on the simulator: night-watch has two takes."""
    tmp = tmp_path_factory.mktemp("review")
    shutil.copytree(REPO / "manifests" / "lighthouse", tmp / "lighthouse")
    code = main(["run", "--simulate", "--time-scale", "0.005", "--log-format", "plain", *where(tmp), str(tmp / "lighthouse" / "ep01-the-storm.yaml")])
    assert code == 0
    return tmp


def where(tmp: Path) -> list[str]:
    return ["--out", str(tmp / "out"), "--state", str(tmp / "state")]


@pytest.fixture
def served(made: Path) -> Iterator[tuple[Path, ReviewServer]]:
    selects = made / "lighthouse" / "ep01-the-storm.selects.yaml"
    selects.unlink(missing_ok=True)
    diagnostics = Diagnostics()
    plan = make_plan([made / "lighthouse" / "ep01-the-storm.yaml"], PlanOptions(namespace="simulated", output_dir=made / "out", state_dir=made / "state"), diagnostics)
    assert not diagnostics.errors
    server = start(Review(plan), background=True)
    try:
        yield selects, server
    finally:
        server.close()


def post(server: ReviewServer, body: object, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    port = server.server.server_address[1]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = json.dumps(body).encode()
        connection.request("POST", "/api/selects", data, {"Content-Type": "application/json", **headers})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def expect_file(path: Path, text: str) -> None:
    """The browser's last save is on disk (its answer may trail the status line by a moment)."""
    for _ in range(100):
        if text in path.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never reached {path}")


def cut_takes(made: Path) -> dict[str, int | None]:
    sidecar = json.loads((made / "out" / "simulated" / "lighthouse" / "ep01.json").read_text())
    return {s["shot"]: s["take"] for s in sidecar["shots"]}


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package (.ci/run installs it)")
def test_a_pick_clicked_in_chromium_lands_in_the_file_and_the_cut(made: Path, served: tuple[Path, ReviewServer]) -> None:
    playwright = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (a test dependency)")
    expect = playwright.expect
    selects, server = served
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert main(["assemble", "--simulated", *where(made), str(made / "lighthouse" / "ep01-the-storm.yaml")]) == 0
    assert cut_takes(made)["night-watch"] == 1  # before review: the first take
    origin = server.url.rstrip("/")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(server.url)
            expect(page.locator("video[data-ready]")).to_have_count(6, timeout=20_000)
            assert page.locator("video").count() == 6  # every take of every shot, side by side
            night = page.locator("section.shot[data-shot=night-watch]")
            assert night.locator("figure.take").count() == 2
            assert night.locator("figure.take[data-take='1']").get_attribute("class") == "take picked"

            night.locator("figure.take[data-take='2'] input.pick").check()
            expect(night.locator(".saved")).to_have_text(re.compile("^saved to "))
            assert "pick: 2" in selects.read_text()
            night.locator("figure.take[data-take='1'] button.reject").click()
            expect(night.locator(".saved")).to_have_text(re.compile("^saved to "))
            night.locator("textarea.note").fill("take 2: the beam crosses \"on the beat\"")
            night.locator("textarea.note").blur()
            expect(night.locator(".saved")).to_have_text(re.compile("^saved to "))
            expect_file(selects, "note: ")

            page.reload()
            night = page.locator("section.shot[data-shot=night-watch]")
            assert night.locator("figure.take[data-take='2'] input.pick").is_checked()  # it persisted
            assert "picked" in (night.locator("figure.take[data-take='2']").get_attribute("class") or "")
            assert "rejected" in (night.locator("figure.take[data-take='1']").get_attribute("class") or "")
            assert night.locator("textarea.note").input_value() == 'take 2: the beam crosses "on the beat"'
            opacity = night.locator("figure.take[data-take='1'] video").evaluate("v => getComputedStyle(v).opacity")
            assert float(opacity) < 0.5  # the rejected take is dimmed
            expect(page.locator("video[data-ready]")).to_have_count(6, timeout=20_000)
            page.screenshot(path=str(ARTIFACTS / "review.png"), full_page=True)
            assert all(u.startswith(origin) for u in requests), requests  # no network but this server
        finally:
            browser.close()

    text = selects.read_text()
    assert "night-watch:\n    pick: 2\n    rejected: [1]\n    note: \"take 2: the beam crosses \\\"on the beat\\\"\"\n" in text
    assert main(["assemble", "--simulated", *where(made), str(made / "lighthouse" / "ep01-the-storm.yaml")]) == 0
    assert cut_takes(made)["night-watch"] == 2  # the cut follows the review
    assert (ARTIFACTS / "review.png").stat().st_size > 10_000


def test_only_the_pages_own_requests_may_write(served: tuple[Path, ReviewServer]) -> None:
    selects, server = served
    change = {"episode": "lighthouse/ep01", "shot": "night-watch", "pick": 2, "approved": [], "rejected": [], "note": ""}
    port = server.server.server_address[1]
    token = {"X-R2V-Token": server.token}
    assert post(server, change, {})[0] == 403  # no token: another local page, a script, curl
    assert post(server, change, {"X-R2V-Token": "guess"})[0] == 403
    assert post(server, change, {**token, "Origin": "http://evil.example"})[0] == 403
    assert post(server, change, {**token, "Host": "evil.example"})[0] == 421  # DNS rebinding: wrong Host
    assert not selects.exists()  # nothing was written
    status, answer = post(server, {**change, "shot": "nope"}, token)
    assert (status, answer["error"]) == (409, "no shot 'nope' in lighthouse/ep01")
    assert post(server, {**change, "pick": 3}, token)[0] == 409  # night-watch has two takes
    assert post(server, {**change, "pick": 1, "rejected": [1]}, token)[0] == 409
    assert not selects.exists()
    assert post(server, change, {**token, "Origin": f"http://127.0.0.1:{port}"}) == (200, {"saved": selects.name, "picked": 2, "attention": False})
    assert "pick: 2" in selects.read_text()


def test_only_the_plans_videos_are_served_and_in_ranges(served: tuple[Path, ReviewServer]) -> None:
    selects, server = served
    port = server.server.server_address[1]
    size = (selects.parent.parent / "out" / "simulated" / "lighthouse" / "ep01" / "arrival.mp4").stat().st_size

    def get(path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, str | None]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read(), response.getheader("Content-Range")
        finally:
            connection.close()

    status, body, content_range = get("/media/0/arrival.mp4", {"Range": "bytes=0-99"})
    assert (status, len(body), content_range) == (206, 100, f"bytes 0-99/{size}")  # how the player seeks
    assert get("/media/0/arrival.mp4")[:2] == (200, (selects.parent.parent / "out" / "simulated" / "lighthouse" / "ep01" / "arrival.mp4").read_bytes())
    for path in ("/media/0/../../../lighthouse/series.yaml", "/media/0/arrival.json", "/media/1/arrival.mp4", "/etc/passwd"):
        assert get(path)[0] == 404, path
    assert get("/", {"Host": "attacker.example"})[0] == 421  # the page (and its token) only under this server's name


def test_a_broken_hand_edit_is_not_overwritten(served: tuple[Path, ReviewServer]) -> None:
    selects, server = served
    selects.write_text("shots:\n  night-watch: {pick: 7}\n")
    status, answer = post(server, {"episode": "lighthouse/ep01", "shot": "arrival", "pick": 1}, {"X-R2V-Token": server.token})
    assert status == 409 and "ep01-the-storm.selects.yaml:2:23: shots.night-watch.pick: no take 7" in str(answer["error"])
    assert selects.read_text() == "shots:\n  night-watch: {pick: 7}\n"


def test_every_take_rejected_is_flagged(served: tuple[Path, ReviewServer]) -> None:
    _, server = served
    change = {"episode": "lighthouse/ep01", "shot": "night-watch", "pick": None, "approved": [], "rejected": [1, 2], "note": ""}
    assert post(server, change, {"X-R2V-Token": server.token}) == (200, {"saved": "ep01-the-storm.selects.yaml", "picked": None, "attention": True})


def test_the_command_prints_its_loopback_url_and_ends_on_ctrl_c(made: Path) -> None:
    command = [sys.executable, "-m", "r2v_pipeline", "review", "--simulated", *where(made), str(made / "lighthouse" / "ep01-the-storm.yaml")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("review 6 take(s) of 1 episode(s) at http://127.0.0.1:"), line
        port = int(line.split("127.0.0.1:")[1].split("/")[0])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/")
        response = connection.getresponse()
        assert response.status == 200 and b"night-watch" in response.read()
        connection.close()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_a_port_out_of_range_is_a_usage_error(made: Path, port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["review", "--port", port, str(made)])
    assert stopped.value.code == 2
    assert "--port" in capsys.readouterr().err
