"""The plan cache never makes an edited input look unchanged: any byte of a manifest or
a media file, a selects file appearing, a link moved, an option, another working
folder, another r2v version, another provider table is a miss, and the plan then
made is the one planning without the cache gives. A damaged entry is ignored."""

from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import r2v_pipeline
from r2v_pipeline.catalog import registry
from r2v_pipeline.diagnostics import Diagnostics
from r2v_pipeline.media import synth
from r2v_pipeline.plan import plan_cache
from r2v_pipeline.plan.planner import PlanOptions, make_plan

SERIES = """\
series: cache
defaults: {model: wan2.7-r2v, resolution: 720P, duration: 5}
cast:
  mia: {image: media/mia.png, voice: media/mia.wav, description: a baker}
  leo: {image: media/leo.png}
"""
EPISODE = """\
extends: series.yaml
episode: one
vars: {town: Harwich}
shots:
  - id: a
    prompt: "{{ mia }} hands a cup to {{ leo }} in {{ town }}."
  - id: b
    model: wan2.6-r2v
    takes: 2
    prompt: "{{ mia }} and {{ leo }} wait."
"""
FILES = ["series.yaml", "episode.yaml", "media/mia.png", "media/mia.wav", "store/leo-1.png"]
PNG = synth.image_bytes(256, 256, "png")
WAV = synth.audio_bytes(1.5, "wav")


def make_folder(folder: Path) -> None:
    (folder / "media").mkdir()
    (folder / "store").mkdir()
    (folder / "series.yaml").write_text(SERIES)
    (folder / "episode.yaml").write_text(EPISODE)
    (folder / "media" / "mia.png").write_bytes(PNG)
    (folder / "media" / "mia.wav").write_bytes(WAV)
    (folder / "store" / "leo-1.png").write_bytes(PNG)
    (folder / "store" / "leo-2.png").write_bytes(PNG)  # the same bytes under another name
    (folder / "media" / "leo.png").symlink_to(folder / "store" / "leo-1.png")


