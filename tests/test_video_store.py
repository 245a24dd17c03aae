"""The video store against the simulator over loopback: undo, rename, move, pick and
reordered takes bill nothing; plan says what an edit changed and who paid for a reused video."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r2v_pipeline.cli import main
from r2v_pipeline.media.probe import file_sha256, probe_file
from r2v_pipeline.run.store import VideoStore, readable_json

from .test_run import StartSim, billed_tasks_per_content, fast_sim, plan_of, run

Write = Callable[[str, str], Path]
Media = Callable[[str, str], Path]

EPISODE = """\
cast: {a: {image: m/a.png}}
shots:
  - {id: dawn, duration: 2, prompt: '{{ a }} watches the sun rise over the harbour'}
  - id: dusk
    duration: 2
    takes: [7, 9]
    prompt: '{{ a }} lights the lamp'
"""


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def folders(tmp: Path) -> list[str]:
    return ["--out", str(tmp / "out"), "--state", str(tmp / "state")]


def billed(sim: object) -> int:
    return sum(billed_tasks_per_content(sim).values())  # type: ignore[arg-type]


def test_undoing_an_edit_bills_once_and_the_cut_has_the_original_video(tmp_path: Path, start_sim: StartSim, write: Write, media: Media) -> None:
    media("m/a.png", "png")
    ep = write("ep.yaml", EPISODE)
    sim = fast_sim(start_sim)
    code, report, log = run([ep], tmp_path, sim)
    assert code == 0, log
    dawn = plan_of([ep], tmp_path).shots[0]
    original = file_sha256(dawn.output)
    assert billed(sim) == 3

    write("ep.yaml", EPISODE.replace("sun rise", "storm roll in"))
    code, out, err = cli("plan", str(ep), *folders(tmp_path))
    assert code == 0, err
    assert "dawn: edited since its version of" in out
    assert "      -reference image watches the sun rise over the harbour\n" in out
    assert "      +reference image watches the storm roll in over the harbour\n" in out
    code, report, log = run([ep], tmp_path, sim)
    assert code == 0, log
    assert billed(sim) == 4  # exactly one new task for the edit

    write("ep.yaml", EPISODE)  # git checkout of the file
    code, out, err = cli("plan", str(ep), *folders(tmp_path))
    assert code == 0, err
    assert "reuse" in out and "reused from the store: paid by run" in out
    code, report, log = run([ep], tmp_path, sim)
    assert code == 0, log
    assert {s["shot"]: s["status"] for s in report["shots"]}["dawn"] == "reused"
    assert billed(sim) == 4  # the undo bills nothing
    assert file_sha256(dawn.output) == original

    code, out, err = cli("assemble", str(ep), *folders(tmp_path))
    assert code == 0, err
    cut = json.loads((tmp_path / "out" / "ep" / "ep.json").read_text())
    assert cut["shots"][0]["sha256"] == original
    code, out, err = cli("plan", str(ep), *folders(tmp_path))
    assert out.count(" skip ") == 3, out  # nothing left to do: no endless "copy"


def test_the_edited_video_is_kept_and_comes_back_when_the_edit_is_redone(tmp_path: Path, start_sim: StartSim, write: Write, media: Media) -> None:
    media("m/a.png", "png")
    ep = write("ep.yaml", EPISODE)
    sim = fast_sim(start_sim)
    assert run([ep], tmp_path, sim)[0] == 0
    write("ep.yaml", EPISODE.replace("sun rise", "storm roll in"))
    assert run([ep], tmp_path, sim)[0] == 0
    (aside,) = (tmp_path / "out" / "ep" / "ep" / "superseded").glob("dawn-*.mp4")
    store = VideoStore(tmp_path / "out" / ".r2v-store")
    (stored,) = [o for o in store.objects() if o.fingerprint.startswith(aside.stem.rsplit("-", 1)[1])]
    assert aside.samefile(stored.path)  # a link to the stored video, not a second copy
    assert sum(1 for _ in store.objects()) == 4  # one object per paid video, superseded/ only links to them
    write("ep.yaml", EPISODE)
    assert run([ep], tmp_path, sim)[0] == 0
    write("ep.yaml", EPISODE.replace("sun rise", "storm roll in"))  # redo
    code, report, _ = run([ep], tmp_path, sim)
    assert code == 0 and report["shots"][0]["status"] == "reused"
    assert billed(sim) == 4


def test_renaming_moving_picking_and_reordering_takes_bill_nothing(tmp_path: Path, start_sim: StartSim, write: Write, media: Media) -> None:
    media("m/a.png", "png")
    write("series.yaml", "series: s\ncast: {a: {image: m/a.png}}\n")
    body = EPISODE.split("\n", 1)[1]  # the shots, without the cast line
    ep1 = write("ep1.yaml", "extends: series.yaml\n" + body)
    ep2 = write("ep2.yaml", "extends: series.yaml\nshots: []\n")
    sim = fast_sim(start_sim)
    assert run([ep1], tmp_path, sim)[0] == 0
    assert billed(sim) == 3
    take7, take9 = (s for s in plan_of([ep1], tmp_path).shots if s.shot == "dusk")
    seven, nine = file_sha256(take7.output), file_sha256(take9.output)

    write("ep1.yaml", "extends: series.yaml\n" + body.replace("id: dawn", "id: sunrise"))  # rename
    code, report, log = run([ep1], tmp_path, sim)
    assert code == 0, log
    statuses = {s["shot"]: s["status"] for s in report["shots"]}
    assert statuses["sunrise"] == "reused"
    sunrise = plan_of([ep1], tmp_path).shots[0]
    assert probe_file(sunrise.output).has_video and json.loads(sunrise.output.with_suffix(".json").read_text())["key"] == "s/ep1/sunrise"

    write("ep1.yaml", "extends: series.yaml\n" + body.replace("takes: [7, 9]", "takes: [9, 7]"))  # reorder takes
    code, report, log = run([ep1], tmp_path, sim)
    assert code == 0, log
    assert sorted(s["status"] for s in report["shots"] if s["shot"] == "dusk") == ["reused", "reused"]
    first, second = (s for s in plan_of([ep1], tmp_path).shots if s.shot == "dusk")
    assert (file_sha256(first.output), file_sha256(second.output)) == (nine, seven)

    write("ep1.yaml", "extends: series.yaml\n" + body.replace("takes: [7, 9]", "takes: [9, 7]\n    pick: 2"))  # switch pick
    code, out, err = cli("assemble", str(ep1), *folders(tmp_path))
    assert code == 0, err
    cut = json.loads((tmp_path / "out" / "s" / "ep1.json").read_text())
    assert [(s["shot"], s["take"], s["sha256"]) for s in cut["shots"]][1] == ("dusk", 2, seven)

    shots = body.split("  - id: dusk")[1]
    write("ep1.yaml", "extends: series.yaml\nshots:\n  - id: dusk" + shots.replace("takes: [7, 9]", "takes: [9, 7]"))
    write("ep2.yaml", "extends: series.yaml\nshots:\n" + body.split("shots:\n")[1].split("  - id: dusk")[0])  # move dawn
    code, report, log = run([ep1, ep2], tmp_path, sim)
    assert code == 0, log
    assert {s["key"]: s["status"] for s in report["shots"]}["s/ep2/dawn"] == "reused"
    assert billed(sim) == 3  # none of it made anything again


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda text: text.replace("duration: 2, prompt", "duration: 3, prompt"), "duration: 2 → 3"),
        (lambda text: text.replace("'{{ a }} watches", "'{{ a }} calmly watches"), "prompt changed:"),
    ],
)
def test_plan_says_what_an_edit_changed(
    tmp_path: Path, start_sim: StartSim, write: Write, media: Media, edit: Callable[[str], str], expected: str
) -> None:
    media("m/a.png", "png")
    ep = write("ep.yaml", EPISODE)
    assert run([ep], tmp_path, fast_sim(start_sim))[0] == 0
    write("ep.yaml", edit(EPISODE))
    code, out, err = cli("plan", str(ep), *folders(tmp_path))
    assert code == 0, err
    assert expected in out
    code, out, err = cli("plan", "--json", str(ep), *folders(tmp_path))
    dawn = json.loads(out)["shots"][0]
    assert dawn["action"] == "submit" and any(expected in line for line in dawn["changes"])


def test_plan_names_a_reference_file_whose_content_changed(
    tmp_path: Path, start_sim: StartSim, write: Write, media: Media, media_bytes: dict[str, bytes]
) -> None:
    media("m/a.png", "png")
    ep = write("ep.yaml", EPISODE)
    assert run([ep], tmp_path, fast_sim(start_sim))[0] == 0
    write("m/a.png", media_bytes["jpeg"])  # the same name, new content
    code, out, err = cli("plan", str(ep), *folders(tmp_path))
    assert code == 0, err
    assert "m/a.png: content changed (sha256 " in out


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(data=st.dictionaries(st.text(), _JSON_VALUES, max_size=6))
def test_a_sidecar_reads_back_as_written_one_field_a_line(data: dict[str, Any]) -> None:
    text = readable_json(data)
    assert json.loads(text) == data
    assert text.endswith("\n") and text.count("\n") == (len(data) + 2 if data else 1)
