"""Validation of API-format prompts: every problem in one pass, in ComfyUI's error JSON.

Like ComfyUI, only what the output nodes need is checked, so a dangling half-built node in the editor
does not block a run. Unlike ComfyUI, validation never stops at the first problem and also reports
cycles, so the user fixes everything in one round trip.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from partyflow.graph.errors import NodeIssue
from partyflow.graph.explain import problem_lines
from partyflow.graph.limits import MAX_JSON_DEPTH, json_depth_exceeds
from partyflow.nodes.protocol import InputSpec, NodeDefinition, NodeDefinitionError, types_match
from partyflow.nodes.registry import NodeRegistry
from partyflow.nodes.values import is_link

DEFAULT_MAX_STRING = 10_000_000

logger = logging.getLogger(__name__)


@dataclass
class ValidationResult:
    """What validation found; `prompt` holds the checked prompt with constants converted to their types."""

    prompt: dict[str, dict[str, Any]]
    outputs: list[str]
    error: NodeIssue | None = None
    node_errors: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.node_errors

    @property
    def runnable_outputs(self) -> list[str]:
        """Outputs whose whole ancestry is valid (ComfyUI runs these even if others failed)."""
        if self.error is not None and not self.node_errors:
            return []
        failed = {out for entry in self.node_errors.values() for out in entry["dependent_outputs"]}
        return [o for o in self.outputs if o not in failed]

    def to_json(self) -> dict[str, Any]:
        return {"error": self.error.to_json() if self.error else None, "node_errors": self.node_errors}

    def summary(self) -> list[str]:
        """One line per problem, for a terminal (see graph.explain)."""
        return problem_lines(self.error.to_json() if self.error else None, self.node_errors)


def validate_prompt(prompt: Any, registry: NodeRegistry, *, outputs: Iterable[str] | None = None,
                    max_string_length: int = DEFAULT_MAX_STRING) -> ValidationResult:
    """Check `prompt` against the registry's node classes; never raises for bad input."""
    if not isinstance(prompt, Mapping):
        return _prompt_error("invalid_prompt", "Prompt must be a JSON object mapping node ids to nodes",
                             f"got {type(prompt).__name__}")
    return _Validator(prompt, registry, max_string_length).run(outputs)


@dataclass
class _Memo:
    snapshot: dict[Any, Any]
    outputs: tuple[str, ...] | None
    classes: dict[str, tuple[type, Mapping[str, Any]]]
    result: ValidationResult


class PromptValidator:
    """Validation for one registry that remembers the last valid prompt.

    Re-queuing an unchanged workflow is common (and what LangGraph amortises by compiling a graph once), so an
    identical prompt whose node classes declare the same INPUT_TYPES as before gets the same result without
    another pass. Classes with VALIDATE_INPUTS are always re-checked: their verdict may depend on the world.
    """

    def __init__(self, registry: NodeRegistry, *, max_string_length: int = DEFAULT_MAX_STRING) -> None:
        self.registry = registry
        self.max_string_length = max_string_length
        self._memo: _Memo | None = None

    def validate(self, prompt: Any, *, outputs: Iterable[str] | None = None) -> ValidationResult:
        wanted = tuple(str(o) for o in outputs) if outputs is not None else None
        memo = self._memo
        if memo is not None and memo.outputs == wanted and prompt == memo.snapshot and self._unchanged(memo.classes):
            return memo.result
        result = validate_prompt(prompt, self.registry, outputs=wanted, max_string_length=self.max_string_length)
        self._memo = self._remember(prompt, wanted, result)
        return result

    def forget(self) -> None:
        self._memo = None

    def _remember(self, prompt: Any, wanted: tuple[str, ...] | None, result: ValidationResult) -> _Memo | None:
        if not result.ok or not isinstance(prompt, dict):
            return None
        classes: dict[str, tuple[type, Mapping[str, Any]]] = {}
        for class_type in {node["class_type"] for node in result.prompt.values()}:
            definition = self.registry.definition(class_type)
            if definition.has_validate_inputs:
                return None
            classes[class_type] = (definition.cls, definition.raw_input_types)
        return _Memo(_snapshot(prompt), wanted, classes, result)

    def _unchanged(self, classes: dict[str, tuple[type, Mapping[str, Any]]]) -> bool:
        for class_type, (cls, raw) in classes.items():
            if class_type not in self.registry or self.registry.entry(class_type).cls is not cls:
                return False
            try:  # INPUT_TYPES alone: reading the whole class again would cost more than it tells
                if cls.INPUT_TYPES() != raw:
                    return False
            except Exception:
                return False
        return True


