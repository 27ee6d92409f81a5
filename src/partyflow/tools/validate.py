"""Checking a model's tool arguments against the tool's JSON schema, for the keywords models get wrong.

Models send missing fields, strings for numbers and values outside an enum. Catching those before the tool runs
gives the model an error it can fix in one more step ("argument 'x' must be an integer") instead of a traceback
from deep inside the tool. This covers the common subset (type, required, properties, additionalProperties,
enum, items); unknown keywords pass, as JSON Schema itself treats them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "array": (list, tuple), "object": (Mapping,), "null": (type(None),),
}


class ArgumentError(ValueError):
    """Arguments that do not fit the tool's schema; the message names the argument and what was expected."""


def check_arguments(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> None:
    """Raise `ArgumentError` when `arguments` do not fit the object schema `schema`."""
    if not isinstance(arguments, Mapping):
        raise ArgumentError(f"arguments must be a JSON object, got {type(arguments).__name__}")
    _check(schema, arguments, "arguments")


def check_json(schema: Mapping[str, Any], value: Any, where: str = "the value") -> None:
    """Raise `ArgumentError` when `value` does not fit `schema` (structured output is checked with this)."""
    _check(schema, value, where)


def _check(schema: Any, value: Any, where: str) -> None:
    if not isinstance(schema, Mapping):
        return
    declared = schema.get("type")
    if declared is not None:
        names = declared if isinstance(declared, list) else [declared]
        if not any(_is(value, name) for name in names):
            raise ArgumentError(f"{where} must be of type {' or '.join(names)}, got {_kind(value)}")
    if "enum" in schema and value not in schema["enum"]:
        raise ArgumentError(f"{where} must be one of {schema['enum']!r}, got {value!r}")
    if isinstance(value, Mapping):
        _check_object(schema, value, where)
    elif isinstance(value, list | tuple) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            _check(schema["items"], item, f"{where}[{index}]")


def _check_object(schema: Mapping[str, Any], value: Mapping[str, Any], where: str) -> None:
    properties = schema.get("properties") or {}
    missing = [name for name in schema.get("required", ()) if name not in value]
    if missing:
        raise ArgumentError(f"{where} miss required field(s) {', '.join(map(repr, missing))}")
    if schema.get("additionalProperties") is False:
        extra = [name for name in value if name not in properties]
        if extra:
            raise ArgumentError(f"{where} have unknown field(s) {', '.join(map(repr, extra))}; "
                                f"allowed: {', '.join(properties) or 'none'}")
    for name, item in value.items():
        if name in properties:
            _check(properties[name], item, f"argument {name!r}" if where == "arguments" else f"{where}.{name}")


def _is(value: Any, type_name: str) -> bool:
    if type_name in ("integer", "number") and isinstance(value, bool):
        return False
    if type_name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(type_name, (object,)))


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)
