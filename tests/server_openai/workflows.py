"""UI-format workflows (as the editor saves them) published as chat models, for the OpenAI endpoint tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def ui_node(node_id: int, class_type: str, widgets: list[Any], inputs: list[tuple[str, str, int | None]] = (),
            outputs: list[tuple[str, str, list[int]]] = (), title: str | None = None) -> dict[str, Any]:
    node = {
        "id": node_id, "type": class_type, "pos": [node_id * 320, 100], "size": [300, 120], "mode": 0,
        "inputs": [{"name": n, "type": t, "link": link} for n, t, link in inputs],
        "outputs": [{"name": n, "type": t, "links": links, "slot_index": i} for i, (n, t, links) in enumerate(outputs)],
        "properties": {"Node name for S&R": class_type}, "widgets_values": widgets,
    }
    if title:
        node["title"] = title
    return node


def ui_workflow(nodes: list[dict[str, Any]], links: list[list[Any]], publish: dict[str, Any] | None) -> dict[str, Any]:
    extra: dict[str, Any] = {"ds": {"scale": 1, "offset": [0, 0]}}
    if publish is not None:
        extra["partyflow"] = {"publish": publish}
    return {"last_node_id": max(n["id"] for n in nodes), "last_link_id": len(links), "nodes": nodes,
            "links": links, "groups": [], "config": {}, "extra": extra, "version": 0.4}


def echo_workflow(model: str = "echo") -> dict[str, Any]:
    """A template that quotes the user's message into Show Text: core nodes only."""
    nodes = [
        ui_node(1, "TextTemplate", ["you said: {a}"], outputs=[("text", "STRING", [1])]),
        ui_node(2, "DisplayText", [], inputs=[("text", "STRING", 1)], outputs=[("text", "STRING", [])]),
    ]
    return ui_workflow(nodes, [[1, 1, 0, 2, 0, "STRING"]],
                       {"model": model, "input": {"node": 1, "input": "a"}, "output": {"node": 2}})


def chat_workflow(model: str = "assistant", provider: str = "loop") -> dict[str, Any]:
    """API Model Loader -> LLM Chat -> Show Text; the chat node's history input takes earlier turns."""
    nodes = [
        ui_node(1, "APIModelLoader", [provider, ""], outputs=[("model", "LLM_MODEL", [1])]),
        ui_node(2, "LLMChat", ["You are terse.", "", 0.0, 0, -1, False, "", True, False],
                inputs=[("model", "LLM_MODEL", 1), ("history", "LLM_HISTORY", None), ("tools", "TOOL", None)],
                outputs=[("text", "STRING", [2]), ("history", "LLM_HISTORY", []), ("tool_calls", "JSON", []),
                         ("usage", "JSON", [])]),
        ui_node(3, "DisplayText", [], inputs=[("text", "STRING", 2)], outputs=[("text", "STRING", [])]),
    ]
    links = [[1, 1, 0, 2, 0, "LLM_MODEL"], [2, 2, 0, 3, 0, "STRING"]]
    return ui_workflow(nodes, links, {"model": model, "input": {"node": 2, "input": "user_prompt"},
                                      "output": {"node": 3}})


def save(home: Path, name: str, workflow: dict[str, Any], user: str = "default") -> Path:
    path = home / "user" / user / "workflows" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(workflow), encoding="utf-8")
    return path
