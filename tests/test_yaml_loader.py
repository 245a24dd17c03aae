"""The position-keeping YAML loader: values, places, and refusals of hostile input."""

from __future__ import annotations

import re

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from r2v_pipeline.diagnostics import Position
from r2v_pipeline.manifest.yaml_loader import YamlError, YamlFile, parse_yaml


def load(text: str | bytes) -> YamlFile:
    raw = text.encode() if isinstance(text, str) else text
    return parse_yaml(raw, Path("m.yaml"), "m.yaml")


def errors(text: str | bytes) -> list[str]:
    with pytest.raises(YamlError) as caught:
        load(text)
    return [str(d) for d in caught.value.diagnostics]


def test_scalars_resolve_like_yaml_11_but_ratios_and_dates_stay_text() -> None:
    data = load("a: 1\nb: 16:9\nc: 2024-01-01\nd: yes\ne: 0x10\nf: 1.5\ng: ~\nh: '5'\ni: 1280*720\n").data
    assert data == {"a": 1, "b": "16:9", "c": "2024-01-01", "d": True, "e": 16, "f": 1.5, "g": None, "h": "5", "i": "1280*720"}


def test_positions_of_keys_and_values_count_from_one() -> None:
    f = load("shots:\n  - id: intro\n    duration: 5\n")
    assert f.at(("shots", 0, "duration")) == Position("m.yaml", 3, 15)
    assert f.key_at(("shots", 0, "duration")) == Position("m.yaml", 3, 5)
    assert f.at(("shots", 0)) == Position("m.yaml", 2, 5)
    # a missing path falls back to its nearest ancestor
    assert f.at(("shots", 0, "nope", 3)) == Position("m.yaml", 2, 5)


def test_literal_block_remembers_its_first_text_line() -> None:
    f = load("p: |\n  one\n  two\n")
    assert f.data == {"p": "one\ntwo\n"}
    assert f.literal_lines[("p",)] == 2


def test_duplicate_keys_are_errors_naming_both_lines() -> None:
    assert errors("a: 1\nb:\n  c: 1\na: 2\n") == ['m.yaml:4:1: duplicate key "a" (first at line 1)']
    assert errors("x: {k: 1, k: 2}\n") == ['m.yaml:1:11: duplicate key "k" (first at line 1)']


def test_keys_that_are_not_text_are_errors() -> None:
    assert errors("1: x\nyes: y\n") == [
        "m.yaml:1:1: key '1' reads as int, not text; put it in quotes",
        "m.yaml:2:1: key 'yes' reads as bool, not text; put it in quotes",
    ]
    assert errors("? [a]\n: 1\nb: 2\n") == ["m.yaml:1:3: a key must be plain text, not a list or mapping"]


def test_anchors_aliases_and_merge_keys_work_and_keep_places() -> None:
    f = load("base: &b\n  x: 1\n  y: 2\nother:\n  <<: *b\n  y: 3\nlist: [*b]\n")
    assert f.data == {"base": {"x": 1, "y": 2}, "other": {"x": 1, "y": 3}, "list": [{"x": 1, "y": 2}]}
    assert f.at(("other", "x")) == Position("m.yaml", 2, 6)  # where the merged value was written
    assert f.at(("other", "y")) == Position("m.yaml", 6, 6)  # the own key wins
    assert f.at(("list", 0, "y")) == Position("m.yaml", 3, 6)


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
    (message,) = errors("\n".join(lines) + "\n")
    assert "aliases expand this document too far" in message


def test_nesting_past_the_limit_is_refused_at_its_place() -> None:
    (message,) = errors("[" * 65 + "]" * 65)
    assert message == "m.yaml:1:65: nested deeper than 64 levels; not a manifest"


@pytest.mark.parametrize("depth", [1_000, 200_000])
def test_very_deep_nesting_is_one_error_at_a_place_without_crashing(depth: int) -> None:
    # libyaml's own composer overflows the C stack near 100,000 levels, and newer libyaml
    # stops at its own depth limit first: either way one error on line 1, never a crash.
    (message,) = errors("[" * depth + "]" * depth)
    assert re.match(r"m\.yaml:1:\d+: \S", message), message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "m.yaml:1:1: is empty; a manifest is a YAML mapping"),
        ("# just a comment\n", "m.yaml:1:1: is empty; a manifest is a YAML mapping"),
        (b"\xff\xfe\x00junk", "m.yaml:1:1: not UTF-8 text (byte 0xff)"),
        ("a: !!python/object:os.system 1\n", "m.yaml:1:4: YAML tag tag:yaml.org,2002:python/object:os.system is not allowed in a manifest"),
        ("a: 1\n---\nb: 2\n", "m.yaml:2:1: a manifest holds one YAML document; found a second '---'"),
        ("a: *nope\n", "m.yaml:1:4: alias *nope names no anchor defined before it"),
    ],
)
def test_unusable_input_gets_one_clear_message(text: str | bytes, expected: str) -> None:
    assert errors(text) == [expected]


@pytest.mark.parametrize(
    ("text", "start"),
    [
        # the parser's own words follow; only the place and our prefix are this loader's
        ("a: [1, 2\n", "m.yaml:2:1: YAML syntax error: "),
        ("a: \x00b\n", "m.yaml:1:4: not YAML text: "),
    ],
)
def test_syntax_errors_are_placed_and_prefixed(text: str, start: str) -> None:
    (message,) = errors(text)
    assert message.startswith(start) and len(message) > len(start), message


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_any_input_loads_or_fails_with_placed_messages(junk: bytes | str) -> None:
    try:
        f = load(junk)
    except YamlError as err:
        assert err.diagnostics and all(d.position.line >= 1 and d.position.col >= 1 for d in err.diagnostics)
    else:
        assert f.data is not None


@settings(max_examples=150, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=12),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4),
        max_leaves=20,
    )
)
def test_loads_what_pyyaml_dumps_to_the_same_data(value: object) -> None:
    document = {"root": value}
    assert load(yaml.safe_dump(document)).data == document
