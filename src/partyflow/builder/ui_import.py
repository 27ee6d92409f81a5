"""An existing workflow file as a builder, to edit in Python and save again.

API prompts and UI workflows both load; a UI file's node ids, titles, positions, groups and `extra` (where the
publish marker lives) are kept so that saving it again changes only what the code changed. Values are taken as
the file has them, unchecked: an existing workflow may be mid-edit, and validation reports its problems when it
runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from partyflow.graph.ui_format import is_ui_workflow
from partyflow.nodes.values import is_link

if TYPE_CHECKING:
    from partyflow.builder.workflow import Workflow


def load(workflow: Workflow, document: Any) -> Workflow:
    engine = workflow._engine
    prompt = engine.load_workflow(document)
    ui_nodes = _ui_nodes(document)
    for node_id, node in prompt.items():
        ui = ui_nodes.get(node_id, {})
        title = ui.get("title") if ui else (node.get("_meta") or {}).get("title")
        workflow.node(node["class_type"], _id=node_id, _title=title if isinstance(title, str) and title else None)
        if ui.get("pos") is not None:
            workflow.layout[node_id] = {"pos": ui.get("pos"), "size": ui.get("size")}
    for node_id, node in prompt.items():
        handle = workflow.handle(node_id)
        for name, value in (node.get("inputs") or {}).items():
            if is_link(value) and str(value[0]) in workflow:
                handle.inputs[name] = workflow.handle(str(value[0]))[int(value[1])]
            elif isinstance(value, Mapping) and set(value) == {"__value__"}:
                handle.inputs[name] = value["__value__"]
            elif name in handle.definition.inputs:
                handle.inputs[name] = value
    if is_ui_workflow(document):
        _groups(workflow, document)
        if isinstance(document.get("extra"), Mapping):
            workflow.extra = dict(document["extra"])
    return workflow


def _ui_nodes(document: Any) -> dict[str, Mapping[str, Any]]:
    if not is_ui_workflow(document):
        return {}
    return {str(n.get("id")): n for n in document["nodes"] if isinstance(n, Mapping)}


def _groups(workflow: Workflow, document: Mapping[str, Any]) -> None:
    """A group's members are the nodes whose top-left corner lies inside it (how the editor moves them)."""
    for group in document.get("groups") or ():
        if not isinstance(group, Mapping) or not isinstance(group.get("title"), str):
            continue
        box = group.get("bounding")
        workflow.groups[group["title"]] = {k: group[k] for k in ("bounding", "color") if k in group}
        if not (isinstance(box, list) and len(box) == 4):
            continue
        left, top, width, height = box
        for node_id, place in workflow.layout.items():
            x, y = place["pos"][:2]
            if left <= x <= left + width and top <= y <= top + height:
                workflow.handle(node_id).group = group["title"]