@contextmanager
def inside(folder: Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def fresh(paths: list[Path], options: PlanOptions) -> tuple[Any, list[Any]]:
    found = Diagnostics()
    return make_plan(paths, options, found), found.items


def cached(paths: list[Path], options: PlanOptions) -> tuple[Any, list[Any]]:
    found = Diagnostics()
    return plan_cache.cached_plan(paths, options, found), found.items


def kept(paths: list[Path], options: PlanOptions) -> Any:
    """What the cache would give for this request now, without planning (None: a miss)."""
    entry = plan_cache.entry_path(paths, options)
    assert entry is not None
    return plan_cache.lookup(entry, plan_cache.current_setup(paths, options))


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("R2V_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "work").mkdir()
    make_folder(tmp_path / "work")
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path / "work"


def test_an_unchanged_request_is_a_hit_with_the_same_plan_and_warnings(folder: Path) -> None:
    paths, options = [Path("episode.yaml")], PlanOptions()
    first = cached(paths, options)
    assert first[0].shots and any(d.severity == "warning" for d in first[1])  # wan2.6 takes no reference voice
    assert kept(paths, options) is not None
    again = cached(paths, options)
    assert again == first == fresh(paths, options)


# --- every input changed is a miss ---------------------------------------------------------

OPTIONS = {
    "provider": "freepik",
    "region": "cn",
    "base_url": "https://dashscope.aliyuncs.com/api/v1",
    "budget_seconds": Decimal("7"),
    "budget_money": Decimal("0.5"),
    "output_dir": Path("elsewhere"),
    "state_dir": Path("ledger"),
    "namespace": "simulated",
    "body_format": 1,
}

mutations = st.one_of(
    st.tuples(st.just("byte"), st.sampled_from(FILES), st.integers(min_value=0), st.integers(min_value=1, max_value=255)),
    st.tuples(st.just("insert"), st.sampled_from(FILES), st.integers(min_value=0), st.binary(min_size=1, max_size=3)),
    st.tuples(st.just("truncate"), st.sampled_from(FILES), st.integers(min_value=0)),
    st.tuples(st.just("selects"), st.sampled_from(["", "a: {pick: 1}\n", "b: {pick: 2, note: the better one}\n", "{{{"])),
    st.tuples(st.just("link")),
    st.tuples(st.just("remove"), st.sampled_from(FILES)),
    st.tuples(st.just("option"), st.sampled_from(sorted(OPTIONS))),
)


def mutate(folder: Path, mutation: tuple[Any, ...], options: PlanOptions) -> PlanOptions:
    kind = mutation[0]
    if kind in ("byte", "insert", "truncate"):
        path = folder / mutation[1]
        data = bytearray(path.read_bytes())
        at = mutation[2] % len(data)
        if kind == "byte":
            data[at] = (data[at] + mutation[3]) % 256  # never the byte it was
        elif kind == "insert":
            data[at:at] = mutation[3]
        else:
            del data[at:]
        path.write_bytes(bytes(data))
    elif kind == "selects":
        (folder / "episode.selects.yaml").write_text(mutation[1])  # a file that was not there
    elif kind == "link":  # the same bytes, reached through another file
        (folder / "media" / "leo.png").unlink()
        (folder / "media" / "leo.png").symlink_to(folder / "store" / "leo-2.png")
    elif kind == "remove":
        (folder / mutation[1]).unlink()
    elif kind == "option":
        return replace(options, **{mutation[1]: OPTIONS[mutation[1]]})
    return options


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=mutations)
def test_any_change_to_what_planning_read_is_a_miss_and_gives_the_fresh_plan(
    mutation: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        monkeypatch.setenv("R2V_CACHE_DIR", str(root / "cache"))
        (root / "work").mkdir()
        make_folder(root / "work")
        with inside(root / "work"):
            paths, options = [Path("episode.yaml")], PlanOptions()
            cached(paths, options)
            assert kept(paths, options) is not None
            options = mutate(root / "work", mutation, options)
            assert kept(paths, options) is None
            assert cached(paths, options) == fresh(paths, options)


def test_another_working_folder_is_a_miss(folder: Path) -> None:
    paths, options = [folder / "episode.yaml"], PlanOptions()  # the same files, named absolutely
    cached(paths, options)
    assert kept(paths, options) is not None
    (folder / "sub").mkdir()
    with inside(folder / "sub"):  # messages and relative outputs name files from here
        assert kept(paths, options) is None
        assert cached(paths, options) == fresh(paths, options)


def test_another_manifest_given_is_a_miss(folder: Path) -> None:
    (folder / "episode2.yaml").write_text(EPISODE.replace("episode: one", "episode: two"))
    cached([Path("episode.yaml")], PlanOptions())
    assert kept([Path("episode.yaml"), Path("episode2.yaml")], PlanOptions()) is None


def test_a_cache_from_another_r2v_version_is_ignored(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths, options = [Path("episode.yaml")], PlanOptions()
    cached(paths, options)
    monkeypatch.setattr(r2v_pipeline, "__version__", "0.0.0-earlier")
    assert kept(paths, options) is None
    planned = []
    monkeypatch.setattr(plan_cache, "make_plan", lambda *a: planned.append(1) or make_plan(*a))
    assert cached(paths, options) == fresh(paths, options)
    assert planned == [1]  # planned afresh, and kept for this version
    assert kept(paths, options) is not None


def test_a_provider_registered_or_changed_is_a_miss(folder: Path) -> None:
    from tests.acme_provider import ENTRY

    paths, options = [Path("episode.yaml")], PlanOptions()
    cached(paths, options)
    registry.register(ENTRY)
    try:
        assert kept(paths, options) is None
    finally:
        registry.unregister(ENTRY.name)
    assert kept(paths, options) is not None
    dashscope = registry.entry("dashscope")
    changed = replace(dashscope.table, default_model="wan2.6-r2v")
    registry.register(replace(dashscope, table=changed))
    try:
        assert kept(paths, options) is None
    finally:
        registry.register(dashscope)


def test_the_code_is_known_by_every_file_of_the_package(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "plan" / "__pycache__").mkdir(parents=True)
    module = package / "plan" / "planner.py"
    module.write_text("A = 1\n")
    (package / "schemas").mkdir()
    (package / "schemas" / "manifest.schema.json").write_text("{}")
    before = plan_cache.code_identity(package)
    (package / "plan" / "__pycache__" / "planner.cpython-311.pyc").write_bytes(b"compiled")
    assert plan_cache.code_identity(package) == before  # byte-compiling is no change
    (package / "schemas" / "manifest.schema.json").write_text("{ }")
    assert plan_cache.code_identity(package) != before
    after_schema = plan_cache.code_identity(package)
    stat = module.stat()
    module.write_text("A = 2\n")  # the same size and, as a copy keeping times leaves it, the same time
    os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert plan_cache.code_identity(package) != after_schema


def test_a_second_path_to_a_base_manifest_counts_where_it_leads(folder: Path) -> None:
    """Two episodes extend one base, one of them through a link: the link moved to
    another base, or removed, is a miss (the base's own bytes did not change)."""
    (folder / "b").mkdir()
    (folder / "b" / "series.yaml").symlink_to(folder / "series.yaml")
    (folder / "b" / "media").symlink_to(folder / "media")  # a base's media are looked for beside the name it is given
    (folder / "b" / "two.yaml").write_text(EPISODE.replace("episode: one", "episode: two"))
    # Named from anywhere: the same media whichever path reached the base.
    (folder / "series-long.yaml").write_text(SERIES.replace("duration: 5", "duration: 10").replace("media/", f"{folder}/media/"))
    paths, options = [Path("episode.yaml"), Path("b/two.yaml")], PlanOptions()
    cached(paths, options)
    assert kept(paths, options) is not None
    (folder / "b" / "series.yaml").unlink()
    (folder / "b" / "series.yaml").symlink_to(folder / "series-long.yaml")
    assert kept(paths, options) is None
    assert cached(paths, options) == fresh(paths, options)
    plan, found = cached(paths, options)
    assert {s.body["parameters"]["duration"] for s in plan.shots if s.episode == "two"} == {10} and not any(d.severity == "error" for d in found)
    (folder / "b" / "series.yaml").unlink()
    assert kept(paths, options) is None
    assert any(d.severity == "error" for d in cached(paths, options)[1])


def test_a_file_of_another_length_is_a_change_found_without_reading_it(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A huge file put where a picture was is not read to find it changed."""
    from r2v_pipeline.manifest import reads

    paths, options = [Path("episode.yaml")], PlanOptions()
    cached(paths, options)
    with open(folder / "media" / "mia.png", "ab") as f:
        f.truncate(8 * 1024**3)  # 8 GiB, sparse: reading it would take minutes
    assert kept(paths, options) is None
    hashed: list[int] = []
    monkeypatch.setattr(reads, "hashlib", SimpleNamespace(sha256=lambda *a: hashed.append(1) or hashlib.sha256(*a)))
    assert reads.content_of(folder / "media" / "mia.png", len(PNG)) == reads.RESIZED
    assert hashed == []


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "garbage", "another request's"])
def test_a_damaged_entry_is_ignored_and_replaced(folder: Path, damage: str) -> None:
    paths, options = [Path("episode.yaml")], PlanOptions()
    expected = cached(paths, options)
    entry = plan_cache.entry_path(paths, options)
    assert entry is not None
    data = bytearray(entry.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x20
    elif damage == "truncate":
        del data[len(data) // 2 :]
    elif damage == "empty":
        data = bytearray()
    elif damage == "garbage":
        data = bytearray(plan_cache.MAGIC + b"\0" * 32 + b"not a pickle")
    else:  # a whole entry of another plan under this request's name
        (folder / "other.yaml").write_text(EPISODE.replace("and {{ leo }} wait.", "and {{ leo }} run."))
        other = [Path("other.yaml")]
        cached(other, options)
        other_entry = plan_cache.entry_path(other, options)
        assert other_entry is not None
        data = bytearray(other_entry.read_bytes())
        (folder / "other.yaml").unlink()  # what it was made from is gone
    entry.write_bytes(bytes(data))
    assert kept(paths, options) is None
    assert cached(paths, options) == expected
    assert kept(paths, options) is not None  # written afresh


def test_a_plan_with_errors_is_never_kept(folder: Path) -> None:
    (folder / "episode.yaml").write_text(EPISODE.replace("and {{ leo }} wait.", "and {{ nobody }} wait."))
    paths, options = [Path("episode.yaml")], PlanOptions()
    plan, found = cached(paths, options)
    assert any(d.severity == "error" for d in found)
    entry = plan_cache.entry_path(paths, options)
    assert entry is not None and not entry.exists()


def test_off_keeps_nothing(folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("R2V_CACHE_DIR", "off")
    paths, options = [Path("episode.yaml")], PlanOptions()
    assert plan_cache.entry_path(paths, options) is None
    assert cached(paths, options) == fresh(paths, options)
    assert not (tmp_path / "cache").exists()


def test_a_folder_that_cannot_be_written_only_costs_the_cache(folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the cache folder would be")
    monkeypatch.setenv("R2V_CACHE_DIR", str(tmp_path / "blocked"))
    paths, options = [Path("episode.yaml")], PlanOptions()
    assert cached(paths, options) == fresh(paths, options)


def test_the_command_line_sees_an_edit_made_after_a_cached_plan(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from r2v_pipeline import exits
    from r2v_pipeline.cli import main

    assert main(["plan", "--json", "episode.yaml"]) == exits.OK
    assert main(["plan", "--json", "episode.yaml"]) == exits.OK  # from the cache
    assert kept([Path("episode.yaml")], PlanOptions()) is not None
    capsys.readouterr()
    (folder / "episode.yaml").write_text(EPISODE.replace("in {{ town }}.", "in {{ town }} at dawn."))
    assert main(["plan", "--json", "episode.yaml"]) == exits.OK
    assert "Harwich at dawn." in capsys.readouterr().out
    (folder / "episode.yaml").write_text(EPISODE.replace("in {{ town }}.", "in {{ tonw }}."))
    assert main(["validate", "episode.yaml"]) == exits.INVALID
    assert 'prompt uses "tonw"' in capsys.readouterr().err


def test_the_folder_keeps_the_most_recently_used_plans_only(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan_cache, "MAX_ENTRIES", 3)
    paths = [Path("episode.yaml")]
    budgets = [PlanOptions(budget_seconds=Decimal(n)) for n in range(100, 106)]  # six requests
    for number, options in enumerate(budgets[:5]):
        cached(paths, options)
        entry = plan_cache.entry_path(paths, options)
        assert entry is not None
        os.utime(entry, ns=(number * 10**9, number * 10**9))  # an order the clock cannot blur
    assert kept(paths, budgets[2]) is not None  # used now: the newest
    cached(paths, budgets[5])
    entries = list(plan_cache.entry_path(paths, budgets[0]).parent.glob("*.plan"))  # type: ignore[union-attr]
    assert len(entries) == 3
    assert [kept(paths, o) is not None for o in budgets] == [False, False, True, False, True, True]


def test_an_entry_under_another_requests_name_is_no_hit_even_when_its_files_hold(folder: Path) -> None:
    other, options = [Path("other.yaml")], PlanOptions()
    (folder / "other.yaml").write_text(EPISODE.replace("episode: one", "episode: other"))
    cached(other, options)
    paths = [Path("episode.yaml")]
    source, target = plan_cache.entry_path(other, options), plan_cache.entry_path(paths, options)
    assert source is not None and target is not None
    target.write_bytes(source.read_bytes())  # whole, and every file it was made from unchanged
    assert kept(other, options) is not None
    assert kept(paths, options) is None
    assert cached(paths, options) == fresh(paths, options)
