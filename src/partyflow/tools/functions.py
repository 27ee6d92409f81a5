"""Tools from Python functions: the schema comes from the type hints, the descriptions from the docstring.

Pydantic builds the schema and validates the model's arguments with the same model, so what the model is
promised and what the function receives cannot drift apart. Docstrings follow the Google style: the text before
`Args:` describes the tool, `name: text` lines under `Args:` describe the parameters.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from partyflow.tools.base import Tool, ToolFunction
from partyflow.tools.validate import ArgumentError

_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Returns|Raises|Yields|Examples?|Notes?):\s*$")
_PARAM = re.compile(r"^\s*(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


@overload
def function_tool(fn: ToolFunction, *, name: str | None = None, description: str | None = None,
                  timeout: float | None = None) -> Tool: ...


@overload
def function_tool(fn: None = None, *, name: str | None = None, description: str | None = None,
                  timeout: float | None = None) -> Callable[[ToolFunction], Tool]: ...


def function_tool(fn: ToolFunction | None = None, *, name: str | None = None, description: str | None = None,
                  timeout: float | None = None) -> Tool | Callable[[ToolFunction], Tool]:
    """A `Tool` from a (sync or async) function; usable as `@function_tool` or `@function_tool(name=...)`.

    Every parameter needs a type hint (the model must know what to send); `*args`/`**kwargs` are refused.
    """
    def build(target: ToolFunction) -> Tool:
        summary, params = parse_docstring(inspect.getdoc(target) or "")
        model = arguments_model(target, params)
        schema = _clean(model.model_json_schema())
        return Tool(name=name or target.__name__, description=description or summary, parameters=schema,
                    fn=target, parse=_parser(model), timeout=timeout)

    return build(fn) if fn is not None else build


def arguments_model(fn: Callable[..., Any], descriptions: dict[str, str] | None = None) -> type[BaseModel]:
    """A pydantic model with one field per parameter of `fn`, defaults and descriptions included."""
    descriptions = descriptions or {}
    hints = get_type_hints(fn)
    fields: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool function {fn.__name__!r} cannot take *{param.name}: list its parameters")
        if param.name not in hints:
            raise TypeError(f"parameter {param.name!r} of tool function {fn.__name__!r} needs a type hint")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints[param.name], Field(default, description=descriptions.get(param.name)))
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=False)
    return create_model(f"{fn.__name__}_arguments", __config__=config, **fields)


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The summary (text before the first section) and the `Args:` descriptions of a Google-style docstring."""
    summary: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in doc.splitlines():
        header = _SECTION.match(line)
        if header:
            section, current = header.group(1), None
            continue
        if section is None:
            summary.append(line)
        elif section in ("Args", "Arguments", "Parameters"):
            match = _PARAM.match(line)
            if match and (not line.startswith((" ", "\t")) or current is None or _indent(line) <= 4):
                current = match.group(1).lstrip("*")
                params[current] = match.group(2).strip()
            elif current and line.strip():
                params[current] = f"{params[current]} {line.strip()}".strip()
    return " ".join(" ".join(summary).split()), params


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _parser(model: type[BaseModel]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def parse(arguments: dict[str, Any]) -> dict[str, Any]:
        try:
            validated = model.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False))
            raise ArgumentError(f"invalid arguments ({problems})") from None
        return {name: getattr(validated, name) for name in type(validated).model_fields}
    return parse


def _clean(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's generated titles: they cost tokens and tell the model nothing the names do not."""
    def walk(node: Any, in_properties: bool = False) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, k in ("properties", "$defs")) for k, v in node.items()
                    if in_properties or k != "title"}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node
    cleaned = walk(schema)
    cleaned.setdefault("properties", {})
    return cleaned
