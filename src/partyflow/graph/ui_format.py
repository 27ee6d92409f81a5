"""Convert an editor-saved (UI-format) ComfyUI workflow into the API prompt that executes.

The editor saves what it draws: helper nodes (PrimitiveNode, Reroute, notes), muted and bypassed nodes, subgraph
instances and positional widget values. The server executes only real nodes with named inputs. The official
frontend does this conversion in the browser before queueing; we do it here so a saved file runs without one.
Semantics follow the frontend's `graphToPrompt` and `ExecutableNodeDTO` (ComfyUI_frontend):

- node ids inside subgraph instances are the instance path joined with ":" (`"5:3"`, `"5:7:3"`);
- a bypassed node hands each consumer the input of a matching type, preferring the same slot index;
- links that end at a node which is not in the prompt (muted) are dropped, leaving the input unset;
- list values are wrapped as `{"__value__": [...]}`, because a bare list in an API prompt means a link.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from partyflow.graph.errors import WorkflowFormatError

__all__ = ["is_ui_workflow", "ui_to_api"]

MODE_NEVER = 2
MODE_BYPASS = 4
SUBGRAPH_INPUT_NODE = "-10"
SUBGRAPH_OUTPUT_NODE = "-20"
PRIMITIVE = "PrimitiveNode"
REROUTE = "Reroute"
NOTE_TYPES = frozenset({"Note", "MarkdownNote"})
EDITOR_ONLY_TYPES = NOTE_TYPES | {PRIMITIVE, REROUTE}
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
LEGACY_SEED_NAMES = frozenset({"seed", "noise_seed"})
MAX_SUBGRAPH_DEPTH = 32


def is_ui_workflow(data: object) -> bool:
    """True for an editor-saved workflow (has "nodes" list and "links" list), False for API prompts."""
    return (
        isinstance(data, Mapping)
        and isinstance(data.get("nodes"), list)
        and isinstance(data.get("links"), list)
    )


def ui_to_api(
    workflow: Mapping[str, Any], object_info: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Convert to an API prompt {id: {"class_type", "inputs", "_meta": {"title"}}}.

    `object_info` tells which inputs are widgets and in which order `widgets_values` lists them. Classes missing
    from it are kept with their linked inputs only, so that validation can name them.
    """
    if not isinstance(workflow, Mapping):
        raise WorkflowFormatError(
            f"a UI workflow must be a JSON object, not {type(workflow).__name__}",
            hint="load the .json file the editor saved",
        )
    root = _parse_graph(workflow, label="")
    subgraphs: dict[str, _Subgraph] = {}
    _collect_subgraphs(workflow, subgraphs, depth=0)
    return _Converter(object_info if isinstance(object_info, Mapping) else {}, subgraphs).convert(root)


# --- the parsed document: checked once, so the conversion below can trust its shape ---------------------------


@dataclass(frozen=True)
class _Input:
    name: str
    type: str
    link: str | None
    widget: bool


@dataclass(frozen=True)
class _Node:
    id: str
    type: str
    mode: int
    title: str | None
    inputs: tuple[_Input, ...]
    output_types: tuple[str, ...]
    widgets_values: list[Any] | Mapping[str, Any] | None


@dataclass(frozen=True)
class _Link:
    id: str
    origin_id: str
    origin_slot: int
    target_id: str
    target_slot: int


@dataclass(frozen=True)
class _Graph:
    label: str  # "" for the root graph, "subgraph <id> " inside a definition; prefixes error locations
    nodes: dict[str, _Node]
    links: dict[str, _Link]


@dataclass(frozen=True)
class _Subgraph:
    id: str
    graph: _Graph
    input_names: tuple[str, ...]
    output_link_ids: tuple[tuple[str, ...], ...]

    def output_link(self, slot: int) -> _Link | None:
        """The inner link feeding output `slot`: the first listed in linkIds, else the first found in links."""
        listed = self.output_link_ids[slot] if slot < len(self.output_link_ids) else ()
        for link_id in listed:
            if link_id in self.graph.links:
                return self.graph.links[link_id]
        return next(
            (
                link
                for link in self.graph.links.values()
                if link.target_id == SUBGRAPH_OUTPUT_NODE and link.target_slot == slot
            ),
            None,
        )


