"""A built workflow in the editor's (UI) format, laid out so that a person can read it.

The inverse of `graph.ui_format`: widget values are written positionally in INPUT_TYPES order (with the
`control_after_generate` slot the editor keeps after seed-like integers), sockets and linked widgets appear as
inputs, and links carry their socket type. Nodes are placed in columns by their distance from the sources (left
to right, in the order they were written within a column); groups are drawn around their members. Positions a
loaded file already had are kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from partyflow.nodes.protocol import InputSpec

if TYPE_CHECKING:
    from partyflow.builder.workflow import NodeHandle, Workflow

COLUMN_GAP, ROW_GAP, ORIGIN = 80, 40, (40.0, 80.0)
NODE_WIDTH, TITLE_HEIGHT, SLOT_HEIGHT, WIDGET_HEIGHT = 320, 30, 22, 26
GROUP_PADDING, GROUP_TITLE = 20, 40
SEED_NAMES = frozenset({"seed", "noise_seed"})
LIST_SHAPE = 6  # the editor's grid-shaped slot marks an output that is a list


def to_ui(workflow: Workflow) -> dict[str, Any]:
    from partyflow.builder.workflow import Output, widget_default

    handles = workflow.nodes
    ui_ids = _ui_ids(handles)
    links: list[list[Any]] = []
    out_links: dict[tuple[str, int], list[int]] = {}
    nodes = []
    for handle in handles:
        inputs, widgets = [], []
        for spec in handle.definition.inputs.values():
            value = handle.inputs.get(spec.name)
            linked = isinstance(value, Output)
            if linked:
                link_id = len(links) + 1
                links.append([link_id, ui_ids[value.node.id], value.index, ui_ids[handle.id], len(inputs), value.type])
                out_links.setdefault((value.node.id, value.index), []).append(link_id)
            if spec.is_widget:
                widgets.append(widget_default(spec) if linked or spec.name not in handle.inputs else value)
                if _has_control_slot(spec):
                    widgets.append("fixed")
            if linked or not spec.is_widget:
                entry: dict[str, Any] = {"name": spec.name, "type": _socket(spec), "link": link_id if linked else None}
                if spec.is_widget:
                    entry["widget"] = {"name": spec.name}
                inputs.append(entry)
        nodes.append({"id": ui_ids[handle.id], "type": handle.class_type, "inputs": inputs,
                      "widgets_values": widgets, "_handle": handle})
    for node in nodes:
        handle = node.pop("_handle")
        node["outputs"] = [_output(o.name, o.type, out_links.get((handle.id, o.index)), o.index,
                                   handle.definition.output_is_list[o.index]
                                   if o.index < len(handle.definition.output_is_list) else False)
                           for o in handle.outputs]
        node.update(mode=0, properties={"Node name for S&R": handle.class_type}, flags={})
        if handle.title:
            node["title"] = handle.title
    boxes = _layout(workflow, handles)
    for order, (node, handle) in enumerate(zip(nodes, handles, strict=True)):
        node["pos"], node["size"] = list(boxes[handle.id][:2]), list(boxes[handle.id][2:])
        node["order"] = order
    return {
        "last_node_id": max((n["id"] for n in nodes), default=0),
        "last_link_id": len(links),
        "nodes": nodes,
        "links": links,
        "groups": _groups(workflow, handles, boxes),
        "config": {},
        "extra": dict(workflow.extra),
        "version": 0.4,
    }


def _ui_ids(handles: list[NodeHandle]) -> dict[str, int]:
    """The editor's node ids are integers: numeric ids stay, others get the next free numbers."""
    ids = {h.id: int(h.id) for h in handles if h.id.isdecimal()}
    free = max(ids.values(), default=0) + 1
    for handle in handles:
        if handle.id not in ids:
            ids[handle.id] = free
            free += 1
    return ids


def _socket(spec: InputSpec) -> str:
    return "COMBO" if spec.type == "COMBO" else spec.type


def _has_control_slot(spec: InputSpec) -> bool:
    return bool(spec.options.get("control_after_generate")) or (spec.type == "INT" and spec.name in SEED_NAMES)


def _output(name: str, kind: str, links: list[int] | None, index: int, is_list: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "type": kind, "links": links, "slot_index": index}
    if is_list:
        entry["shape"] = LIST_SHAPE
    return entry


def _size(handle: NodeHandle) -> tuple[float, float]:
    sockets = sum(1 for s in handle.definition.inputs.values() if not s.is_widget)
    widgets = sum(1 for s in handle.definition.inputs.values() if s.is_widget)
    rows = max(sockets, len(handle.outputs))
    return float(NODE_WIDTH), float(TITLE_HEIGHT + SLOT_HEIGHT * rows + WIDGET_HEIGHT * widgets + 10)


def _layout(workflow: Workflow, handles: list[NodeHandle]) -> dict[str, tuple[float, float, float, float]]:
    """x, y, width, height per node: kept from a loaded file, else by column (longest path from a source)."""
    from partyflow.builder.workflow import Output

    depth = _depths(handles, Output)
    columns: dict[int, list[NodeHandle]] = {}
    for handle in handles:
        columns.setdefault(depth[handle.id], []).append(handle)
    boxes: dict[str, tuple[float, float, float, float]] = {}
    x = ORIGIN[0]
    for column in sorted(columns):
        y, width = ORIGIN[1], 0.0
        for handle in columns[column]:
            w, h = _size(handle)
            boxes[handle.id] = (x, y, w, h)
            y += h + ROW_GAP + (GROUP_TITLE if handle.group else 0)
            width = max(width, w)
        x += width + COLUMN_GAP
    for handle in handles:
        kept = workflow.layout.get(handle.id)
        if kept and _pair(kept.get("pos")):
            size = kept.get("size") if _pair(kept.get("size")) else boxes[handle.id][2:]
            boxes[handle.id] = (*kept["pos"], *size)  # type: ignore[assignment]
    return boxes


def _depths(handles: list[NodeHandle], output_type: type) -> dict[str, int]:
    """Longest distance from a source per node, iteratively (a chain may be thousands of nodes long); the
    builder refuses cycles, so a node's sources are always finished before it."""
    depth: dict[str, int] = {}
    for root in handles:
        stack = [(root, False)]
        while stack:
            node, sources_done = stack.pop()
            if node.id in depth:
                continue
            sources = [v.node for v in node.inputs.values() if isinstance(v, output_type)]
            if sources_done:
                depth[node.id] = 1 + max((depth.get(s.id, 0) for s in sources), default=-1)
            else:
                stack.append((node, True))
                stack.extend((s, False) for s in sources if s.id not in depth)
    return depth


def _pair(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)


def _groups(workflow: Workflow, handles: list[NodeHandle],
            boxes: dict[str, tuple[float, float, float, float]]) -> list[dict[str, Any]]:
    groups = []
    for title, options in workflow.groups.items():
        members = [boxes[h.id] for h in handles if h.group == title]
        if members:
            left = min(b[0] for b in members) - GROUP_PADDING
            top = min(b[1] for b in members) - GROUP_TITLE - GROUP_PADDING
            right = max(b[0] + b[2] for b in members) + GROUP_PADDING
            bottom = max(b[1] + b[3] for b in members) + GROUP_PADDING
            bounding = [left, top, right - left, bottom - top]
        elif _box(options.get("bounding")):
            bounding = list(options["bounding"])
        else:
            continue
        group: dict[str, Any] = {"title": title, "bounding": bounding}
        if options.get("color"):
            group["color"] = options["color"]
        groups.append(group)
    return groups


def _box(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 4
