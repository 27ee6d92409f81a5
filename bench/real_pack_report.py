"""How well a real ComfyUI pack runs on partyflow: classes loaded, shipped workflows validating, chat workflows run.

Not a timing benchmark: a compatibility report over a pack checkout the user provides (the pack's code is never
part of this repository). Run it with a Python whose environment has the pack's requirements installed:

    python bench/real_pack_report.py --home /tmp/partyhome \\
        --workflows custom_nodes/comfyui_LLM_party/workflow custom_nodes/comfyui_LLM_party/workflow_api \\
        --expect-classes 208 --chat-loader LLM_api_loader

Chat workflows (those with a `--chat-loader` node) run against a scripted OpenAI-compatible server on
127.0.0.1 (tests/support/openai_server.py): the loader's base_url, api_key and model_name are pointed at it.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

from partyflow.engine.engine import Engine
from partyflow.graph.ui_format import is_ui_workflow, ui_to_api

ROOT = Path(__file__).resolve().parents[1]


def _openai_server_class() -> Any:
    """tests/support/openai_server.py by its path: a pack's environment may hold an unrelated `tests` package."""
    spec = importlib.util.spec_from_file_location("partyflow_bench_openai_server",
                                                  ROOT / "tests" / "support" / "openai_server.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.OpenAIServer


_NOT_FOUND = re.compile(r"Node type '([^']+)' not found")


def _documents(folders: list[Path]) -> list[tuple[str, Any]]:
    found = []
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            try:
                found.append((f"{folder.name}/{path.name}", json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError) as exc:
                found.append((f"{folder.name}/{path.name}", exc))
    return found


def _validate(engine: Engine, documents: list[tuple[str, Any]]) -> dict[str, str]:
    verdicts: dict[str, str] = {}
    for name, document in documents:
        if isinstance(document, Exception):
            verdicts[name] = f"unreadable: {document}"
            continue
        try:
            result = engine.validate(document)
        except Exception as exc:  # a conversion error is a verdict too
            verdicts[name] = f"error: {type(exc).__name__}: {exc}"
            continue
        verdicts[name] = "ok" if result.ok else "; ".join(result.summary())
    return verdicts


def _run_chats(engine: Engine, documents: list[tuple[str, Any]], loader: str) -> dict[str, str]:
    outcomes: dict[str, str] = {}
    info = engine.object_info()
    with _openai_server_class()() as server:
        for name, document in documents:
            if isinstance(document, Exception) or not is_ui_workflow(document):
                continue
            if loader not in {node.get("type") for node in document.get("nodes", [])}:
                continue
            try:
                prompt = ui_to_api(document, info)
            except Exception as exc:
                outcomes[name] = f"convert: {exc}"
                continue
            for node in prompt.values():
                if node["class_type"] == loader:
                    node["inputs"].update(base_url=server.url, api_key="sk-test", model_name="tiny-chat")
            if not engine.validate(prompt).ok:
                outcomes[name] = "invalid"
                continue
            before = len(server.requests)
            result = engine.run(prompt, strict=False, extra_data={"extra_pnginfo": {"workflow": document}})
            calls = len(server.requests) - before
            outcomes[name] = (f"ran ({calls} chat calls)" if result.ok and calls
                              else "ran without calling the model" if result.ok
                              else f"failed in {result.error.class_type}: {result.error.message}"[:200])
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a partyflow home with the pack in custom_nodes/")
    parser.add_argument("--pack", help="the pack's folder name (default: the only custom pack)")
    parser.add_argument("--workflows", type=Path, nargs="*", default=[], help="folders of shipped workflows "
                        "(relative to the home or absolute)")
    parser.add_argument("--expect-classes", type=int, help="how many classes the pack maps")
    parser.add_argument("--chat-loader", help="class_type of the pack's OpenAI-compatible model loader")
    args = parser.parse_args()

    engine = Engine(args.home, cache="none")
    try:
        packs = [r for r in engine.pack_results if r.path is not None and args.home in r.path.parents]
        pack = next((r for r in packs if args.pack in (None, r.name)), None)
        if pack is None:
            print("no such pack in", args.home / "custom_nodes")
            return 1
        listed = sum(1 for class_type in pack.node_types if engine.object_info(class_type))
        expected = f" of {args.expect_classes}" if args.expect_classes else ""
        print(f"pack {pack.name}: imported={pack.ok} in {pack.seconds:.1f}s; classes loaded {len(pack.node_types)}"
              f"{expected}; listed in object_info {listed}" + (f"; error: {pack.error}" if pack.error else ""))
        documents = _documents([w if w.is_absolute() else args.home / w for w in args.workflows])
        verdicts = _validate(engine, documents)
        missing = collections.Counter(t for v in verdicts.values() for t in set(_NOT_FOUND.findall(v)))
        print(f"workflows validating: {sum(v == 'ok' for v in verdicts.values())} of {len(verdicts)}")
        for name, verdict in verdicts.items():
            if verdict != "ok":
                print(f"  {name}: {verdict[:160]}")
        if missing:
            print("  node types not found:", dict(missing.most_common()))
        if args.chat_loader:
            outcomes = _run_chats(engine, documents, args.chat_loader)
            ran = sum(v.startswith("ran (") for v in outcomes.values())
            print(f"chat workflows run against the loopback server: {ran} of {len(outcomes)}")
            for name, outcome in outcomes.items():
                print(f"  {name}: {outcome}")
    finally:
        engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