def _parse_graph(doc: Mapping[str, Any], label: str) -> _Graph:
    raw_nodes = doc.get("nodes")
    if not isinstance(raw_nodes, list):
        raise WorkflowFormatError(
            '"nodes" must be a list of node objects',
            where=f"{label}nodes".strip(),
            hint="is this a UI workflow?",
        )
    nodes: dict[str, _Node] = {}
    for index, raw in enumerate(raw_nodes):
        node = _parse_node(raw, label, index)
        if node.id in nodes:
            raise WorkflowFormatError(
                "two nodes share this id", where=f"{label}node {node.id}", hint="give each node a unique id"
            )
        nodes[node.id] = node
    return _Graph(label=label, nodes=nodes, links=_parse_links(doc.get("links"), label))


def _parse_node(raw: object, label: str, index: int) -> _Node:
    if not isinstance(raw, Mapping):
        raise WorkflowFormatError("a node must be an object", where=f"{label}nodes[{index}]")
    node_id = _parse_id(raw.get("id"), where=f"{label}nodes[{index}]", what="node id")
    where = f"{label}node {node_id}"
    node_type = raw.get("type")
    if not isinstance(node_type, str) or not node_type:
        raise WorkflowFormatError(
            "the node has no type", where=where, hint='set "type" to the node class name'
        )
    mode = raw.get("mode", 0)
    if mode is None:
        mode = 0
    if not isinstance(mode, int) or isinstance(mode, bool):
        raise WorkflowFormatError(
            f"mode must be an integer, not {mode!r}", where=where, hint="0 runs, 2 mutes, 4 bypasses"
        )
    widgets_values = raw.get("widgets_values")
    if widgets_values is not None and not isinstance(widgets_values, list | Mapping):
        raise WorkflowFormatError("widgets_values must be a list or an object", where=where)
    title = raw.get("title")
    return _Node(
        id=node_id,
        type=node_type,
        mode=mode,
        title=title if isinstance(title, str) and title else None,
        inputs=tuple(_parse_input(slot, where, i) for i, slot in enumerate(_list_of(raw, "inputs", where))),
        output_types=tuple(
            _parse_output_type(slot, where, i) for i, slot in enumerate(_list_of(raw, "outputs", where))
        ),
        widgets_values=widgets_values,
    )


