"""A fast yes to "does this document satisfy the manifest schema?", or no answer.

jsonschema walks every shot of an episode through ``$ref`` lookups and
validator objects: a third of planning a large episode, and a tenth of a
second of importing before a one-file ``r2v validate`` can start. Almost every
manifest is valid, so this module compiles the schema once into plain Python
checks and answers for the keywords the manifest schema uses, with JSON
Schema 2020-12's meaning as jsonschema implements it. Where a value is one it
does not judge exactly (a type outside YAML's, a non-finite number, a list of
mixed items for ``uniqueItems``), it raises ``Undecided``. Only a document it
calls valid skips jsonschema; any other goes to jsonschema, which words every
message, so the messages never change. tests/test_schema_verdict.py holds the
two to the same verdict on generated documents.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

Check = Callable[[Any], bool]


class Undecided(Exception):
    """The value is outside what the compiled checks judge exactly."""


# Keywords that say nothing about validity.
_ANNOTATIONS = {"$schema", "$id", "$defs", "$comment", "title", "description", "x-message", "examples", "default"}

# JSON types of YAML's plain data, by exact Python type (a subclass is undecided).
_JSON_TYPES: dict[type, str] = {
    dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null",
}  # fmt: skip


def json_type(value: Any) -> str:
    """The JSON type of a value; "integer" for whole floats, as jsonschema counts them."""
    kind = _JSON_TYPES.get(type(value))
    if kind is None:
        raise Undecided(type(value).__name__)
    if kind == "number":
        if not math.isfinite(value):
            raise Undecided("non-finite number")  # check_schema words these itself
        if value.is_integer():
            return "integer"
    return kind


def _has_type(value: Any, wanted: str) -> bool:
    kind = json_type(value)
    return kind == wanted or (wanted == "number" and kind == "integer")


def compile_schema(root: dict[str, Any]) -> Check:
    """The check of ``root``: True when valid, False when not; raises Undecided.
    NotImplementedError when the schema uses a keyword this module does not know."""
    refs: dict[str, Check] = {}

    def resolve(ref: str) -> dict[str, Any]:
        if not ref.startswith("#/"):
            raise NotImplementedError(f"$ref {ref}")
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def by_ref(ref: str) -> Check:
        if ref not in refs:
            refs[ref] = lambda value: refs[ref](value)  # a recursive schema finds itself
            refs[ref] = build(resolve(ref))
        return refs[ref]

    def evaluated_keys(schema: dict[str, Any]) -> set[str]:
        """The keys an ``unevaluatedProperties: false`` beside ``schema`` lets through,
        known before any document is seen: only ``properties``, here and behind ``$ref``."""
        dynamic = {"additionalProperties", "patternProperties", "allOf", "anyOf", "oneOf", "if", "dependentSchemas"}
        if dynamic & schema.keys():
            raise NotImplementedError("unevaluatedProperties beside keywords that evaluate per document")
        keys = set(schema.get("properties", {}))
        if "$ref" in schema:
            keys |= evaluated_keys(resolve(schema["$ref"]))
        return keys

    def build(schema: Any) -> Check:
        if schema is True:
            return lambda value: True
        if schema is False:
            return lambda value: False
        checks: list[Check] = []
        for keyword, argument in schema.items():
            if keyword in _ANNOTATIONS:
                continue
            maker = _KEYWORDS.get(keyword)
            if maker is None:
                raise NotImplementedError(f"keyword {keyword}")
            checks.append(maker(argument, schema, build, by_ref, evaluated_keys))
        if len(checks) == 1:
            return checks[0]
        return lambda value: all(check(value) for check in checks)

    return build(root)


# Each maker: (argument, schema, build, by_ref, evaluated_keys) -> Check


def _type(wanted: str | list[str], *_: Any) -> Check:
    names = [wanted] if isinstance(wanted, str) else list(wanted)
    return lambda value: any(_has_type(value, name) for name in names)


def _enum(choices: list[Any], *_: Any) -> Check:
    if not all(isinstance(c, str) for c in choices):
        raise NotImplementedError("enum of other than text")
    allowed = frozenset(choices)
    return lambda value: isinstance(value, str) and json_type(value) == "string" and value in allowed


def _pattern(regex: str, *_: Any) -> Check:
    search = re.compile(regex).search
    return lambda value: not isinstance(value, str) or search(value) is not None


def _min_length(bound: int, *_: Any) -> Check:
    return lambda value: not isinstance(value, str) or len(value) >= bound


def _max_length(bound: int, *_: Any) -> Check:
    return lambda value: not isinstance(value, str) or len(value) <= bound


def _bound(compare: Callable[[Any, Any], bool]) -> Callable[..., Check]:
    def make(limit: int | float, *_: Any) -> Check:
        return lambda value: not _has_type(value, "number") or compare(value, limit)

    return make


def _required(names: list[str], *_: Any) -> Check:
    return lambda value: not isinstance(value, dict) or all(name in value for name in names)


def _object_keys(value: dict[Any, Any]) -> None:
    for key in value:
        if type(key) is not str:
            raise Undecided("a key that is not text")


def _properties(properties: dict[str, Any], schema: Any, build: Any, *_: Any) -> Check:
    checks = {name: build(sub) for name, sub in properties.items()}

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        _object_keys(value)
        return all(checks[key](item) for key, item in value.items() if key in checks)

    return check


def _additional(extra: Any, schema: dict[str, Any], build: Any, *_: Any) -> Check:
    if "patternProperties" in schema:
        raise NotImplementedError("patternProperties")
    declared = frozenset(schema.get("properties", {}))
    sub = build(extra)

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        _object_keys(value)
        return all(sub(item) for key, item in value.items() if key not in declared)

    return check


def _property_names(names: Any, schema: Any, build: Any, *_: Any) -> Check:
    sub = build(names)
    return lambda value: not isinstance(value, dict) or all(sub(key) for key in value)


def _unevaluated(extra: Any, schema: dict[str, Any], build: Any, by_ref: Any, evaluated_keys: Any) -> Check:
    if extra is not False:
        raise NotImplementedError("unevaluatedProperties other than false")
    allowed = frozenset(evaluated_keys(schema))

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        _object_keys(value)
        return allowed.issuperset(value)

    return check


def _items(items: Any, schema: dict[str, Any], build: Any, *_: Any) -> Check:
    if "prefixItems" in schema:
        raise NotImplementedError("prefixItems")
    sub = build(items)
    return lambda value: not isinstance(value, list) or all(sub(item) for item in value)


def _min_items(bound: int, *_: Any) -> Check:
    return lambda value: not isinstance(value, list) or len(value) >= bound


def _max_items(bound: int, *_: Any) -> Check:
    return lambda value: not isinstance(value, list) or len(value) <= bound


def _unique(unique: bool, *_: Any) -> Check:
    def check(value: Any) -> bool:
        if not unique or not isinstance(value, list) or len(value) < 2:
            return True
        kinds = {json_type(item) for item in value}
        if kinds not in ({"string"}, {"integer"}) or any(type(item) is not type(value[0]) for item in value):
            raise Undecided("uniqueItems over items Python and JSON compare differently")
        return len(set(value)) == len(value)

    return check


def _all_of(subs: list[Any], schema: Any, build: Any, *_: Any) -> Check:
    checks = [build(sub) for sub in subs]
    return lambda value: all(check(value) for check in checks)


def _any_of(subs: list[Any], schema: Any, build: Any, *_: Any) -> Check:
    checks = [build(sub) for sub in subs]
    return lambda value: any(check(value) for check in checks)


def _one_of(subs: list[Any], schema: Any, build: Any, *_: Any) -> Check:
    checks = [build(sub) for sub in subs]
    return lambda value: sum(1 for check in checks if check(value)) == 1


def _not(sub: Any, schema: Any, build: Any, *_: Any) -> Check:
    check = build(sub)
    return lambda value: not check(value)


def _ref(ref: str, schema: Any, build: Any, by_ref: Any, *_: Any) -> Check:
    return by_ref(ref)


_KEYWORDS: dict[str, Callable[..., Check]] = {
    "type": _type,
    "enum": _enum,
    "pattern": _pattern,
    "minLength": _min_length,
    "maxLength": _max_length,
    "minimum": _bound(lambda v, limit: v >= limit),
    "maximum": _bound(lambda v, limit: v <= limit),
    "exclusiveMinimum": _bound(lambda v, limit: v > limit),
    "exclusiveMaximum": _bound(lambda v, limit: v < limit),
    "required": _required,
    "properties": _properties,
    "additionalProperties": _additional,
    "propertyNames": _property_names,
    "unevaluatedProperties": _unevaluated,
    "items": _items,
    "minItems": _min_items,
    "maxItems": _max_items,
    "uniqueItems": _unique,
    "allOf": _all_of,
    "anyOf": _any_of,
    "oneOf": _one_of,
    "not": _not,
    "$ref": _ref,
}
