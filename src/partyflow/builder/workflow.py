"""Workflows written as Python: nodes checked against the installed classes as each line builds them.

`Workflow` is a mapping from node id to API-format node, so everything that takes a prompt (Engine.run,
validate, the queue) takes a builder as it is. Its attributes are the installed node classes
(`wf.TextValue(value="hi")`); each call returns a `NodeHandle` whose attributes are the node's outputs, ready to
be passed as inputs to the next call. Mistakes are raised where they are written: an unknown class or input (with
the closest names), a value the input would refuse at validation, a link of the wrong socket type, a link from
another workflow, a cycle.
"""

from __future__ import annotations

import contextlib
import difflib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

from partyflow.graph.explain import what_is_wrong
from partyflow.graph.validate import validate_prompt
from partyflow.graph.workflow import read_workflow_file
from partyflow.nodes.host import host_context
from partyflow.nodes.protocol import InputSpec, NodeDefinition, NodeDefinitionError, types_match

__all__ = ["BuilderError", "InputRef", "NodeHandle", "Output", "Workflow"]

T_co = TypeVar("T_co", covariant=True)


class BuilderError(ValueError):
    """A mistake in a workflow being built; raised by the call that made it, naming the node and input."""


class Output(Generic[T_co]):
    """Output `index` of a node: pass it as an input to link the two nodes.

    The type parameter is the socket type as a literal (`Output[Literal["STRING"]]`), used only by the generated
    stubs so that a type checker refuses a link of the wrong type; at run time `type` holds the same name.
    """

    __slots__ = ("node", "index", "name", "type")

    def __init__(self, node: NodeHandle, index: int, name: str, type: str) -> None:
        self.node, self.index, self.name, self.type = node, index, name, type

    def link(self) -> list[Any]:
        return [self.node.id, self.index]

    def __repr__(self) -> str:
        return f"<output {self.name!r} ({self.type}) of node {self.node.id} {self.node.class_type}>"


class InputRef:
    """An input of a node, by name: where a published workflow's chat message or history goes in."""

    __slots__ = ("node", "name")

    def __init__(self, node: NodeHandle, name: str) -> None:
        self.node, self.name = node, name


class NodeHandle:
    """One node of a workflow being built. Its outputs are attributes (`handle.text`) or items (`handle[0]`,
    `handle["text"]`); an output named like a method here (`set`, `id`, ...) is reached as an item."""

    def __init__(self, workflow: Workflow, node_id: str, definition: NodeDefinition, title: str | None) -> None:
        self._workflow = workflow
        self.id = node_id
        self.definition = definition
        self.title = title
        self.group: str | None = None
        self.inputs: dict[str, Any] = {}
        names = definition.return_names or tuple(t.lower() for t in definition.return_types)
        self.outputs = tuple(Output(self, i, name, kind)
                             for i, (name, kind) in enumerate(zip(names, definition.return_types, strict=False)))

    @property
    def class_type(self) -> str:
        return self.definition.class_type

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    def __getattr__(self, name: str) -> Output[Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, key: int | str) -> Output[Any]:
        if isinstance(key, int) and not isinstance(key, bool):
            if 0 <= key < len(self.outputs):
                return self.outputs[key]
            raise BuilderError(f"node {self.id} ({self.class_type}) has {len(self.outputs)} output(s), "
                               f"not an output {key}")
        for output in self.outputs:
            if output.name == key:
                return output
        raise BuilderError(f"node {self.id} ({self.class_type}) has no output {key!r}"
                           f"{_suggest(str(key), self.output_names)} (its outputs: "
                           f"{', '.join(self.output_names) or 'none'})")

    def input(self, name: str) -> InputRef:
        """A reference to one of this node's inputs (for `Workflow.publish`)."""
        if name not in self.definition.inputs:
            raise BuilderError(_unknown_input(self, name))
        return InputRef(self, name)

    def set(self, **inputs: Any) -> NodeHandle:
        """Set or change inputs after the node was made: links that close a loop are refused as cycles."""
        for name, value in inputs.items():
            self._workflow._set_input(self, name, value)
        return self

    def titled(self, title: str) -> NodeHandle:
        """Give the node the title the editor shows (and `partyflow run` prints with its outputs)."""
        self.title = title
        return self

    def to_api(self) -> dict[str, Any]:
        """The API-format node, as the editor queues it: every widget's value and the title in `_meta`."""
        return {"class_type": self.class_type, "inputs": self._workflow._api_inputs(self),
                "_meta": {"title": self.title or self.definition.display_name or self.class_type}}

    def __repr__(self) -> str:
        return f"<node {self.id} {self.class_type}>"