def _list_of(raw: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise WorkflowFormatError(f'"{key}" must be a list', where=where)
    return value


def _parse_input(raw: object, where: str, index: int) -> _Input:
    if not isinstance(raw, Mapping):
        raise WorkflowFormatError(f"input {index} must be an object", where=where)
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise WorkflowFormatError(f"input {index} has a name that is not a string", where=where)
    link = raw.get("link")
    return _Input(
        name=name,
        type=_parse_slot_type(raw.get("type"), where, f"input {index}"),
        link=None if link is None else _parse_id(link, where=where, what=f"link of input {name!r}"),
        widget=raw.get("widget") is not None,
    )


def _parse_output_type(raw: object, where: str, index: int) -> str:
    if not isinstance(raw, Mapping):
        raise WorkflowFormatError(f"output {index} must be an object", where=where)
    return _parse_slot_type(raw.get("type"), where, f"output {index}")


def _parse_slot_type(value: object, where: str, what: str) -> str:
    if value is None:
        return "*"
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise WorkflowFormatError(f"{what} has a type that is not a string: {value!r}", where=where)


def _parse_links(raw: object, label: str) -> dict[str, _Link]:
    if raw is None:
        return {}
    items: Sequence[object]
    if isinstance(raw, list):
        items = raw
    elif isinstance(raw, Mapping):  # some subgraph definitions key their link objects by id
        items = list(raw.values())
    else:
        raise WorkflowFormatError('"links" must be a list', where=f"{label}links".strip())
    links: dict[str, _Link] = {}
    for index, item in enumerate(items):
        link = _parse_link(item, label, index)
        links[link.id] = link  # a repeated id replaces the earlier one, as the editor's link map does
    return links


def _parse_link(raw: object, label: str, index: int) -> _Link:
    where = f"{label}links[{index}]"
    if isinstance(raw, list):
        if len(raw) < 5:
            raise WorkflowFormatError(
                "a link array needs [link_id, from_node, from_slot, to_node, to_slot, type]", where=where
            )
        fields = dict(zip(("id", "origin_id", "origin_slot", "target_id", "target_slot"), raw, strict=False))
    elif isinstance(raw, Mapping):
        fields = raw
    else:
        raise WorkflowFormatError("a link must be an array or an object", where=where)
    link_id = _parse_id(fields.get("id"), where=where, what="link id")
    where = f"{label}link {link_id}"
    return _Link(
        id=link_id,
        origin_id=_parse_id(fields.get("origin_id"), where=where, what="origin node id"),
        origin_slot=_parse_slot(fields.get("origin_slot"), where=where, what="origin slot"),
        target_id=_parse_id(fields.get("target_id"), where=where, what="target node id"),
        target_slot=_parse_slot(fields.get("target_slot"), where=where, what="target slot"),
    )


def _parse_id(value: object, *, where: str, what: str) -> str:
    """Node and link ids are integers in most files and strings in some; both compare as text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value:
        return value
    raise WorkflowFormatError(f"{what} must be an integer or a string, not {value!r}", where=where)


def _parse_slot(value: object, *, where: str, what: str) -> int:
    if isinstance(value, str) and value.isdecimal():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise WorkflowFormatError(f"{what} must be a slot index (0 or more), not {value!r}", where=where)


def _collect_subgraphs(doc: Mapping[str, Any], into: dict[str, _Subgraph], depth: int) -> None:
    """Gather subgraph definitions, including those nested in other definitions."""
    definitions = doc.get("definitions")
    if definitions is None:
        return
    if not isinstance(definitions, Mapping) or not isinstance(definitions.get("subgraphs", []), list):
        raise WorkflowFormatError('"definitions.subgraphs" must be a list', where="definitions")
    if depth > MAX_SUBGRAPH_DEPTH:
        raise WorkflowFormatError("subgraph definitions are nested too deeply", where="definitions")
    for index, raw in enumerate(definitions.get("subgraphs", [])):
        if not isinstance(raw, Mapping):
            raise WorkflowFormatError(
                "a subgraph definition must be an object", where=f"definitions.subgraphs[{index}]"
            )
        subgraph = _parse_subgraph(raw, index)
        into.setdefault(subgraph.id, subgraph)
        _collect_subgraphs(raw, into, depth + 1)


def _parse_subgraph(raw: Mapping[str, Any], index: int) -> _Subgraph:
    subgraph_id = _parse_id(raw.get("id"), where=f"definitions.subgraphs[{index}]", what="subgraph id")
    label = f"subgraph {subgraph_id} "
    inputs = _io_slots(raw, "inputs", label)
    outputs = _io_slots(raw, "outputs", label)
    return _Subgraph(
        id=subgraph_id,
        graph=_parse_graph(raw, label),
        input_names=tuple(str(slot.get("name", "")) for slot in inputs),
        output_link_ids=tuple(_link_ids(slot, label) for slot in outputs),
    )


def _io_slots(raw: Mapping[str, Any], key: str, label: str) -> list[Mapping[str, Any]]:
    slots = _list_of(raw, key, label.strip())
    if not all(isinstance(slot, Mapping) for slot in slots):
        raise WorkflowFormatError(f'every entry of "{key}" must be an object', where=label.strip())
    return slots


def _link_ids(slot: Mapping[str, Any], label: str) -> tuple[str, ...]:
    ids = slot.get("linkIds") or []
    if not isinstance(ids, list):
        raise WorkflowFormatError('"linkIds" must be a list', where=label.strip())
    return tuple(_parse_id(link_id, where=label.strip(), what="linkIds entry") for link_id in ids)


# --- conversion ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scope:
    """A graph as seen through one chain of subgraph instances."""

    graph: _Graph
    path: tuple[str, ...] = ()
    subgraph_ids: tuple[str, ...] = ()
    parent: _Scope | None = None
    instance: _Node | None = None

    def exec_id(self, node_id: str) -> str:
        return ":".join((*self.path, node_id))

    def where(self, node_id: str) -> str:
        return f"node {self.exec_id(node_id)}"


@dataclass(frozen=True)
class _LinkTo:
    """The input is fed by output `slot` of the (executable) node `node_id`."""

    node_id: str
    slot: int


@dataclass(frozen=True)
class _Value:
    """The input takes a value set in the editor (a PrimitiveNode or a subgraph instance's widget)."""

    value: Any


@dataclass(frozen=True)
class _Step:
    """One hop of link resolution: into an input slot ("in") or out of an output slot ("out")."""

    direction: str
    scope: _Scope
    node: _Node
    slot: int
    type: str | None


_Resolved = _LinkTo | _Value | None


def _step_to_origin(scope: _Scope, link: _Link, want: str | None) -> _Step:
    """The hop out of the node a link in `scope` comes from; both a node's own inputs and a subgraph's outputs
    follow links this way, and a link to a deleted node is the same user error in both."""
    origin = scope.graph.nodes.get(link.origin_id)
    if origin is None:
        raise WorkflowFormatError(
            f"the link comes from node {link.origin_id}, which does not exist",
            where=f"{scope.graph.label}link {link.id}",
            hint="delete the link or restore the node",
        )
    return _Step("out", scope, origin, link.origin_slot, want)


class _Converter:
    def __init__(self, object_info: Mapping[str, Any], subgraphs: Mapping[str, _Subgraph]) -> None:
        self._object_info = object_info
        self._subgraphs = subgraphs
        self._prompt: dict[str, dict[str, Any]] = {}

    def convert(self, root: _Graph) -> dict[str, dict[str, Any]]:
        self._emit_graph(_Scope(graph=root))
        self._drop_links_to_missing_nodes()
        return self._prompt

    def _emit_graph(self, scope: _Scope) -> None:
        for node in scope.graph.nodes.values():
            if node.mode in (MODE_NEVER, MODE_BYPASS) or node.type in EDITOR_ONLY_TYPES:
                continue
            if node.type in self._subgraphs:
                self._emit_graph(self._enter(scope, node))
            else:
                self._emit_node(scope, node)

    def _enter(self, scope: _Scope, instance: _Node) -> _Scope:
        subgraph = self._subgraphs[instance.type]
        if subgraph.id in scope.subgraph_ids or len(scope.path) >= MAX_SUBGRAPH_DEPTH:
            raise WorkflowFormatError(
                f"subgraph {subgraph.id} contains an instance of itself",
                where=scope.where(instance.id),
                hint="a subgraph cannot be nested inside itself; unpack the inner instance",
            )
        return _Scope(
            graph=subgraph.graph,
            path=(*scope.path, instance.id),
            subgraph_ids=(*scope.subgraph_ids, subgraph.id),
            parent=scope,
            instance=instance,
        )

    def _emit_node(self, scope: _Scope, node: _Node) -> None:
        exec_id = scope.exec_id(node.id)
        if exec_id in self._prompt:
            raise WorkflowFormatError(
                "two nodes flatten to the same id", where=scope.where(node.id), hint="renumber one of them"
            )
        info = self._class_info(node.type)
        inputs = _widget_inputs(node, info) if info is not None else {}
        for slot, node_input in enumerate(node.inputs):
            if node_input.link is None:
                continue
            resolved = self._resolve(_Step("in", scope, node, slot, None))
            if isinstance(resolved, _LinkTo):
                inputs[node_input.name] = [resolved.node_id, resolved.slot]
            elif isinstance(resolved, _Value):
                inputs[node_input.name] = _wrap_list(resolved.value)
        self._prompt[exec_id] = {
            "class_type": node.type,
            "inputs": inputs,
            "_meta": {"title": node.title or _display_name(info, node.type)},
        }

    def _drop_links_to_missing_nodes(self) -> None:
        """Inputs fed by muted (or otherwise absent) nodes are left unset, as the frontend does."""
        for entry in self._prompt.values():
            inputs = entry["inputs"]
            for name, value in list(inputs.items()):
                if isinstance(value, list) and len(value) == 2 and value[0] not in self._prompt:
                    del inputs[name]

    # -- link resolution: a loop over hops, so long reroute/bypass chains cannot exhaust the stack --

    def _resolve(self, step: _Step) -> _Resolved:
        seen: set[tuple[str, tuple[str, ...], str, int]] = set()
        current: _Step | _Resolved = step
        while isinstance(current, _Step):
            key = (current.direction, current.scope.path, current.node.id, current.slot)
            if key in seen:
                raise WorkflowFormatError(
                    "links form a loop through reroute, bypassed or subgraph nodes",
                    where=step.scope.where(step.node.id),
                    hint="remove one of the links in the loop",
                )
            seen.add(key)
            hop = self._step_in if current.direction == "in" else self._step_out
            current = hop(current.scope, current.node, current.slot, current.type)
        return current

    def _step_in(self, scope: _Scope, node: _Node, slot: int, want: str | None) -> _Step | _Resolved:
        if slot >= len(node.inputs) or node.inputs[slot].link is None:
            return None
        node_input = node.inputs[slot]
        link = scope.graph.links.get(node_input.link or "")
        if link is None:
            raise WorkflowFormatError(
                f"input {node_input.name!r} refers to link {node_input.link}, which is not in the links list",
                where=scope.where(node.id),
                hint="reconnect or disconnect that input in the editor and save again",
            )
        want = want or node_input.type
        if link.origin_id == SUBGRAPH_INPUT_NODE and scope.instance is not None:
            return self._from_instance_input(scope, link.origin_slot, want)
        return _step_to_origin(scope, link, want)

    def _step_out(self, scope: _Scope, node: _Node, slot: int, want: str | None) -> _Step | _Resolved:
        want = want or "*"
        if node.type == PRIMITIVE:
            values = node.widgets_values
            return _Value(values[0]) if isinstance(values, list) and values else None
        if node.mode == MODE_BYPASS:
            index = _bypass_input_index(node, slot, want)
            return None if index is None else _Step("in", scope, node, index, None)
        if node.mode != MODE_NEVER and node.type in self._subgraphs:
            return self._from_instance_output(scope, node, slot, want)
        if node.type == REROUTE:
            return _Step("in", scope, node, 0, want)
        if node.type in NOTE_TYPES:
            return None
        return _LinkTo(scope.exec_id(node.id), slot)

    def _from_instance_output(
        self, scope: _Scope, instance: _Node, slot: int, want: str
    ) -> _Step | _Resolved:
        inner = self._enter(scope, instance)
        link = self._subgraphs[instance.type].output_link(slot)
        if link is None:
            return None
        if link.origin_id == SUBGRAPH_INPUT_NODE:  # an input wired straight through to an output
            return self._from_instance_input(inner, link.origin_slot, want)
        return _step_to_origin(inner, link, want)

    def _from_instance_input(self, scope: _Scope, index: int, want: str) -> _Step | _Resolved:
        """Leave a subgraph through its input `index`: the instance's link outside, else its promoted widget."""
        instance, parent = scope.instance, scope.parent
        if instance is None or parent is None:
            return None
        if index < len(instance.inputs) and instance.inputs[index].link is not None:
            return _Step("in", parent, instance, index, want)
        return self._promoted_value(instance, index)

    def _promoted_value(self, instance: _Node, index: int) -> _Resolved:
        """The instance shows one widget per subgraph input that feeds an inner widget, in input order."""
        subgraph = self._subgraphs[instance.type]
        count = max(len(subgraph.input_names), len(instance.inputs))
        promoted = [i for i in range(count) if self._is_promoted(subgraph, instance, i)]
        if index not in promoted:
            return None
        values = instance.widgets_values
        if isinstance(values, list):
            position = promoted.index(index)
            return _Value(values[position]) if position < len(values) else None
        if isinstance(values, Mapping):
            name = (
                instance.inputs[index].name if index < len(instance.inputs) else subgraph.input_names[index]
            )
            return _Value(values[name]) if name in values else None
        return None

    def _is_promoted(self, subgraph: _Subgraph, instance: _Node, index: int) -> bool:
        if index < len(instance.inputs) and instance.inputs[index].widget:
            return True
        for link in subgraph.graph.links.values():
            if link.origin_id != SUBGRAPH_INPUT_NODE or link.origin_slot != index:
                continue
            target = subgraph.graph.nodes.get(link.target_id)
            if target is None or link.target_slot >= len(target.inputs):
                continue
            target_input = target.inputs[link.target_slot]
            if target_input.widget or self._is_widget_input(target.type, target_input.name):
                return True
        return False

    # -- object_info lookups --

    def _class_info(self, class_type: str) -> Mapping[str, Any] | None:
        info = self._object_info.get(class_type)
        return info if isinstance(info, Mapping) else None

    def _is_widget_input(self, class_type: str, name: str) -> bool:
        info = self._class_info(class_type)
        return info is not None and any(spec.name == name for spec in _widget_specs(info))


# --- widget values ---------------------------------------------------------------------------------------------


_NO_DEFAULT = object()


@dataclass(frozen=True)
class _WidgetSpec:
    name: str
    type: object
    options: Mapping[str, Any]

    def takes_control_value(self, value: object, following: _WidgetSpec | None) -> bool:
        """Whether `value`, found right after this widget's value, is its control_after_generate setting."""
        if not (isinstance(value, str) and value in CONTROL_VALUES):
            return False
        if self.options.get("control_after_generate") or (
            self.type == "INT" and self.name in LEGACY_SEED_NAMES
        ):
            return True
        # Older object_info omits the flag while the editor still saved a control value after an INT.
        return self.type == "INT" and (following is None or not following.accepts(value))

    def accepts(self, value: str) -> bool:
        if self.type == "STRING":
            return True
        return value in _combo_options(self.type, self.options)

    def fits(self, value: object) -> bool:
        """Whether `value` could be this widget's value (used to tell which saved-format reading is right)."""
        if self.type == "INT":
            return (isinstance(value, int) and not isinstance(value, bool)) or (
                isinstance(value, float) and value.is_integer())
        if self.type == "FLOAT":
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        if self.type == "BOOLEAN":
            return isinstance(value, bool)
        if self.type == "STRING":
            return isinstance(value, str)
        choices = _combo_options(self.type, self.options)
        return not choices or value in choices or isinstance(value, list)

    def default(self) -> Any:
        """The value the editor gives a new widget: its declared default, else the first choice or the type's zero."""
        if "default" in self.options:
            return self.options["default"]
        choices = _combo_options(self.type, self.options)
        if choices:
            return choices[0]
        zero: dict[str, Any] = {"INT": self.options.get("min", 0), "FLOAT": self.options.get("min", 0.0),
                                "STRING": "", "BOOLEAN": False}
        return zero.get(self.type, _NO_DEFAULT) if isinstance(self.type, str) else _NO_DEFAULT


def _widget_inputs(node: _Node, info: Mapping[str, Any]) -> dict[str, Any]:
    """Name the node's widget values using INPUT_TYPES order; the values are a list, or a dict for some packs.

    Which inputs hold a slot follows the editor that saved the file. Editors before socket-only inputs made a
    widget for every value-typed input, `forceInput` ones too, and saved it converted to a socket (the input
    entry carries a `widget` marker); newer editors make none. Files do not say which editor wrote them, and
    older ones may not list every converted input, so both readings are tried and the one whose values fit
    their widgets' types best wins (the marker reading on a tie). A forceInput slot is skipped, not sent: the
    editor loading such a file makes no widget for it. Widgets a class gained after the file was saved take
    their defaults, as the editor gives them on load.
    """
    converted = {i.name for i in node.inputs if i.widget}
    linked = {i.name for i in node.inputs if i.link is not None}
    values = node.widgets_values
    if isinstance(values, Mapping):
        specs = list(_widget_specs(info, converted))
        return {spec.name: _wrap_list(values[spec.name]) for spec in specs if spec.name in values}
    values = values if isinstance(values, list) else []
    marked, marked_misfits = _assign(list(_widget_specs(info, converted)), values, linked)
    if not values:
        return marked
    every, every_misfits = _assign(list(_widget_specs(info, converted, all_force_input=True)), values, linked)
    return every if every_misfits < marked_misfits else marked


def _assign(specs: list[_WidgetSpec], values: list[Any], linked: Collection[str]) -> tuple[dict[str, Any], int]:
    """Values to widgets in order (skipping control_after_generate settings); also how many do not fit."""
    inputs: dict[str, Any] = {}
    misfits = 0
    position = 0
    for index, spec in enumerate(specs):
        if position >= len(values):
            if spec.name not in linked and not spec.options.get("forceInput"):
                default = spec.default()
                if default is not _NO_DEFAULT:
                    inputs[spec.name] = _wrap_list(default)
            continue
        value = values[position]
        position += 1
        if isinstance(value, list) and spec.type in ("INT", "FLOAT", "BOOLEAN"):
            # a pack's own editor widget saved beside the node's (no number or boolean is a list): skip it
            misfits += 1
            default = spec.default()
            if default is not _NO_DEFAULT and spec.name not in linked:
                inputs[spec.name] = _wrap_list(default)
        else:
            misfits += 0 if spec.fits(value) else 1
            if not spec.options.get("forceInput"):
                # a forceInput slot only holds the place: today's editor makes no widget for it, so an unlinked
                # one sends nothing (the node sees its default), as ComfyUI does with such a file
                inputs[spec.name] = _wrap_list(value)
        following = specs[index + 1] if index + 1 < len(specs) else None
        if position < len(values) and spec.takes_control_value(values[position], following):
            position += 1
    return inputs, misfits


def _widget_specs(info: Mapping[str, Any], converted: Collection[str] = (), *,
                  all_force_input: bool = False) -> Iterator[_WidgetSpec]:
    declared = info.get("input")
    declared = declared if isinstance(declared, Mapping) else {}
    order = info.get("input_order")
    order = order if isinstance(order, Mapping) else {}
    for section in ("required", "optional"):
        specs = declared.get(section)
        if not isinstance(specs, Mapping):
            continue
        listed = order.get(section)
        names = (
            [name for name in listed if isinstance(name, str) and name in specs]
            if isinstance(listed, list)
            else []
        )
        names += [name for name in specs if name not in names]
        for name in names:
            spec = _widget_spec(name, specs[name], all_force_input or name in converted)
            if spec is not None:
                yield spec


def _widget_spec(name: object, raw: object, converted: bool = False) -> _WidgetSpec | None:
    """A widget is a built-in value type or a combo; `forceInput` makes it a socket, unless the saving editor
    still made it a widget (then the node's input carries a `widget` marker)."""
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(name, str) or not isinstance(raw, list | tuple) or not raw:
        return None
    input_type = raw[0]
    options = raw[1] if len(raw) > 1 and isinstance(raw[1], Mapping) else {}
    is_widget = isinstance(input_type, list | tuple) or (
        isinstance(input_type, str) and input_type in WIDGET_TYPES
    )
    if options.get("forceInput") and not converted:
        return None
    return _WidgetSpec(name, input_type, options) if is_widget else None


def _combo_options(input_type: object, options: Mapping[str, Any]) -> Sequence[object]:
    if isinstance(input_type, list | tuple):
        return input_type
    listed = options.get("options")
    return listed if isinstance(listed, list | tuple) else ()


def _display_name(info: Mapping[str, Any] | None, class_type: str) -> str:
    name = info.get("display_name") if info is not None else None
    return name if isinstance(name, str) and name else class_type


def _wrap_list(value: Any) -> Any:
    """A bare list in an API prompt means a link; list values travel as {"__value__": [...]} instead."""
    return {"__value__": value} if isinstance(value, list) else value


# --- bypass ----------------------------------------------------------------------------------------------------


def _bypass_input_index(node: _Node, slot: int, want: str) -> int | None:
    """The input a bypassed node passes to a consumer of output `slot` that wants type `want`."""
    inputs = node.inputs
    if not inputs:
        return None
    if want in ("*", ""):
        return slot if slot < len(inputs) else 0
    output_type = node.output_types[slot] if slot < len(node.output_types) else "*"

    def fits(candidate: _Input) -> bool:
        return _types_connect(candidate.type, output_type) and _types_connect(candidate.type, want)

    if slot < len(inputs) and fits(inputs[slot]):
        return slot
    exact = next((i for i, candidate in enumerate(inputs) if candidate.type == want), None)
    if exact is not None:
        return exact
    return next((i for i, candidate in enumerate(inputs) if fits(candidate)), None)


def _types_connect(a: str, b: str) -> bool:
    """LiteGraph's rule: "*" or "" match anything; otherwise any shared name of comma-separated type lists."""
    if a in ("*", "") or b in ("*", "") or a == b:
        return True
    return bool(set(a.lower().split(",")) & set(b.lower().split(",")))