def _snapshot(value: Any) -> Any:
    """A copy of a JSON-like value deep enough that later edits by the caller cannot reach it."""
    if type(value) is dict:
        return {k: _snapshot(v) for k, v in value.items()}
    if type(value) is list:
        return [_snapshot(v) for v in value]
    return value


def _prompt_error(kind: str, message: str, details: str = "", **extra: Any) -> ValidationResult:
    return ValidationResult(prompt={}, outputs=[], error=NodeIssue(kind, message, details, extra))


class _Validator:
    def __init__(self, prompt: Mapping[Any, Any], registry: NodeRegistry, max_string_length: int) -> None:
        self.raw = prompt
        self.registry = registry
        self.max_string_length = max_string_length
        self.prompt: dict[str, dict[str, Any]] = {}
        self.definitions: dict[str, NodeDefinition] = {}
        self.issues: dict[str, list[NodeIssue]] = {}

    def run(self, requested: Iterable[str] | None) -> ValidationResult:
        self._read_nodes()
        outputs = self._outputs(requested)
        if isinstance(outputs, ValidationResult):
            return outputs
        order = self._ancestry(outputs)
        for node_id in order:
            self._check_node(node_id)
        self._check_cycles(order)
        return self._result(outputs)

    def _read_nodes(self) -> None:
        for key, node in self.raw.items():
            node_id = str(key)
            if not _is_mapping(node):
                self._add(node_id, NodeIssue("invalid_node", "Node must be an object with class_type and inputs",
                                             f"got {type(node).__name__}"))
                self.prompt[node_id] = {"class_type": "", "inputs": {}}
                continue
            class_type = node.get("class_type")
            inputs = node.get("inputs", {})
            if _is_mapping(inputs) and json_depth_exceeds(inputs, MAX_JSON_DEPTH - 1):
                # copying or checking it would end in a RecursionError: refuse it as the user's mistake it is
                self._add(node_id, NodeIssue("value_too_deep", "Input value nests too deeply",
                                             f"input values may nest at most {MAX_JSON_DEPTH - 1} levels deep"))
                self.prompt[node_id] = {"class_type": class_type if isinstance(class_type, str) else "",
                                        "inputs": {}}
                continue
            entry: dict[str, Any] = {"class_type": class_type if isinstance(class_type, str) else "",
                                     "inputs": _snapshot(dict(inputs)) if _is_mapping(inputs) else {}}
            if _is_mapping(node.get("_meta")):
                entry["_meta"] = dict(node["_meta"])
            self.prompt[node_id] = entry
            if not isinstance(class_type, str) or not class_type:
                self._add(node_id, NodeIssue("invalid_node", "Node has no class_type",
                                             "every node needs a string class_type naming its node class"))
            elif not _is_mapping(inputs):
                self._add(node_id, NodeIssue("invalid_node", "Node inputs must be an object",
                                             f"got {type(inputs).__name__}"))
            elif class_type not in self.registry:
                self._add(node_id, NodeIssue(
                    "missing_node_type", f"Node type {class_type!r} not found",
                    "the node pack that provides it is not installed or failed to import",
                    {"node_id": node_id, "class_type": class_type, "node_title": _title(node, class_type)}))
            else:
                self._define(node_id, class_type)

    def _define(self, node_id: str, class_type: str) -> None:
        try:
            self.definitions[class_type] = self.definitions.get(class_type) or self.registry.definition(class_type)
        except NodeDefinitionError as exc:
            self._add(node_id, NodeIssue("invalid_node_class", "Node class is broken", str(exc)))

    def _outputs(self, requested: Iterable[str] | None) -> list[str] | ValidationResult:
        if requested is not None:
            wanted = [str(o) for o in requested]
            missing = [o for o in wanted if o not in self.prompt]
            if missing:
                return _prompt_error("invalid_prompt", "Requested outputs are not in the prompt", ", ".join(missing))
            return wanted
        outputs = [node_id for node_id, node in self.prompt.items()
                   if (d := self.definitions.get(node["class_type"])) is not None and d.output_node]
        if not outputs:
            if self.issues:
                return self._result([])
            return _prompt_error("prompt_no_outputs", "Prompt has no outputs",
                                 "add an output node (for example Show Text) so the prompt has a result")
        return outputs

    def _ancestry(self, outputs: list[str]) -> list[str]:
        """Every node the outputs need, each once (iteratively: chains may be thousands long)."""
        seen: dict[str, None] = {}
        stack = list(reversed(outputs))
        while stack:
            node_id = stack.pop()
            if node_id in seen or node_id not in self.prompt:
                continue
            seen[node_id] = None
            for value in self.prompt[node_id]["inputs"].values():
                if is_link(value) and value[0] in self.prompt:
                    stack.append(value[0])
        return list(seen)

    def _check_node(self, node_id: str) -> None:
        node = self.prompt[node_id]
        definition = self.definitions.get(node["class_type"])
        if definition is None:
            return
        inputs = node["inputs"]
        custom = _custom_validated_inputs(definition)
        constants: dict[str, Any] = {}
        linked_types: dict[str, str] = {}
        for spec in definition.inputs.values():
            if spec.name not in inputs:
                if spec.section == "required":
                    issue = _input_issue("required_input_missing", "Required input is missing", spec, spec.name)
                    misspelt = _misspelling_of(spec.name, inputs, definition)
                    if misspelt is not None:
                        issue.extra_info["unknown_input"] = misspelt
                    self._add(node_id, issue)
                continue
            value = inputs[spec.name]
            if isinstance(value, list):
                received = self._check_link(node_id, spec, value)
                if received is not None:
                    linked_types[spec.name] = received
                continue
            wrapped = isinstance(value, dict) and len(value) == 1 and "__value__" in value
            if wrapped:
                value = value["__value__"]
            converted = self._check_constant(node_id, spec, value, skip_range=spec.name in custom)
            if converted is not _INVALID:
                inputs[spec.name] = {"__value__": converted} if wrapped else converted
                constants[spec.name] = converted
        for name, value in inputs.items():
            if name not in definition.inputs and is_link(value) and not _declares_anything(definition, name):
                # the executor would never hand it to the node: refuse now rather than run the linked branch
                self._add(node_id, NodeIssue(
                    "undeclared_input", "Link on an input the node does not declare",
                    f"{name}: {node['class_type']} has no input named {name!r}; "
                    f"its inputs are {', '.join(definition.inputs) or 'none'}",
                    {"input_name": name, "received_value": value}))
        if definition.has_validate_inputs:
            self._custom_validation(node_id, definition, constants, linked_types)

    def _check_link(self, node_id: str, spec: InputSpec, value: list[Any]) -> str | None:
        if not is_link(value):
            self._add(node_id, _input_issue("bad_linked_input", "Bad linked input, must be a length-2 list of [string, int]",
                                            spec, f"{spec.name}: got {value!r}", value))
            return None
        origin_id, index = value
        origin = self.prompt.get(origin_id)
        if origin is None:
            self._add(node_id, _input_issue("bad_linked_input", "Linked node does not exist", spec,
                                            f"{spec.name}: node {origin_id!r} is not in the prompt", value))
            return None
        origin_def = self.definitions.get(origin["class_type"])
        if origin_def is None:
            return None  # the origin's own error already explains it
        if not 0 <= index < len(origin_def.return_types):
            self._add(node_id, _input_issue(
                "bad_linked_input", "Linked output does not exist", spec,
                f"{spec.name}: node {origin_id} ({origin['class_type']}) has {len(origin_def.return_types)} "
                f"output(s), the link asks for output {index}", value))
            return None
        received = origin_def.return_types[index]
        if not types_match(received, spec.type):
            self._add(node_id, _input_issue(
                "return_type_mismatch", "Return type mismatch between linked nodes", spec,
                f"{spec.name}, received_type({received}) mismatch input_type({spec.type})", value))
        return received

    def _check_constant(self, node_id: str, spec: InputSpec, value: Any, *, skip_range: bool) -> Any:
        converted = _convert(spec.type, value)
        if converted is _INVALID and spec.type == "BOOLEAN" and isinstance(value, str):
            # ComfyUI converts with bool(), so workflows saved with old combo values ('enable', 'disable') run
            # there; do the same, but say so, since any non-empty text (even 'disable') becomes True
            converted = bool(value)
            logger.warning("node %s input %r: %r is not a boolean; treated as %s, as ComfyUI does", node_id,
                           spec.name, value, converted)
        if converted is _INVALID:
            self._add(node_id, _input_issue("invalid_input_type", f"Failed to convert an input value to a {spec.type} value",
                                            spec, f"{spec.name}, {value!r}", value))
            return _INVALID
        if isinstance(converted, str) and len(converted) > self.max_string_length:
            self._add(node_id, _input_issue("value_too_long", "Value is too long", spec,
                                            f"{spec.name}: {len(converted)} characters, the limit is "
                                            f"{self.max_string_length} (raise max_string_length in config.toml)",
                                            converted[:80]))
            return _INVALID
        if skip_range:
            return converted
        return self._check_range(node_id, spec, converted)

    def _check_range(self, node_id: str, spec: InputSpec, value: Any) -> Any:
        if spec.type in ("INT", "FLOAT"):
            low, high = spec.options.get("min"), spec.options.get("max")
            if isinstance(low, (int, float)) and value < low:
                self._add(node_id, _input_issue("value_smaller_than_min", f"Value {value} smaller than min of {low}",
                                                spec, f"{spec.name}", value))
                return _INVALID
            if isinstance(high, (int, float)) and value > high:
                self._add(node_id, _input_issue("value_bigger_than_max", f"Value {value} bigger than max of {high}",
                                                spec, f"{spec.name}", value))
                return _INVALID
        if spec.type == "COMBO" and spec.choices is not None and value not in spec.choices:
            shown = list(spec.choices[:20]) + (["..."] if len(spec.choices) > 20 else [])
            self._add(node_id, _input_issue("value_not_in_list", "Value not in list", spec,
                                            f"{spec.name}: {value!r} not in {shown}", value))
            return _INVALID
        return value

    def _custom_validation(self, node_id: str, definition: NodeDefinition, constants: dict[str, Any],
                           linked_types: dict[str, str]) -> None:
        method = definition.cls.VALIDATE_INPUTS
        params = _parameters(method)
        accepts_all = params is None
        kwargs = {k: v for k, v in constants.items() if accepts_all or k in params}
        if accepts_all or "input_types" in params:
            kwargs["input_types"] = linked_types
        try:
            verdict = method(**kwargs)
        except Exception as exc:  # a pack's bug: reported against the node, never raised
            self._add(node_id, NodeIssue("exception_during_validation", "Exception when validating node",
                                         f"{type(exc).__name__}: {exc}"))
            return
        if verdict is not True:
            # ComfyUI's shape: details "<input> - <reason>" and extra_info.input_name, which the editor needs to
            # show the reason on the node (without it, it says only that the node rejected an unknown input)
            name = _validated_input(definition, params)
            details = name if verdict is False else f"{name} - {verdict}"
            extra: dict[str, Any] = {"input_name": name}
            spec = definition.inputs.get(name) if name else None
            if spec is not None:
                extra["input_config"] = spec.raw()
            if name in constants:
                extra["received_value"] = constants[name]
            self._add(node_id, NodeIssue("custom_validation_failed", "Custom validation failed for node",
                                         details, extra))

    def _check_cycles(self, order: list[str]) -> None:
        """Every node on a cycle gets an error; a cheap topological pass proves most prompts acyclic first."""
        if self._acyclic(order):
            return
        colour: dict[str, int] = {}
        for start in order:
            if start in colour:
                continue
            path: list[str] = []
            stack: list[tuple[str, Iterable[str]]] = [(start, iter(self._links_from(start)))]
            colour[start] = 1
            path.append(start)
            while stack:
                node_id, children = stack[-1]
                child = next(children, None)
                if child is None:
                    stack.pop()
                    path.pop()
                    colour[node_id] = 2
                elif colour.get(child) == 1:
                    cycle = path[path.index(child):]
                    for member in cycle:
                        self._add(member, NodeIssue("dependency_cycle", "Dependency cycle detected",
                                                    " -> ".join(cycle + [child])))
                elif child not in colour:
                    colour[child] = 1
                    path.append(child)
                    stack.append((child, iter(self._links_from(child))))

    def _acyclic(self, order: list[str]) -> bool:
        """Kahn's algorithm over the needed nodes: True when every node can be ordered."""
        pending = {node_id: len(self._links_from(node_id)) for node_id in order}
        consumers: dict[str, list[str]] = {}
        for node_id in order:
            for source in self._links_from(node_id):
                consumers.setdefault(source, []).append(node_id)
        ready = [node_id for node_id, count in pending.items() if count == 0]
        done = 0
        while ready:
            node_id = ready.pop()
            done += 1
            for consumer in consumers.get(node_id, ()):
                pending[consumer] -= 1
                if pending[consumer] == 0:
                    ready.append(consumer)
        return done == len(order)

    def _links_from(self, node_id: str) -> list[str]:
        return [v[0] for v in self.prompt[node_id]["inputs"].values() if is_link(v) and v[0] in self.prompt]

    def _add(self, node_id: str, issue: NodeIssue) -> None:
        bucket = self.issues.setdefault(node_id, [])
        if issue not in bucket:
            bucket.append(issue)

    def _result(self, outputs: list[str]) -> ValidationResult:
        node_errors: dict[str, dict[str, Any]] = {}
        dependents = self._outputs_depending_on(outputs) if self.issues else {}
        for node_id, issues in self.issues.items():
            node_errors[node_id] = {"errors": [i.to_json() for i in issues],
                                    "dependent_outputs": dependents.get(node_id, []),
                                    "class_type": self.prompt.get(node_id, {}).get("class_type", "")}
        error = None
        if node_errors:
            missing = [i for issues in self.issues.values() for i in issues if i.type == "missing_node_type"]
            error = missing[0] if missing else NodeIssue("prompt_outputs_failed_validation",
                                                         "Prompt outputs failed validation")
        return ValidationResult(prompt=self.prompt, outputs=outputs, error=error, node_errors=node_errors)

    def _outputs_depending_on(self, outputs: list[str]) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        for output in outputs:
            for node_id in self._ancestry([output]):
                result.setdefault(node_id, []).append(output)
        return result


