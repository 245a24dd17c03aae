"""report.html and JUnit XML from a simulated run: what a producer opens, what CI reads."""

from __future__ import annotations

import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from r2v_pipeline.cli import main
from r2v_pipeline.report.html import highlight

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("R2V_TEST_ARTIFACTS", REPO / "test-artifacts"))

HOSTILE_SHOTS = """
  - id: hostile
    prompt: >-
      {{ ada }} reads a sign: <script>alert("owned")</script> and 'single' "double" quotes,
      {{ '{{ not a template }}' }} and </pre><img src=x onerror=alert(2)>.
  - id: moderated
    prompt: "{{ milo }} SIM-BLOCK-OUTPUT"
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example series run on the simulator, plus a hostile shot and one the provider fails."""
    tmp = tmp_path_factory.mktemp("demo")
    shutil.copytree(REPO / "manifests" / "lighthouse", tmp / "lighthouse")
    episode = tmp / "lighthouse" / "ep01-the-storm.yaml"
    episode.write_text(episode.read_text() + HOSTILE_SHOTS)
    series = tmp / "lighthouse" / "series.yaml"
    series.write_text(
        series.read_text().replace(
            "description: the keeper, sixties, oilskin coat, grey braid",
            'description: "<b>the keeper</b> \\"quoted\\" <script>alert(3)</script>"',
        )
    )
    code = main(
        ["run", "--simulate", "--time-scale", "0.005", "--log-format", "plain", "--out", str(tmp / "out"),
         "--state", str(tmp / "state"), "--junit", str(tmp / "junit.xml"), str(episode)]
    )
    assert code == 1  # the moderated shot fails
    return tmp


def test_the_page_escapes_everything_from_the_manifest(demo: Path) -> None:
    page = (demo / "out" / "simulated" / "report.html").read_text()
    assert page.count("<script>") == 1  # the page's own
    assert "alert(" not in page.split("<script>")[1].split("</script>")[0]
    assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "{{ not a template }}" in page  # rendered by the prompt template, shown as text
    assert "<b>the keeper</b>" not in page
    assert "&lt;b&gt;the keeper&lt;/b&gt; &#34;quoted&#34; &lt;script&gt;alert(3)&lt;/script&gt;" in page  # in a tooltip


def test_a_cast_picture_shared_by_shots_is_on_the_page_once(demo: Path) -> None:
    page = (demo / "out" / "simulated" / "report.html").read_text()
    pictures = re.findall(r"\.(picture-\d+) \{ background-image: url\((data:image/jpeg;base64,[A-Za-z0-9+/=]+)\); \}", page)
    shown = re.findall(r'<div class="picture (picture-\d+)" role="img" aria-label="[^"]+">', page)
    assert pictures and len({uri for _, uri in pictures}) == len(pictures)  # each picture once
    assert {name for name, _ in pictures} == set(shown) and len(shown) > len(pictures)  # used on several cards


def test_the_page_hides_the_machine(demo: Path) -> None:
    for name in ("out/simulated/report.html", "junit.xml", "out/simulated/report.json"):
        text = (demo / name).read_text()
        for folder in {str(demo), str(Path.home()), str(Path.cwd()), str(REPO)}:
            assert folder not in text, (name, folder)


def test_junit_has_a_case_per_shot_and_the_providers_code(demo: Path) -> None:
    root = ET.parse(demo / "junit.xml").getroot()
    cases = root.findall(".//testcase")
    report = json.loads((demo / "out" / "simulated" / "report.json").read_text())
    assert len(cases) == len(report["shots"]) == 8
    (failure,) = root.findall(".//testcase/failure")
    assert failure.get("type") == "DataInspectionFailed"
    assert "failed: DataInspectionFailed" in (failure.get("message") or "")
    assert root.get("tests") == "8" and root.get("failures") == "1"


def test_labels_are_highlighted_longest_first() -> None:
    assert highlight("Image 12 meets Image 1 and character1.", ["Image 1", "Image 12", "character1"]) == [
        ("Image 12", True), (" meets ", False), ("Image 1", True), (" and ", False), ("character1", True), (".", False),
    ]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package (.ci/run installs it)")
