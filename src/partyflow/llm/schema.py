"""A structural check that a value is a JSON Schema document (draft 2020-12 and the subset OpenAI accepts).

Tool parameters and structured-output schemas come from users and node packs; a typo there otherwise turns into
an opaque 400 from the provider, or worse, a model that silently ignores the schema. We check the keywords whose
shape we know and leave unknown keywords alone, as JSON Schema itself does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

TYPE_NAMES = frozenset({"null", "boolean", "object", "array", "number", "integer", "string"})

_SCHEMA_KEYWORDS = ("not", "additionalProperties", "items", "contains", "propertyNames", "if", "then", "else",
                    "unevaluatedItems", "unevaluatedProperties", "additionalItems")
_SCHEMA_LIST_KEYWORDS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAP_KEYWORDS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_COUNT_KEYWORDS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties",
                   "minContains", "maxContains")
_NUMBER_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_STRING_KEYWORDS = ("title", "description", "$ref", "$id", "$schema", "$anchor", "format", "$comment")


class SchemaError(ValueError):
    """A value that is not a JSON Schema; `path` is a JSON pointer to the offending place."""

    def __init__(self, message: str, path: str) -> None:
        self.path = path or "/"
        super().__init__(f"not a JSON schema at {self.path}: {message}")


def check_json_schema(schema: object, *, require_object: bool = False) -> None:
    """Raise `SchemaError` unless `schema` is a JSON Schema document.

    `require_object` demands a top-level `{"type": "object", ...}`, which is what function-calling APIs take as
    tool parameters.
    """
    _check(schema, "")
    if require_object:  # a bare `true`/`false` schema is not an object schema either
        if not isinstance(schema, Mapping) or schema.get("type") != "object":
            raise SchemaError(
                'tool parameters must be an object schema: {"type": "object", "properties": {...}}', "/type")


def _check(schema: object, path: str) -> None:
    if isinstance(schema, bool):
        return
    if not isinstance(schema, Mapping):
        raise SchemaError(f"expected an object (or true/false), got {_kind(schema)}", path)
    for key in schema:
        if not isinstance(key, str):
            raise SchemaError(f"keyword {key!r} is not a string", path)
    _check_type(schema, path)
    for key in _SCHEMA_KEYWORDS:
        if key in schema:
            value = schema[key]
            if key == "items" and isinstance(value, list):  # draft-04..2019 tuple form
                _check_schema_list(value, f"{path}/{key}", allow_empty=True)
            else:
                _check(value, f"{path}/{key}")
    for key in _SCHEMA_LIST_KEYWORDS:
        if key in schema:
            _check_schema_list(schema[key], f"{path}/{key}", allow_empty=False)
    for key in _SCHEMA_MAP_KEYWORDS:
        if key in schema:
            _check_schema_map(schema[key], f"{path}/{key}")
    _check_scalars(schema, path)


def _check_type(schema: Mapping[str, Any], path: str) -> None:
    if "type" not in schema:
        return
    declared = schema["type"]
    names = declared if isinstance(declared, list) else [declared]
    if not names:
        raise SchemaError("'type' is an empty list", f"{path}/type")
    for name in names:
        if name not in TYPE_NAMES:
            raise SchemaError(f"'type' must be one of {', '.join(sorted(TYPE_NAMES))}; got {name!r}",
                              f"{path}/type")


def _check_schema_list(value: object, path: str, *, allow_empty: bool) -> None:
    if not isinstance(value, list) or (not value and not allow_empty):
        raise SchemaError(f"expected a non-empty list of schemas, got {_kind(value)}", path)
    for index, item in enumerate(value):
        _check(item, f"{path}/{index}")


def _check_schema_map(value: object, path: str) -> None:
    if not isinstance(value, Mapping):
        raise SchemaError(f"expected an object mapping names to schemas, got {_kind(value)}", path)
    for name, item in value.items():
        _check(item, f"{path}/{_escape(str(name))}")


def _check_scalars(schema: Mapping[str, Any], path: str) -> None:
    if "required" in schema:
        required = schema["required"]
        if not isinstance(required, list) or not all(isinstance(item, str) for item in required):
            raise SchemaError("'required' must be a list of property names", f"{path}/required")
    if "enum" in schema and not isinstance(schema["enum"], list):
        raise SchemaError("'enum' must be a list of values", f"{path}/enum")
    for key in _COUNT_KEYWORDS:
        value = schema.get(key)
        if key in schema and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise SchemaError(f"'{key}' must be a non-negative integer, got {value!r}", f"{path}/{key}")
    for key in _NUMBER_KEYWORDS:
        value = schema.get(key)
        if key in schema and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise SchemaError(f"'{key}' must be a number, got {value!r}", f"{path}/{key}")
    for key in _STRING_KEYWORDS:
        if key in schema and not isinstance(schema[key], str):
            raise SchemaError(f"'{key}' must be a string, got {_kind(schema[key])}", f"{path}/{key}")
    if "pattern" in schema:
        _check_pattern(schema["pattern"], f"{path}/pattern")


def _check_pattern(pattern: object, path: str) -> None:
    if not isinstance(pattern, str):
        raise SchemaError(f"'pattern' must be a string, got {_kind(pattern)}", path)
    try:
        re.compile(pattern)
    except re.error as exc:
        raise SchemaError(f"'pattern' is not a regular expression ({exc})", path) from None


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__)


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")