_INVALID = object()


def _is_mapping(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)  # the ABC check is slow on the hot path


def _convert(kind: str, value: Any) -> Any:
    """Coerce a constant to its socket type the way ComfyUI does, but refuse lossy or nonsense conversions."""
    try:
        if kind == "INT":
            if isinstance(value, bool):
                return int(value)
            if isinstance(value, float):
                return int(value) if value.is_integer() else _INVALID
            return int(value) if isinstance(value, (int, str)) else _INVALID
        if kind == "FLOAT":
            if isinstance(value, (int, float, str)):
                number = float(value)
                return number if not math.isnan(number) else _INVALID
            return _INVALID
        if kind == "STRING":
            return value if isinstance(value, str) else str(value) if isinstance(value, (int, float)) else _INVALID
        if kind == "BOOLEAN":
            if isinstance(value, bool):
                return value
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            return _INVALID
        if kind == "COMBO":
            return value if isinstance(value, (str, int, float)) else _INVALID
    except (ValueError, OverflowError):
        return _INVALID
    return value


def _input_issue(kind: str, message: str, spec: InputSpec, details: str, received: Any = None) -> NodeIssue:
    extra: dict[str, Any] = {"input_name": spec.name, "input_config": spec.raw()}
    if received is not None:
        extra["received_value"] = received
    return NodeIssue(kind, message, details, extra)


