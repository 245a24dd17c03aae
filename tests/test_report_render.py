"""What makes writing the reports cheap must not change what they say: compiled templates
kept between runs, posters that skip escaping, paths resolved once a folder."""

from __future__ import annotations

import os
from pathlib import Path

import jinja2
import pytest
from hypothesis import given, strategies as st

from r2v_pipeline.report import build, html


def environment(monkeypatch: pytest.MonkeyPatch, cache: str) -> jinja2.Environment:
    monkeypatch.setenv("R2V_CACHE_DIR", cache)
    return html.page_environment("r2v_pipeline.report")


def kept_templates(root: Path) -> list[Path]:
    return sorted((root / "pages").rglob("*.cache"))


def test_the_report_template_compiles_once_and_then_comes_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cold = environment(monkeypatch, str(tmp_path)).get_template("report.html.j2")
    [entry] = kept_templates(tmp_path)
    written = entry.stat().st_mtime_ns
    warm = environment(monkeypatch, str(tmp_path)).get_template("report.html.j2")
    assert entry.stat().st_mtime_ns == written  # read, not compiled and written again
    assert warm.root_render_func.__code__.co_code == cold.root_render_func.__code__.co_code


def test_a_damaged_compiled_template_is_compiled_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = environment(monkeypatch, str(tmp_path)).get_template("report.html.j2")
    [entry] = kept_templates(tmp_path)
    intact = entry.read_bytes()
    entry.write_bytes(intact[: len(intact) // 2] + b"\x00garbage")
    again = environment(monkeypatch, str(tmp_path)).get_template("report.html.j2")
    assert again.root_render_func.__code__.co_code == good.root_render_func.__code__.co_code
    assert entry.read_bytes() == intact  # written afresh


def test_no_cache_when_turned_off_or_unwritable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert environment(monkeypatch, "off").bytecode_cache is None
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    env = environment(monkeypatch, str(blocked))
    assert env.bytecode_cache is None
    assert env.get_template("report.html.j2") is not None


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("data:image/jpeg;base64,/9j/4AAQSkZJRg==", "data:image/jpeg;base64,/9j/4AAQSkZJRg=="),
        ('data:image/jpeg;base64,AA"><script>x()</script>', "data:image/jpeg;base64,AA&#34;&gt;&lt;script&gt;x()&lt;/script&gt;"),
    ],
)
def test_a_poster_is_escaped_unless_it_is_plain_base64(uri: str, shown: str) -> None:
    page = jinja2.Environment(autoescape=True).from_string('<video poster="{{ p }}">').render(p=html._attribute(uri))
    assert page == f'<video poster="{shown}">'


@given(st.lists(st.sampled_from(["a", "b", "link-dir", "link-file.mp4", "c.mp4"]), min_size=1, max_size=4))
def test_a_report_path_is_the_real_path_relative_to_the_report(tmp_path_factory: pytest.TempPathFactory, parts: list[str]) -> None:
    root = tmp_path_factory.mktemp("tree")
    (root / "real" / "deep").mkdir(parents=True)
    (root / "real" / "deep" / "c.mp4").write_bytes(b"x")
    (root / "report").mkdir()
    os.symlink(root / "real" / "deep", root / "link-dir")
    os.symlink(root / "real" / "deep" / "c.mp4", root / "link-file.mp4")
    os.symlink(root / "report", root / "report-link")
    path = str(root.joinpath(*parts))
    build._real.cache_clear()
    assert build._relative(path, root / "report-link") == os.path.relpath(os.path.realpath(path), os.path.realpath(root / "report"))


@given(st.text(alphabet=st.sampled_from("aZ09+/=&<>\"' ;:é"), max_size=40))
def test_a_poster_reads_on_the_page_as_escaping_would_write_it(text: str) -> None:
    template = jinja2.Environment(autoescape=True).from_string('<video poster="{{ p }}">')
    assert template.render(p=html._attribute(text)) == template.render(p=text)


def test_a_cast_block_is_rendered_once_per_distinct_list_and_never_shared_with_another() -> None:
    from r2v_pipeline.report.html import _CastBlocks

    blocks = _CastBlocks()
    mia = {"name": "mia", "role": "image", "label": "Image 1", "source": "media/mia.png", "description": "a baker", "picture": "picture-0"}
    first = blocks([mia])
    assert blocks([dict(mia)]) is first  # the same list on another card: rendered once
    for field, value in [("name", "leo"), ("label", "Image 2"), ("source", "media/leo.png"), ("description", "<b>"), ("picture", None)]:
        other = str(blocks([{**mia, field: value}]))
        assert other != str(first)
        if field == "description":
            assert "&lt;b&gt;" in other and "<b>" not in other  # escaped as on the page
    pictureless = {**mia, "picture": None}
    assert str(blocks([pictureless])) != str(blocks([{**pictureless, "role": "video"}]))  # the role shows where no picture does
    assert str(blocks([mia, mia])).count('class="ref"') == 2
