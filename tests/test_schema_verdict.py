"""The compiled schema verdict gives jsonschema's verdict, or none: it never passes a
document the manifest schema refuses, so skipping jsonschema never hides a message."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from r2v_pipeline.manifest.schema import manifest_schema, passes_fast
from r2v_pipeline.manifest.schema_verdict import Undecided, compile_schema
from r2v_pipeline.manifest.yaml_loader import load_yaml

SCHEMA = manifest_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
CHECK = compile_schema(SCHEMA)
REPO = Path(__file__).resolve().parent.parent

# Values that sit on or just past the schema's edges, or are of a surprising type.
ODD: list[Any] = [
    None, True, False, 0, 1, -1, 2, 15, 16, 50, 51, 0.0, 0.5, 5.0, 2147483647, 2147483648, 1e9, 1e9 + 1,
    math.nan, math.inf, "", "x", "_x", "loop", "None", "a b", "Mia", "720p", "720P", "16:9",
    "wan2.7-r2v", "wan2.6-r2v-2025-01-01", "wan2.6-r2v-25-1-1", "https://x.test/a", "ftp://x", "x\n",
    [], [1, 1], [1, 1.0], [1, True], ["a", "a"], ["a", "b"], [{}], {}, {"k": 1}, {1: "x"}, {None: 1},
]  # fmt: skip
ODD_KEYS = ["image", "video", "storyboard", "voice", "duration", "id", "prompt", "model", "x", "_x", "loop", "Bad Name", 1]


def _resolve(ref: str) -> dict[str, Any]:
    node: Any = SCHEMA
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _merged(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema with its $ref's keywords folded in, to guide generation only."""
    if "$ref" not in schema:
        return schema
    target = _merged(_resolve(schema["$ref"]))
    return {**target, **{k: v for k, v in schema.items() if k != "$ref"}, "properties": {**target.get("properties", {}), **schema.get("properties", {})}}


