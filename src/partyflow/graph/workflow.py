"""Reading workflow documents (either ComfyUI format) into API-format prompts, and applying overrides."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from partyflow.graph.errors import WorkflowFormatError
from partyflow.graph.ui_format import EDITOR_ONLY_TYPES, is_ui_workflow, ui_to_api

MAX_WORKFLOW_BYTES = 64 * 1024 * 1024

ObjectInfo = Mapping[str, Mapping[str, Any]]


def read_workflow_file(path: str | Path) -> Any:
    """Parse a JSON workflow file; errors name the file, line and column."""
    file = Path(path)
    if file.is_dir():
        raise WorkflowFormatError("this is a directory; give the path of a workflow JSON file", where=str(file))
    if not file.is_file():
        raise WorkflowFormatError("no such workflow file" if not file.exists() else "not a regular file",
                                  where=str(file))
    if file.stat().st_size > MAX_WORKFLOW_BYTES:
        raise WorkflowFormatError(f"file is larger than {MAX_WORKFLOW_BYTES // (1024 * 1024)} MiB", where=str(file))
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise WorkflowFormatError(f"not UTF-8 text ({exc.reason})", where=str(file)) from None
    except json.JSONDecodeError as exc:
        raise WorkflowFormatError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                                  where=str(file)) from None


def to_api_prompt(document: Any, object_info: Callable[[], ObjectInfo]) -> dict[str, Any]:
    """An API-format prompt from an API prompt, a `{"prompt": ...}` request body, or a UI workflow.

    The result is not validated; `object_info` is only called for UI workflows.
    """
    if isinstance(document, Mapping) and is_ui_workflow(document):
        return ui_to_api(document, object_info())
    if isinstance(document, Mapping) and isinstance(document.get("prompt"), Mapping) and "class_type" not in document:
        return dict(document["prompt"])
    if isinstance(document, Mapping):
        return dict(document)
    raise WorkflowFormatError(f"a workflow is a JSON object, got {type(document).__name__}",
                              hint="use an API-format prompt or a workflow saved by the editor")


def uninstalled_nodes(document: Any, known: Collection[str]) -> list[tuple[str, str, int]]:
    """(node id, type, number of widget values) for each node of a UI workflow whose type is not installed.

    Conversion cannot name such a node's widget values (their names come from the class), so they are left out
    of the API prompt; callers warn about that instead of losing the values silently. Editor-only helpers and
    subgraph instances (whose type is a subgraph id defined in the same file) are not nodes to install.
    """
    if not (isinstance(document, Mapping) and is_ui_workflow(document)):
        return []
    definitions = document.get("definitions")
    subgraphs = definitions.get("subgraphs") if isinstance(definitions, Mapping) else None
    graphs = [document, *(g for g in subgraphs or () if isinstance(g, Mapping))]
    subgraph_ids = {str(g.get("id")) for g in graphs[1:]}
    missing = []
    for graph in graphs:
        for node in graph.get("nodes") or ():
            if not isinstance(node, Mapping):
                continue
            kind = str(node.get("type", ""))
            if kind in known or kind in subgraph_ids or kind in EDITOR_ONLY_TYPES:
                continue
            values = node.get("widgets_values")
            count = len(values) if isinstance(values, (list, Mapping)) else 0
            missing.append((str(node.get("id")), kind, count))
    return missing


def parse_override(text: str) -> tuple[str, str, Any]:
    """`NODE.INPUT=VALUE` -> (node, input, value); VALUE is JSON when it parses as JSON, else a string."""
    target, sep, raw = text.partition("=")
    node, dot, name = target.rpartition(".")
    if not sep or not dot or not node or not name:
        raise WorkflowFormatError(f"override {text!r} must look like NODE.INPUT=VALUE (for example 3.seed=42)")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return node, name, value


InputNames = Callable[[str], Collection[str] | None]


def apply_overrides(prompt: dict[str, Any], overrides: Sequence[str],
                    input_names: InputNames | None = None) -> dict[str, Any]:
    """Set node inputs by node id or by a unique node title; returns a new prompt.

    `input_names(class_type)` lists the inputs a class declares (None: unknown class, left to validation), so
    a mistyped input name is refused here: a node ignores inputs it does not declare, and a silently ignored
    `--set` would run the workflow with the value the user meant to change.
    """
    result = {k: {**v, "inputs": dict(v.get("inputs", {}))} if isinstance(v, Mapping) else v for k, v in prompt.items()}
    for text in overrides:
        node, name, value = parse_override(text)
        node_id = _find_node(result, node)
        _check_input_name(result[node_id], node_id, name, input_names)
        result[node_id]["inputs"][name] = value
    return result


def _check_input_name(node: Mapping[str, Any], node_id: str, name: str, input_names: InputNames | None) -> None:
    class_type = node.get("class_type")
    declared = input_names(class_type) if input_names is not None and isinstance(class_type, str) else None
    if declared is None or name in declared or name in node.get("inputs", {}):
        return
    raise WorkflowFormatError(f"node {node_id} ({class_type}) has no input {name!r}",
                              hint=f"its inputs: {', '.join(declared) or 'none'}")


def _find_node(prompt: Mapping[str, Any], key: str) -> str:
    if key in prompt:
        return key
    titled = [nid for nid, node in prompt.items()
              if isinstance(node, Mapping) and isinstance(node.get("_meta"), Mapping) and node["_meta"].get("title") == key]
    if len(titled) == 1:
        return titled[0]
    if titled:
        raise WorkflowFormatError(f"several nodes are titled {key!r} ({', '.join(titled)}); use a node id")
    raise WorkflowFormatError(f"no node with id or title {key!r}", hint=f"node ids: {', '.join(list(prompt)[:20])}")
