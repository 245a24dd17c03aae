"""The command line: exit codes, message format, and no traceback whatever the input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from r2v_pipeline.cli import main

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "manifests" / "seeds"
EXPECTED = REPO / "tests" / "data" / "seed_requests"
EXAMPLE = sorted((REPO / "manifests" / "lighthouse").glob("ep*.yaml"))
PLACED = re.compile(r"^[^:]+:\d+:\d+: ")

Write = Callable[[str, str | bytes], Path]


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_and_plan_the_example_series(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate", *EXAMPLE)
    assert (code, out) == (0, "ok: 2 episode(s), 7 shot(s), 8 request(s)\n")
    code, out, _ = run(capsys, "plan", *EXAMPLE)
    assert code == 0
    assert "lighthouse/ep01" in out and "lighthouse/ep02" in out
    assert "8 submit" in out


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ("wan27-three-references.yaml", "wan27_three_references.json"),
        ("wan27-first-frame.yaml", "wan27_first_frame.json"),
        ("wan27-storyboard.yaml", "wan27_storyboard.json"),
        ("wan26-four-references.yaml", "wan26_four_references.json"),
    ],
)
def test_seed_examples_come_out_exactly(capsys: pytest.CaptureFixture[str], manifest: str, expected: str) -> None:
    code, out, _ = run(capsys, "plan", "--json", SEEDS / manifest)
    assert code == 0
    (shot,) = json.loads(out)["shots"]
    assert shot["body"] == json.loads((EXPECTED / expected).read_text())


def test_seed_faq_request_input_comes_out_exactly(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "plan", "--json", SEEDS / "wan27-faq-first-frame-video.yaml")
    (shot,) = json.loads(out)["shots"]
    assert shot["body"]["input"] == json.loads((EXPECTED / "wan27_faq_input.json").read_text())["input"]


def test_every_seed_manifest_plans(capsys: pytest.CaptureFixture[str]) -> None:
    manifests = sorted(SEEDS.glob("*.yaml"))
    code, out, err = run(capsys, "plan", "--json", *manifests)
    assert code == 0, err
    models = {(s["provider"], s["model"]) for s in json.loads(out)["shots"]}
    assert models == {("dashscope", "wan2.7-r2v"), ("dashscope", "wan2.6-r2v"), ("dashscope", "wan2.6-r2v-flash"), ("freepik", "wan2.7-r2v")}


def test_plan_json_names_actions_billing_and_files(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "plan", "--json", EXAMPLE[0])
    plan = json.loads(out)
    arrival = next(s for s in plan["shots"] if s["shot"] == "arrival")
    assert arrival["action"] == "submit"
    assert arrival["billed_seconds"] == {"output": 8, "input": 3, "total": 11, "exact": True}
    assert {f["transport"] for f in arrival["files"]} == {"inline", "upload"}
    assert all(f["url"].startswith("local:") and len(f["sha256"]) == 64 for f in arrival["files"])
    assert plan["totals"]["currency"] == "USD"


def test_over_budget_plan_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "plan", "--budget-seconds", "20", *EXAMPLE)
    assert code == 1
    assert "over budget: budget given on the command line: 58 billed seconds cross the budget of 20 s" in err


def test_errors_are_placed_and_exit_2(capsys: pytest.CaptureFixture[str], write: Write) -> None:
    path = write("ep.yaml", "shots:\n  - {id: a, prompt: '{{ nobody }}', duration: 99}\n")
    code, out, err = run(capsys, "validate", path)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert all(PLACED.match(line) for line in lines[:-1])
    assert lines[-1] == "1 error(s); nothing was sent"
    assert "shots[a].duration is 99; it must be at most 15" in err


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00\x01\x02\xff" * 50, b"a: &a [x]\n" + b"".join(b"%c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n" % ((98 + i,) * 2 + (97 + i,) * 10) for i in range(9)), b"[" * 10000, b"shots: 5\n", b"cast: {a: {image: []}}\n"],
    ids=["empty", "binary", "alias-bomb", "deep", "wrong-type", "nested-wrong-type"],
)
def test_hostile_files_exit_2_without_traceback(capsys: pytest.CaptureFixture[str], write: Write, content: bytes) -> None:
    code, _, err = run(capsys, "validate", write("bad.yaml", content))
    assert code == 2
    assert "Traceback" not in err and "internal error" not in err
    assert PLACED.match(err.splitlines()[0])


def test_a_folder_or_a_missing_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "validate", tmp_path, tmp_path / "nope.yaml")
    assert code == 2
    assert "is a directory, not a manifest file" in err
    assert "nope.yaml:1:1: cannot read: No such file or directory" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["plan", "--budget-seconds", "-3", "x.yaml"])
    assert caught.value.code == 2
    with pytest.raises(SystemExit) as caught:
        main(["frobnicate"])
    assert caught.value.code == 2


@pytest.mark.parametrize("command", [[str(Path(sys.executable).parent / "r2v")], [sys.executable, "-m", "r2v_pipeline"]])
def test_console_script_and_module_run(command: list[str]) -> None:
    done = subprocess.run([*command, "validate", *map(str, EXAMPLE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: 2 episode(s)")


def test_the_report_schema_knows_every_exit_code_a_run_reports() -> None:
    """exits.py is where the codes are defined; the schema's list follows it."""
    from r2v_pipeline import exits

    schema = json.loads((Path(__file__).parent.parent / "r2v_pipeline" / "schemas" / "report.schema.json").read_text())
    listed = set(schema["properties"]["run"]["properties"]["exit_code"]["enum"])
    reported = set(exits.MEANINGS) - {exits.INTERNAL}  # an internal error writes no report
    assert listed == reported
