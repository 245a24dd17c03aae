"""The manifest JSON Schema, and its errors turned into messages at file:line:col."""

from __future__ import annotations

import functools
import json
import math
from importlib import resources
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from ..diagnostics import Diagnostic, did_you_mean
from .schema_verdict import Check, Undecided, compile_schema
from .yaml_loader import PathKey, YamlFile

if TYPE_CHECKING:  # jsonschema is imported only for a document the fast verdict does not pass
    import jsonschema
    from jsonschema.exceptions import ValidationError

_TYPE_WORDS = {
    "integer": "a whole number",
    "number": "a number",
    "string": "text",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "nothing",
}
_PATTERN_WORDS = {
    "^[A-Za-z0-9][A-Za-z0-9_.-]*$": "letters, digits, '_', '.' and '-', starting with a letter or digit",
    "^[A-Za-z_][A-Za-z0-9_]*$": "letters, digits and '_', not starting with a digit",
    "^https?://": "an http:// or https:// URL",
}


@functools.cache
def manifest_schema() -> dict[str, Any]:
    text = resources.files("r2v_pipeline").joinpath("schemas/manifest.schema.json").read_text("utf-8")
    return json.loads(text)


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    import jsonschema

    return jsonschema.Draft202012Validator(manifest_schema())


@functools.cache
def _verdict() -> Check:
    return compile_schema(manifest_schema())


def passes_fast(data: Any) -> bool:
    """True only when the document certainly satisfies the schema (see schema_verdict)."""
    try:
        return _verdict()(data)
    except Undecided:
        return False


def check_schema(file: YamlFile) -> list[Diagnostic]:
    """Every schema error of one manifest file, placed and worded for a person."""
    if not isinstance(file.data, dict):
        what = _TYPE_WORDS.get(_json_type(file.data), type(file.data).__name__)
        return [Diagnostic(file.at(()), f"a manifest is a mapping of keys (series, cast, shots, …), not {what}")]
    problems = list(_non_finite(file.data, (), file))
    if passes_fast(file.data):
        return problems
    # The finiteness message says it better than "nan must be above 0" (and NaN passes
    # every bound, so jsonschema alone would let it through).
    errors = (e for e in _validator().iter_errors(file.data) if not _is_non_finite(e.instance))
    return problems + [d for error in errors for d in _explain(error, file)]


def _non_finite(node: Any, path: PathKey, file: YamlFile) -> Iterator[Diagnostic]:
    """Every NaN or infinity in the document (YAML's .nan, .inf and -.inf, or a float
    literal too large for a float). No manifest number means one: money, seconds,
    prices and rates all turn into Decimal arithmetic, where they raise."""
    if _is_non_finite(node):
        yield Diagnostic(file.at(path), f"{field_name(path, file.data)} is {_infinite_words(node)}; numbers in a manifest must be finite")
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _non_finite(value, path + (key,), file)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _non_finite(value, path + (i,), file)


def _infinite_words(value: float) -> str:
    if math.isnan(value):
        return "NaN (not a number)"
    return "minus infinity" if value < 0 else "infinity (or a number too large to hold)"


def _is_non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def field_name(path: PathKey, data: Any) -> str:
    """A path as people read it: shots[opening].duration, cast.mia.image."""
    out = ""
    node = data
    for i, key in enumerate(path):
        if isinstance(key, int):
            shot_id = node[key].get("id") if isinstance(node, list) and isinstance(node[key], dict) else None
            label = shot_id if isinstance(shot_id, str) and path[:i] == ("shots",) else key
            out += f"[{label}]"
        else:
            out += ("." if out else "") + str(key)
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            node = None
    return out or "the manifest"