def near(schema: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Documents close to ``schema``: mostly well formed, now and then one part off."""
    odd = st.sampled_from(ODD)
    if not isinstance(schema, dict) or depth > 6:
        return odd
    schema = _merged(schema)
    choices: list[st.SearchStrategy[Any]] = []
    for key in ("anyOf", "oneOf"):
        if key in schema:
            choices += [near(sub, depth + 1) for sub in schema[key]]
    if "enum" in schema:
        choices.append(st.sampled_from(schema["enum"]))
    kind = schema.get("type")
    if kind == "object" or "properties" in schema or "oneOf" in schema and depth > 0:
        choices.append(_object(schema, depth))
    if kind == "array":
        choices.append(st.lists(near(schema.get("items", {}), depth + 1), max_size=3))
    if kind == "string":
        fitting = st.from_regex(schema["pattern"], fullmatch=True) if "pattern" in schema else st.text(max_size=8)
        choices.append(st.one_of(fitting, fitting, st.sampled_from([s for s in ODD if isinstance(s, str)])))
    if kind in ("integer", "number"):
        low, high = schema.get("minimum", schema.get("exclusiveMinimum", -5)), schema.get("maximum", 10**10)
        choices.append(st.integers(int(low) - 1, int(high) + 1))
        choices.append(st.floats(low - 1, high + 1, allow_nan=False))
    if kind == "boolean":
        choices.append(st.booleans())
    if not choices:
        choices.append(st.dictionaries(st.sampled_from(ODD_KEYS[:8]), odd, max_size=2))
    # Mostly well formed (an odd value at every level would leave few valid documents).
    return st.one_of(*choices * 12, odd) if depth else st.one_of(*choices)


def _object(schema: dict[str, Any], depth: int) -> st.SearchStrategy[dict[Any, Any]]:
    properties = schema.get("properties", {})
    if not properties or isinstance(schema.get("additionalProperties"), dict):
        names = st.sampled_from(["mia", "leo", "cup", "wan2.7-r2v", "720P", "_x", "loop", "Bad Name", "dashscope"])
        values = near(schema.get("additionalProperties", {}), depth + 1) if isinstance(schema.get("additionalProperties"), dict) else st.sampled_from(ODD)
        return st.dictionaries(names, values, max_size=3)
    required = schema.get("required", [])
    fields = {name: near(sub, depth + 1) for name, sub in properties.items()}

    @st.composite
    def build(draw: st.DrawFn) -> dict[Any, Any]:
        names = draw(st.lists(st.sampled_from(sorted(fields)), max_size=4, unique=True))
        keep = [n for n in required if draw(st.integers(0, 19)) > 0]  # a required key, now and then missing
        value = {name: draw(fields[name]) for name in dict.fromkeys([*keep, *names])}
        if draw(st.integers(0, 19)) == 0:
            value[draw(st.sampled_from(ODD_KEYS))] = draw(st.sampled_from(ODD))
        return value

    return build()


def jsonschema_verdict(document: Any) -> bool:
    return not any(True for _ in VALIDATOR.iter_errors(document))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(near(SCHEMA))
def test_the_fast_verdict_is_jsonschemas_wherever_it_gives_one(document: dict[str, Any]) -> None:
    try:
        verdict = CHECK(document)
    except Undecided:
        assert not passes_fast(document)
        return
    assert verdict == jsonschema_verdict(document)
    assert passes_fast(document) == verdict


MANIFESTS = sorted([*(REPO / "manifests" / "lighthouse").glob("*.yaml"), *(REPO / "manifests" / "seeds").glob("*.yaml")])
BASES = [load_yaml(path, path.name).data for path in MANIFESTS]


def _places(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    places = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            places += _places(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            places += _places(value, path + (i,))
    return places


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """A real manifest with up to three parts changed: one value, key or item at a time."""
    document = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(_places(document)))
        if not path:
            continue
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        how = draw(st.sampled_from(["replace", "drop", "add"]))
        odd = copy.deepcopy(draw(st.sampled_from(ODD)))  # later changes must not reach ODD itself
        if how == "replace":
            parent[path[-1]] = odd
        elif how == "drop":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(ODD_KEYS))] = odd
        else:
            parent.append(copy.deepcopy(parent[path[-1]]) if draw(st.booleans()) else odd)
    return document


@settings(max_examples=1500, deadline=None)
@given(mutated())
def test_real_manifests_changed_here_and_there_get_jsonschemas_verdict(document: Any) -> None:
    try:
        verdict = CHECK(document)
    except Undecided:
        return
    assert verdict == jsonschema_verdict(document)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_the_project_manifests_take_the_fast_path(path: Path) -> None:
    """A manifest as people write them is judged without jsonschema."""
    data = load_yaml(path, path.name).data
    assert jsonschema_verdict(data)
    assert passes_fast(data)


@pytest.mark.parametrize(
    "document",
    [
        {"shots": [{"id": "a", "prompt": "p", "duration": 5.0}]},  # a whole float is an integer
        {"shots": [{"id": "a", "prompt": "p", "cast": ["mia", "leo"]}]},
        {"cast": {"mia": {"image": "a.png", "voice": "v.wav"}}, "defaults": {"model": "wan2.6-r2v-2025-01-01"}},
        {"prices": {"dashscope": {"wan2.7-r2v": {"720P": {"audio": 0.1, "silent": 0}}}}},
        {"episode": "e\n"},  # `$` matches before a final newline, in both
    ],
)
def test_valid_shapes_are_passed(document: dict[str, Any]) -> None:
    assert jsonschema_verdict(document) and passes_fast(document)


@pytest.mark.parametrize(
    "document",
    [
        {"shots": [{"id": "a", "prompt": "p", "duration": 5.5}]},
        {"shots": [{"id": "a", "prompt": "p", "durration": 5}]},  # unevaluated beside a $ref
        {"defaults": {"id": "a"}},  # a shot's key is not a default
        {"shots": [{"id": "a", "prompt": "p", "cast": ["mia", "mia"]}]},
        {"shots": [{"id": "a", "prompt": "p", "seed": True}]},
        {"cast": {"mia": {"image": "a.png", "video": "b.mp4"}}},  # oneOf: two branches hold
        {"cast": {"_mia": {"image": "a.png"}}},
        {"cast": {"loop": {"image": "a.png"}}},
        {"vars": {1: "x"}},
    ],
)
def test_refused_shapes_are_refused(document: dict[str, Any]) -> None:
    assert not passes_fast(document)
    assert not jsonschema_verdict(document)


@pytest.mark.parametrize(
    "document",
    [
        {"shots": [{"id": "a", "prompt": "p", "takes": [1, True]}]},  # JSON tells 1 from true; a set does not
        {"budget": {"money": math.nan}},  # check_schema words non-finite numbers itself
        {"shots": [{"id": "a", "prompt": "p", "duration": Path("5")}]},  # no JSON type
    ],
)
def test_doubtful_shapes_go_to_jsonschema(document: dict[str, Any]) -> None:
    with pytest.raises(Undecided):
        CHECK(document)
    assert not passes_fast(document)


def test_an_unknown_keyword_is_refused_when_compiling() -> None:
    with pytest.raises(NotImplementedError):
        compile_schema({"type": "object", "dependentRequired": {"a": ["b"]}})