def test_the_page_in_a_browser(demo: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (a test dependency)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dialogs: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto((demo / "out" / "simulated" / "report.html").as_uri())
            page.wait_for_function("Array.from(document.querySelectorAll('video')).every(v => v.readyState >= 1)", timeout=20_000)
            durations = page.evaluate("Array.from(document.querySelectorAll('video')).map(v => v.duration)")
            assert len(durations) == 7 and all(d > 0 for d in durations)  # every downloaded shot plays
            failed = page.locator("article[data-status=failed]")
            assert failed.count() == 1
            assert failed.locator(".status").inner_text() == "failed"
            assert "DataInspectionFailed" in failed.locator(".reason").inner_text()
            assert page.evaluate("document.scripts.length") == 1 and dialogs == []
            backgrounds = page.evaluate("Array.from(document.querySelectorAll('.ref .picture')).map(e => getComputedStyle(e).backgroundImage)")
            assert backgrounds and all(b.startswith('url("data:image/jpeg;base64,') for b in backgrounds)  # the cast's pictures show
            page.check("#only-problems")
            assert page.locator("article:visible").count() == 1
            page.uncheck("#only-problems")
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
            assert all(u.startswith(("file:", "data:")) for u in requests), requests  # nothing leaves the page
        finally:
            browser.close()
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example episode with a review (take 2 of night-watch picked, take 1 rejected),
    run and cut, then an edited shot run and cut again."""
    tmp = tmp_path_factory.mktemp("reviewed")
    shutil.copytree(REPO / "manifests" / "lighthouse", tmp / "lighthouse")
    episode = tmp / "lighthouse" / "ep01-the-storm.yaml"
    (tmp / "lighthouse" / "ep01-the-storm.selects.yaml").write_text(
        'shots:\n  night-watch:\n    pick: 2\n    rejected: [1]\n    note: "take 1 <b>drifts</b>"\n'
    )
    argv = ["run", "--simulate", "--time-scale", "0.005", "--log-format", "plain", "--assemble",
            "--out", str(tmp / "out"), "--state", str(tmp / "state"), str(episode)]  # fmt: skip
    assert main(argv) == 0
    episode.write_text(episode.read_text().replace("  - id: arrival\n    duration: 8", "  - id: arrival\n    duration: 6"))
    assert main(argv) == 0
    return tmp


def test_the_report_marks_picks_and_rejections_links_the_cut_and_says_what_changed(reviewed: Path) -> None:
    folder = reviewed / "out" / "simulated"
    report = json.loads((folder / "report.json").read_text())
    shots = {s["key"]: s for s in report["shots"]}
    take1, take2 = shots["lighthouse/ep01/night-watch#take1"], shots["lighthouse/ep01/night-watch#take2"]
    assert (take1["review"]["picked"], take1["review"]["verdict"]) == (False, "rejected")
    assert (take2["review"]["picked"], take2["review"]["pick_from"]) == (True, "selects")
    assert "duration: 8 → 6" in shots["lighthouse/ep01/arrival"]["changes"]
    assert shots["lighthouse/ep01/cold-open"]["changes"] == []
    (cut,) = report["cuts"]
    assert cut == {
        "episode": "lighthouse/ep01", "video": "lighthouse/ep01.mp4", "current": True,
        "timelines": [{"format": "OpenTimelineIO", "path": "lighthouse/ep01.otio"}, {"format": "FCP 7 XML", "path": "lighthouse/ep01.xml"},
                      {"format": "CMX 3600 EDL", "path": "lighthouse/ep01.edl"}],
    }  # fmt: skip
    markdown = (folder / "report.md").read_text()
    assert "night-watch #2 (picked)" in markdown and "night-watch #1 (rejected)" in markdown
    assert "- cut of lighthouse/ep01: [lighthouse/ep01.mp4](lighthouse/ep01.mp4); for editors: [lighthouse/ep01.otio]" in markdown
    assert "## Made again: what changed" in markdown and "`duration: 8 → 6`" in markdown
    page = (folder / "report.html").read_text()
    assert "take 1 &lt;b&gt;drifts&lt;/b&gt;" in page  # the note, escaped


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package (.ci/run installs it)")
def test_the_reviewed_report_in_a_browser(reviewed: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (a test dependency)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    folder = reviewed / "out" / "simulated"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.goto((folder / "report.html").as_uri())
            rejected = page.locator("article[data-key='lighthouse/ep01/night-watch#take1']")
            picked = page.locator("article[data-key='lighthouse/ep01/night-watch#take2']")
            assert float(rejected.evaluate("a => getComputedStyle(a).opacity")) < 0.7  # dimmed
            assert picked.locator(".badge.picked").inner_text() == "picked"
            assert rejected.locator(".badge.rejected").inner_text() == "rejected"
            links = page.locator(".cuts a")
            hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
            assert hrefs == ["lighthouse/ep01.mp4", "lighthouse/ep01.otio", "lighthouse/ep01.xml", "lighthouse/ep01.edl"]
            assert all((folder / str(h)).is_file() for h in hrefs)  # relative to the page, they resolve
            changed = page.locator("article[data-key='lighthouse/ep01/arrival'] details.changes")
            assert "duration: 8 → 6" in changed.inner_text()
            page.screenshot(path=str(ARTIFACTS / "report-reviewed.png"), full_page=True)
        finally:
            browser.close()