class Workflow(Mapping[str, dict[str, Any]]):
    """A workflow under construction, readable as the API prompt it stands for.

    >>> wf = Workflow(engine)
    >>> greeting = wf.TextTemplate(template="Hello, {name}!", name=wf.TextValue(value="Ada").text)
    >>> engine.run(wf)[wf.DisplayText(text=greeting.text)]
    """

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._nodes: dict[str, NodeHandle] = {}
        self._group_stack: list[str] = []
        self.groups: dict[str, dict[str, Any]] = {}  # title -> {"color", "bounding" (kept from a loaded file)}
        self.layout: dict[str, dict[str, Any]] = {}  # node id -> {"pos", "size"} kept from a loaded UI file
        self.extra: dict[str, Any] = {}

    # ---- making nodes -------------------------------------------------------------------------------------------

    def __getattr__(self, class_type: str) -> Any:
        if class_type.startswith("_"):
            raise AttributeError(class_type)
        if class_type not in self._engine.registry:
            raise AttributeError(self._unknown_class(class_type))
        return lambda **inputs: self.node(class_type, **inputs)

    def node(self, class_type: str, *, _id: str | None = None, _title: str | None = None, **inputs: Any) -> NodeHandle:
        """Add a node of `class_type` (for class names that are not Python identifiers; `wf.X(...)` otherwise)."""
        definition = self._definition(class_type)
        handle = NodeHandle(self, self._free_id(_id), definition, _title)
        handle.group = self._group_stack[-1] if self._group_stack else None
        for name, value in inputs.items():
            self._check_input(handle, name, value)
        handle.inputs.update(inputs)
        self._nodes[handle.id] = handle  # only now: a refused node takes no id
        return handle

    @contextlib.contextmanager
    def group(self, title: str, *, color: str | None = None) -> Iterator[None]:
        """Nodes made inside the block belong to a group the editor draws around them."""
        self.groups.setdefault(title, {})
        if color:
            self.groups[title]["color"] = color
        self._group_stack.append(title)
        try:
            yield
        finally:
            self._group_stack.pop()

    def publish(self, model: str, *, input: InputRef, output: Output[Any], history: InputRef | None = None,
                usage: Output[Any] | None = None, stream: NodeHandle | None = None) -> dict[str, Any]:
        """Publish the workflow as a chat model: the marker the editor and `/v1/chat/completions` read.

        It is kept in `extra` (written by `to_ui`); save the UI form under `<home>/user/<user>/workflows/` —
        `save_published()` does — and the server offers it as `model`.
        """
        for ref in (input, output, history, usage):
            if ref is not None:
                self._own(ref.node, "the published endpoint")
        marker: dict[str, Any] = {"model": model,
                                  "input": {"node": _ui_id(input.node.id), "input": input.name},
                                  "output": {"node": _ui_id(output.node.id), "output": output.index}}
        if history is not None:
            marker["history"] = {"node": _ui_id(history.node.id), "input": history.name}
        if usage is not None:
            marker["usage"] = {"node": _ui_id(usage.node.id), "output": usage.index}
        if stream is not None:
            marker["stream"] = {"node": _ui_id(self._own(stream, "the streaming node").id)}
        self.extra.setdefault("partyflow", {})["publish"] = marker
        return marker

    def save_published(self, user: str = "default") -> Path:
        """Write the UI form into the engine home's workflows of `user`, where the server finds publications."""
        marker = self.extra.get("partyflow", {}).get("publish")
        if not marker:
            raise BuilderError("publish() the workflow first: it has no model name")
        folder = Path(self._engine.home.user) / user / "workflows"
        return self.save(folder / f"{marker['model']}.json")

    # ---- reading it ---------------------------------------------------------------------------------------------

    def __getitem__(self, node_id: str) -> dict[str, Any]:
        return self._nodes[node_id].to_api()

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    @property
    def nodes(self) -> list[NodeHandle]:
        return list(self._nodes.values())

    def handle(self, node_id: str) -> NodeHandle:
        return self._nodes[str(node_id)]

    def to_api(self) -> dict[str, dict[str, Any]]:
        """The API-format prompt, with every widget's value written out as the editor writes it."""
        return {node_id: handle.to_api() for node_id, handle in self._nodes.items()}

    def to_ui(self) -> dict[str, Any]:
        """The editor's format, laid out left to right with groups drawn around their nodes."""
        from partyflow.builder.ui_export import to_ui

        return to_ui(self)

    def save(self, path: str | Path) -> Path:
        """Write the UI form (what the editor opens) atomically."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(target.name + ".tmp")
        temporary.write_text(json.dumps(self.to_ui(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        temporary.replace(target)
        return target

    @classmethod
    def from_file(cls, path: str | Path, engine: Any) -> Workflow:
        """A builder holding an existing workflow (API or UI format) to edit; node ids, titles, layout and groups
        of a UI file are kept. Editor-only nodes (notes, reroutes, primitives) are folded away as on conversion."""
        from partyflow.builder.ui_import import load

        return load(cls(engine), read_workflow_file(path))

    # ---- the checks, where the mistake is written ---------------------------------------------------------------

    def _definition(self, class_type: str) -> NodeDefinition:
        if class_type not in self._engine.registry:
            raise BuilderError(self._unknown_class(class_type))
        try:
            with host_context(self._engine.host):  # INPUT_TYPES may ask the host (folder_paths, providers)
                return self._engine.registry.definition(class_type)
        except NodeDefinitionError as exc:
            raise BuilderError(str(exc)) from None

    def _unknown_class(self, class_type: str) -> str:
        return (f"no node class {class_type!r} is installed{_suggest(class_type, list(self._engine.registry))} "
                f"(partyflow nodes list shows them)")

    def _free_id(self, wanted: str | None) -> str:
        if wanted is not None:
            if str(wanted) in self._nodes:
                raise BuilderError(f"two nodes would have the id {wanted!r}")
            return str(wanted)
        number = len(self._nodes) + 1
        while str(number) in self._nodes:
            number += 1
        return str(number)

    def _own(self, handle: NodeHandle, what: str) -> NodeHandle:
        if handle._workflow is not self or self._nodes.get(handle.id) is not handle:
            raise BuilderError(f"{what} is node {handle.id} ({handle.class_type}) of another workflow")
        return handle

    def _set_input(self, handle: NodeHandle, name: str, value: Any) -> None:
        self._check_input(handle, name, value)
        if isinstance(value, Output) and self._reaches(value.node, handle):
            raise BuilderError(f"node {handle.id} ({handle.class_type}), input {name!r}: linking "
                               f"{value!r} would make a cycle")
        handle.inputs[name] = value

    def _reaches(self, start: NodeHandle, target: NodeHandle) -> bool:
        """Whether `target` is `start` or one of its ancestors (so a link target -> start closes a loop)."""
        seen, stack = set(), [start]
        while stack:
            node = stack.pop()
            if node is target:
                return True
            if node.id in seen:
                continue
            seen.add(node.id)
            stack.extend(v.node for v in node.inputs.values() if isinstance(v, Output))
        return False

    def _check_input(self, handle: NodeHandle, name: str, value: Any) -> None:
        spec = handle.definition.inputs.get(name)
        if spec is None:
            raise BuilderError(_unknown_input(handle, name))
        where = f"node {handle.id} ({handle.class_type}), input {name!r}"
        if isinstance(value, NodeHandle):
            raise BuilderError(f"{where}: give one of its outputs ({', '.join(value.output_names)}), not the node")
        if isinstance(value, Output):
            if value.node._workflow is not self or self._nodes.get(value.node.id) is not value.node:
                raise BuilderError(f"{where}: {value!r} belongs to another workflow")
            if not types_match(value.type, spec.type):
                raise BuilderError(f"{where}: takes {spec.type}, but {value!r} gives {value.type}")
            return
        with host_context(self._engine.host):
            problem = _constant_problem(handle.class_type, spec, value, self._engine.registry)
        if problem:
            raise BuilderError(f"{where}: {problem}")

    def _api_inputs(self, handle: NodeHandle) -> dict[str, Any]:
        inputs: dict[str, Any] = {}
        for spec in handle.definition.inputs.values():
            if spec.name in handle.inputs:
                value = handle.inputs[spec.name]
                inputs[spec.name] = value.link() if isinstance(value, Output) else _api_value(value)
            elif spec.is_widget:
                inputs[spec.name] = widget_default(spec)
        return inputs


def widget_default(spec: InputSpec) -> Any:
    """The value the editor puts in a widget nobody touched."""
    if "default" in spec.options:
        return spec.options["default"]
    if spec.type == "COMBO":
        return spec.choices[0] if spec.choices else ""
    if spec.type in ("INT", "FLOAT"):
        low = spec.options.get("min")
        return low if isinstance(low, (int, float)) and low > 0 else (0 if spec.type == "INT" else 0.0)
    return {"STRING": "", "BOOLEAN": False}.get(spec.type, "")


def _api_value(value: Any) -> Any:
    """A list constant is wrapped: in an API prompt a bare two-item list is a link."""
    return {"__value__": value} if isinstance(value, list) else value


def _ui_id(node_id: str) -> int | str:
    return int(node_id) if node_id.isdecimal() else node_id


def _constant_problem(class_type: str, spec: InputSpec, value: Any, registry: Any) -> str | None:
    """What validation would say about this one value, asked of the validator itself so the two never differ."""
    probe = {"probe": {"class_type": class_type, "inputs": {spec.name: _api_value(value)}}}
    result = validate_prompt(probe, registry, outputs=["probe"])
    for issue in result.node_errors.get("probe", {}).get("errors", ()):
        extra = issue.get("extra_info") or {}
        if extra.get("input_name") == spec.name and issue["type"] != "required_input_missing":
            return what_is_wrong(issue)
    return None


def _unknown_input(handle: NodeHandle, name: str) -> str:
    declared = list(handle.definition.inputs)
    return (f"node {handle.id} ({handle.class_type}) has no input {name!r}{_suggest(name, declared)} "
            f"(its inputs: {', '.join(declared) or 'none'})")


def _suggest(word: str, known: Any) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" — did you mean {close[0]!r}?" if close else ""
