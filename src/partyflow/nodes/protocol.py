"""What a node class may declare: ComfyUI's "V1" custom-node interface, read into typed definitions.

Packs write plain classes (INPUT_TYPES, RETURN_TYPES, FUNCTION, ...). Everything else in partyflow reads
them through `NodeDefinition`, so that the rules of the interface (defaults, combos, list flags, lazy and
raw-link inputs) live in one place and every malformed class is reported against its pack.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Section = Literal["required", "optional", "hidden"]

PRIMITIVE_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN"})
WIDGET_TYPES = PRIMITIVE_TYPES | {"COMBO"}
ANY_TYPE = "*"
HIDDEN_KINDS = frozenset({"PROMPT", "UNIQUE_ID", "EXTRA_PNGINFO", "DYNPROMPT", "AUTH_TOKEN_COMFY_ORG", "API_KEY_COMFY_ORG"})


class NodeDefinitionError(TypeError):
    """A node class that does not follow the interface; names the class so the pack author can fix it."""

    def __init__(self, class_type: str, message: str) -> None:
        self.class_type = class_type
        super().__init__(f"node class {class_type!r}: {message}")


@dataclass(frozen=True)
class InputSpec:
    """One declared input: its socket type, its options and the section it was declared in."""

    name: str
    type: str
    options: Mapping[str, Any]
    section: Section
    choices: tuple[Any, ...] | None = None

    @property
    def lazy(self) -> bool:
        return bool(self.options.get("lazy", False))

    @property
    def raw_link(self) -> bool:
        return bool(self.options.get("rawLink", False))

    @property
    def is_widget(self) -> bool:
        """Has an editor widget (and so a value in a UI workflow's widgets_values)."""
        return self.type in WIDGET_TYPES and not self.options.get("forceInput", False)

    def raw(self) -> list[Any]:
        """The `[TYPE, options]` pair as object_info shows it (combos as their list of choices)."""
        head: Any = list(self.choices) if self.choices is not None and self.type == "COMBO" and "options" not in self.options else self.type
        return [head, dict(self.options)] if self.options else [head]


@dataclass(frozen=True)
class NodeDefinition:
    """A node class read through the interface; built fresh when INPUT_TYPES may have changed."""

    class_type: str
    cls: type
    inputs: Mapping[str, InputSpec]
    hidden: Mapping[str, str]
    return_types: tuple[str, ...]
    return_names: tuple[str, ...]
    output_is_list: tuple[bool, ...]
    output_tooltips: tuple[str, ...]
    input_is_list: bool
    function: str
    output_node: bool
    category: str
    description: str
    deprecated: bool
    experimental: bool
    not_idempotent: bool
    display_name: str
    python_module: str
    is_async: bool
    concurrency_limit: int | None
    concurrency_group: str
    raw_input_types: Mapping[str, Any] = field(repr=False, default_factory=dict)

    # cached: the executor asks these for every node it runs
    @functools.cached_property
    def has_is_changed(self) -> bool:
        return callable(getattr(self.cls, "IS_CHANGED", None))

    @functools.cached_property
    def has_validate_inputs(self) -> bool:
        return callable(getattr(self.cls, "VALIDATE_INPUTS", None))

    @functools.cached_property
    def any_output_is_list(self) -> bool:
        return any(self.output_is_list)

    @functools.cached_property
    def has_lazy_inputs(self) -> bool:
        return bool(self.lazy_inputs)

    @functools.cached_property
    def lazy_inputs(self) -> frozenset[str]:
        return frozenset(name for name, spec in self.inputs.items() if spec.lazy)

    @functools.cached_property
    def raw_link_inputs(self) -> frozenset[str]:
        return frozenset(name for name, spec in self.inputs.items() if spec.raw_link)

    def required(self) -> list[InputSpec]:
        return [s for s in self.inputs.values() if s.section == "required"]

    def object_info(self) -> dict[str, Any]:
        """This class in the shape of ComfyUI's GET /object_info."""
        sections: dict[str, dict[str, Any]] = {"required": {}}
        order: dict[str, list[str]] = {"required": []}
        for spec in self.inputs.values():
            sections.setdefault(spec.section, {})[spec.name] = spec.raw()
            order.setdefault(spec.section, []).append(spec.name)
        if self.hidden:
            sections["hidden"] = dict(self.hidden)
        return {
            "input": sections,
            "input_order": order,
            "output": list(self.return_types),
            "output_is_list": list(self.output_is_list),
            "output_name": list(self.return_names),
            "output_tooltips": list(self.output_tooltips),
            "name": self.class_type,
            "display_name": self.display_name,
            "description": self.description,
            "python_module": self.python_module,
            "category": self.category,
            "output_node": self.output_node,
            "deprecated": self.deprecated,
            "experimental": self.experimental,
        }


def define(class_type: str, cls: type, *, display_name: str | None = None, python_module: str = "nodes") -> NodeDefinition:
    """Read `cls` through the node interface, or raise NodeDefinitionError saying what is wrong."""
    raw = _call_input_types(class_type, cls)
    inputs, hidden = _read_inputs(class_type, raw)
    return_types = _str_tuple(class_type, "RETURN_TYPES", getattr(cls, "RETURN_TYPES", ()))
    return_names = _str_tuple(class_type, "RETURN_NAMES", getattr(cls, "RETURN_NAMES", None) or return_types)
    if len(return_names) != len(return_types):
        raise NodeDefinitionError(class_type, f"RETURN_NAMES has {len(return_names)} names for {len(return_types)} RETURN_TYPES")
    output_is_list = tuple(bool(x) for x in (getattr(cls, "OUTPUT_IS_LIST", None) or (False,) * len(return_types)))
    if len(output_is_list) != len(return_types):
        raise NodeDefinitionError(class_type, f"OUTPUT_IS_LIST has {len(output_is_list)} entries for {len(return_types)} outputs")
    function_name = getattr(cls, "FUNCTION", None)
    if not isinstance(function_name, str) or not callable(getattr(cls, function_name, None)):
        raise NodeDefinitionError(class_type, f"FUNCTION must name a method of the class, got {function_name!r}")
    tooltips = tuple(str(t) for t in (getattr(cls, "OUTPUT_TOOLTIPS", None) or ()))
    limit = getattr(cls, "CONCURRENCY_LIMIT", None)
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise NodeDefinitionError(class_type, f"CONCURRENCY_LIMIT must be a positive int, got {limit!r}")
    return NodeDefinition(
        class_type=class_type,
        cls=cls,
        inputs=inputs,
        hidden=hidden,
        return_types=return_types,
        return_names=return_names,
        output_is_list=output_is_list,
        output_tooltips=tooltips,
        input_is_list=bool(getattr(cls, "INPUT_IS_LIST", False)),
        function=function_name,
        output_node=bool(getattr(cls, "OUTPUT_NODE", False)),
        category=str(getattr(cls, "CATEGORY", "sd")),
        description=str(getattr(cls, "DESCRIPTION", "") or ""),
        deprecated=bool(getattr(cls, "DEPRECATED", False)),
        experimental=bool(getattr(cls, "EXPERIMENTAL", False)),
        not_idempotent=bool(getattr(cls, "NOT_IDEMPOTENT", False)),
        display_name=display_name or class_type,
        python_module=python_module,
        is_async=inspect.iscoroutinefunction(getattr(cls, function_name)),
        concurrency_limit=limit,
        concurrency_group=str(getattr(cls, "CONCURRENCY_GROUP", class_type)),
        raw_input_types=raw,
    )


def _call_input_types(class_type: str, cls: type) -> Mapping[str, Any]:
    input_types = getattr(cls, "INPUT_TYPES", None)
    if not callable(input_types):
        raise NodeDefinitionError(class_type, "INPUT_TYPES must be a classmethod returning a dict")
    try:
        raw = input_types()
    except Exception as exc:  # a pack's bug: report it against the class
        raise NodeDefinitionError(class_type, f"INPUT_TYPES() raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise NodeDefinitionError(class_type, f"INPUT_TYPES() must return a dict, got {type(raw).__name__}")
    return raw


def _read_inputs(class_type: str, raw: Mapping[str, Any]) -> tuple[dict[str, InputSpec], dict[str, str]]:
    inputs: dict[str, InputSpec] = {}
    hidden: dict[str, str] = {}
    for section in ("required", "optional"):
        entries = raw.get(section) or {}
        if not isinstance(entries, Mapping):
            raise NodeDefinitionError(class_type, f"INPUT_TYPES()[{section!r}] must be a dict")
        for name, entry in entries.items():
            inputs[str(name)] = _read_input(class_type, str(name), entry, section)
    for name, entry in (raw.get("hidden") or {}).items():
        kind = entry[0] if isinstance(entry, (tuple, list)) and entry else entry
        hidden[str(name)] = str(kind)
    return inputs, hidden


def _read_input(class_type: str, name: str, entry: Any, section: Section) -> InputSpec:
    if isinstance(entry, str):
        entry = (entry,)
    if not isinstance(entry, (tuple, list)) or not entry:
        raise NodeDefinitionError(class_type, f"input {name!r} must be (TYPE, options), got {entry!r}")
    head = entry[0]
    options = entry[1] if len(entry) > 1 and isinstance(entry[1], Mapping) else {}
    if isinstance(head, (list, tuple)):
        return InputSpec(name, "COMBO", options, section, tuple(head))
    if not isinstance(head, str):
        raise NodeDefinitionError(class_type, f"input {name!r} has type {head!r}; a type is a string or a list of choices")
    if head == "COMBO":
        choices = options.get("options")
        return InputSpec(name, "COMBO", options, section, tuple(choices) if isinstance(choices, Sequence) else None)
    return InputSpec(name, head, options, section)


def _str_tuple(class_type: str, attribute: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise NodeDefinitionError(class_type, f"{attribute} must be a tuple of strings, got {value!r}")
    result = []
    for item in value:
        result.append(item if isinstance(item, str) else "COMBO" if isinstance(item, (list, tuple)) else str(item))
    return tuple(result)


def types_match(received: str, expected: str) -> bool:
    """ComfyUI's socket compatibility: equal, either side `*`, or overlapping comma-separated unions."""
    if received == expected or ANY_TYPE in (received, expected):
        return True
    received_set = {t.strip() for t in received.split(",")}
    expected_set = {t.strip() for t in expected.split(",")}
    return bool(received_set & expected_set) or ANY_TYPE in received_set | expected_set