def _misspelling_of(name: str, inputs: Mapping[str, Any], definition: NodeDefinition) -> str | None:
    """An input the class does not declare that looks like `name` (`valeu` for `value`): a typo, most likely."""
    unknown = [key for key in inputs if key not in definition.inputs]
    if not unknown:
        return None
    close = difflib.get_close_matches(name, unknown, n=1, cutoff=0.6)
    return close[0] if close else None


def _validated_input(definition: NodeDefinition, params: Any) -> str:
    """The input a failed VALIDATE_INPUTS is blamed on: the first declared input it takes as a parameter, else the
    last declared input (ComfyUI names the last input its loop visited)."""
    names = [name for name, spec in definition.inputs.items() if spec.section != "hidden"]
    for name in names:
        if params is not None and name in params:
            return name
    return names[-1] if names else ""


def _custom_validated_inputs(definition: NodeDefinition) -> set[str]:
    """Inputs VALIDATE_INPUTS takes as parameters skip the built-in range and combo checks (ComfyUI's rule)."""
    if not definition.has_validate_inputs:
        return set()
    params = _parameters(definition.cls.VALIDATE_INPUTS)
    return set(definition.inputs) if params is None else params


def _parameters(func: Any) -> set[str] | None:
    """Named parameters of `func`, or None when it takes **kwargs (it accepts everything)."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return None
    return {name for name in signature.parameters if name not in ("self", "cls")}


def _declares_anything(definition: NodeDefinition, name: str) -> bool:
    """Some packs take dynamic inputs through an INPUT_TYPES section whose mapping claims to contain every name
    (rgthree's flexible optional inputs); such a section declares `name` too."""
    for section in ("required", "optional"):
        entries = definition.raw_input_types.get(section)
        if isinstance(entries, Mapping) and type(entries) is not dict:
            try:
                if name in entries:
                    return True
            except Exception:
                return False
    return False


def _title(node: Mapping[str, Any], default: str) -> str:
    meta = node.get("_meta")
    return str(meta.get("title", default)) if isinstance(meta, Mapping) else default