def _explain(error: ValidationError, file: YamlFile) -> Iterable[Diagnostic]:
    path = tuple(error.absolute_path)
    name = field_name(path, file.data)
    kind, expected, instance, schema = error.validator, error.validator_value, error.instance, error.schema
    if kind in ("additionalProperties", "unevaluatedProperties"):
        allowed = _allowed_keys(schema)
        for key in instance:
            if key not in allowed:
                where = "" if not path else f" in {name}"
                yield Diagnostic(file.key_at(path + (key,)), f'unknown key "{key}"{where}{did_you_mean(key, allowed)}')
        return
    if "propertyNames" in error.absolute_schema_path:
        key = instance  # the offending key itself, reported where it stands
        if kind == "not" and "x-message" in schema:
            yield Diagnostic(file.key_at(path + (key,)), f'{name} key "{key}" {schema["x-message"]}')
            return
        rule = _PATTERN_WORDS.get(expected, "a name") if kind == "pattern" else str(error.message)
        yield Diagnostic(file.key_at(path + (key,)), f'{name} key "{key}" must be {rule}')
        return
    position = file.at(path)
    if kind == "required":
        missing = [k for k in expected if k not in instance]
        yield Diagnostic(position, f"{name} needs {', '.join(repr(k) for k in missing)}")
    elif kind == "type":
        wanted = expected if isinstance(expected, str) else " or ".join(expected)
        wanted_words = " or ".join(_TYPE_WORDS.get(t, t) for t in wanted.split(" or "))
        yield Diagnostic(position, f"{name} must be {wanted_words}, not {_show(instance)}")
    elif kind == "enum":
        choices = [str(c) for c in expected]
        hint = did_you_mean(str(instance), choices) or _case_hint(instance, choices)
        yield Diagnostic(position, f"{name} {_show(instance)} is not one of {', '.join(choices)}{hint}")
    elif kind == "pattern":
        yield Diagnostic(position, f"{name} {_show(instance)} must be {_PATTERN_WORDS.get(expected, 'of the form ' + expected)}")
    elif kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        relation = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "above", "exclusiveMaximum": "below"}[kind]
        yield Diagnostic(position, f"{name} is {_show(instance)}; it must be {relation} {expected}")
    elif kind == "minLength":
        yield Diagnostic(position, f"{name} must not be empty")
    elif kind == "uniqueItems":
        yield Diagnostic(position, f"{name} lists an item twice")
    elif kind in ("minItems", "maxItems"):
        relation = "at least" if kind == "minItems" else "at most"
        yield Diagnostic(position, f"{name} must list {relation} {expected} items")
    elif kind == "not" and isinstance(schema, dict) and "x-message" in schema:
        yield Diagnostic(position, f"{name} {_show(instance)} {schema['x-message']}")
    elif kind in ("oneOf", "anyOf") and isinstance(schema, dict) and "x-message" in schema:
        yield Diagnostic(position, f"{name}: {schema['x-message']}")
    elif kind in ("oneOf", "anyOf") and error.context:
        context = [e for e in error.context if not _is_non_finite(e.instance)]  # said by _non_finite
        if not context:
            return
        # Explain by the branch of the value's own type: "takes: 0" is a count too small, not "not a list".
        same_type = [e for e in context if e.validator != "type"]
        from jsonschema.exceptions import best_match

        yield from _explain(best_match(same_type or context), file)
    else:
        yield Diagnostic(position, f"{name}: {error.message}")


def _allowed_keys(schema: dict[str, Any]) -> list[str]:
    """Property names a schema (and the schemas it refers to) declares."""
    keys = list(schema.get("properties", {}))
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = manifest_schema()
        for part in ref[2:].split("/"):
            node = node[part]
        keys += _allowed_keys(node)
    return keys


def _case_hint(value: Any, choices: list[str]) -> str:
    if isinstance(value, str):
        for choice in choices:
            if choice.lower() == value.lower():
                return f' (did you mean "{choice}"?)'
    return ""


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "empty"
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 60 else value[:57] + "...", ensure_ascii=False)
    if isinstance(value, (dict, list)):
        return _TYPE_WORDS[_json_type(value)]
    return str(value)
