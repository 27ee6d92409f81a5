"""The measuring side of `nodes bench`: runs inside the OS sandbox, imports one pack, times its nodes.

Run as `python -m partyflow.manager.bench_child PACK_PATH TIMEOUT REPEAT [WORKFLOW]` (by `manager.bench`, inside
`security.sandbox`); prints one JSON line after `MARKER`. Everything the pack does happens in this throwaway
process, under a throwaway home in the sandbox's scratch folder, so a benchmark changes nothing on the machine.

Import cost is measured around `nodes.loader.load_pack` after partyflow's own engine modules are imported, so the
figures are the pack's: wall time, resident memory added (VmRSS before and after) and the process's peak RSS.
Nodes then run through the real executor (an `Engine` with caching off), one single-node prompt per class with
inputs generated from INPUT_TYPES defaults, or a whole sample workflow whose per-node timings are collected.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MARKER = "PARTYFLOW-BENCH-RESULT "
PROGRESS = "PARTYFLOW-BENCH-PROGRESS "  # import result, node started, node row: what a timeout leaves to report
_HIDDEN = {"UNIQUE_ID": "1", "PROMPT": None, "EXTRA_PNGINFO": None, "DYNPROMPT": None, "AUTH_TOKEN_COMFY_ORG": None,
           "API_KEY_COMFY_ORG": None}


def _rss() -> int | None:
    """Resident memory of this process now (bytes), from /proc; None where there is none."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _peak_rss() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def sample_inputs(definition: Any) -> tuple[dict[str, Any] | None, str | None]:
    """Inputs for one run of a node class from its declared defaults: (inputs, None), or (None, why not).

    Widgets take their `default`, else the lower bound (`min`) or the type's zero; a combo takes its first
    choice. An input of a connection type (IMAGE, MODEL, ...) has no value to generate: the node is skipped."""
    inputs: dict[str, Any] = {}
    for spec in definition.inputs.values():
        if spec.section != "required":
            continue
        value, reason = _value(spec)
        if reason is not None:
            return None, reason
        inputs[spec.name] = value
    return inputs, None


def _value(spec: Any) -> tuple[Any, str | None]:
    options: Mapping[str, Any] = spec.options or {}
    if spec.choices is not None or spec.type == "COMBO":
        choices = list(spec.choices or options.get("options") or ())
        if "default" in options:
            return options["default"], None
        if choices:
            return choices[0], None
        return None, f"input {spec.name!r} is a combo with no choices"
    if options.get("forceInput"):
        return None, f"input {spec.name!r} ({spec.type}) only accepts a connection"
    if "default" in options:
        return options["default"], None
    zero = {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}
    if spec.type in zero:
        low = options.get("min")
        return (low if isinstance(low, int | float) and spec.type in ("INT", "FLOAT") else zero[spec.type]), None
    return None, f"input {spec.name!r} of type {spec.type} has no default to generate"


def _summary(samples: list[float]) -> dict[str, float]:
    return {"min": min(samples), "median": statistics.median(samples), "mean": statistics.fmean(samples),
            "max": max(samples), "total": sum(samples)}


def _bench_generated(engine: Any, node_types: tuple[str, ...], repeat: int,
                     emit: Any = None) -> list[dict[str, Any]]:
    from partyflow.nodes.host import host_context

    emit = emit or (lambda kind, data: None)
    rows = []
    for class_type in node_types:
        emit("start", {"class_type": class_type})
        row: dict[str, Any] = {"class_type": class_type, "status": "ok", "runs": 0, "seconds": None,
                               "reason": None}
        try:
            with host_context(engine.host):
                definition = engine.registry.definition(class_type)
            inputs, why = sample_inputs(definition)
        except Exception as exc:  # noqa: BLE001 - a broken INPUT_TYPES is this node's result, not the bench's
            inputs, why = None, f"INPUT_TYPES failed: {type(exc).__name__}: {exc}"
        if inputs is None:
            row.update(status="skipped", reason=why)
            rows.append(row)
            emit("node", row)
            continue
        samples = []
        for _ in range(repeat):
            try:
                result = engine.run({"1": {"class_type": class_type, "inputs": inputs}}, outputs=["1"])
            except Exception as exc:  # noqa: BLE001 - validation refused the generated inputs
                row.update(status="skipped", reason=f"generated inputs were refused: {_first_line(exc)}")
                break
            if not result.ok:
                failure = result.error
                row.update(status="error", reason=_first_line(failure.describe() if failure else result.status))
                break
            samples.append(float(result.timings.get("1", 0.0)))
        if samples and row["status"] == "ok":
            row.update(runs=len(samples), seconds=_summary(samples))
        rows.append(row)
        emit("node", row)
    return rows


def _bench_workflow(engine: Any, workflow: Path, node_types: tuple[str, ...], repeat: int) -> list[dict[str, Any]]:
    """Run the whole workflow `repeat` times; per-node timings, grouped by class (the pack's classes first)."""
    prompt = engine.load_workflow(str(workflow))
    by_class: dict[str, list[float]] = {}
    errors: dict[str, str] = {}
    for _ in range(repeat):
        result = engine.run(prompt, outputs=list(prompt))  # every node, output node or not
        for node_id, seconds in result.timings.items():
            class_type = str(prompt.get(node_id, {}).get("class_type", node_id))
            by_class.setdefault(class_type, []).append(float(seconds))
        if not result.ok:
            failure = result.error
            where = failure.class_type if failure else "workflow"
            errors[where] = _first_line(failure.describe() if failure else result.status)
            break
    used = {str(node.get("class_type")) for node in prompt.values() if isinstance(node, Mapping)}
    rows = []
    for class_type in [*node_types, *sorted(used - set(node_types))]:
        row: dict[str, Any] = {"class_type": class_type, "status": "ok", "runs": 0, "seconds": None, "reason": None,
                               "in_pack": class_type in node_types}
        if class_type in errors:
            row.update(status="error", reason=errors[class_type])
        elif class_type in by_class:
            row.update(runs=len(by_class[class_type]), seconds=_summary(by_class[class_type]))
        elif class_type in used:
            row.update(status="error", reason="the workflow did not run this node")
        else:
            row.update(status="skipped", reason="not used by the sample workflow")
        rows.append(row)
    return rows


def _first_line(value: Any) -> str:
    text = str(value).strip()
    return (text.splitlines() or [""])[0][:500]


def main(argv: list[str]) -> None:
    from partyflow.engine.engine import Engine
    from partyflow.nodes.loader import load_module_pack, load_pack

    path, timeout, repeat = Path(argv[0]), float(argv[1]), max(int(argv[2]), 1)
    workflow = Path(argv[3]) if len(argv) > 3 and argv[3] else None
    out_fd = os.dup(1)  # the pack may replace sys.stdout; the result goes to the real one

    def emit(kind: str, data: Any) -> None:
        os.write(out_fd, ("\n" + PROGRESS + json.dumps({"kind": kind, "data": data}) + "\n").encode("utf-8"))

    home = Path.cwd() / "home"
    engine = Engine(home, cache="none", load_custom_nodes=False, builtin_packs=())
    rss_before, started = _rss(), time.perf_counter()
    loaded = load_pack(path, engine.host, timeout=timeout)
    wall = time.perf_counter() - started
    rss_after = _rss()
    payload: dict[str, Any] = {
        "import": {"ok": loaded.ok, "seconds": loaded.seconds if loaded.ok else wall, "error": loaded.error,
                   "rss_bytes": (rss_after - rss_before) if rss_after is not None and rss_before is not None
                   else None, "peak_rss_bytes": _peak_rss(), "node_types": list(loaded.node_types)},
        "nodes": [], "source": "generated", "workflow_error": None}
    emit("import", payload["import"])
    if loaded.ok:
        try:
            if workflow is not None:
                for builtin in ("core", "comfy"):  # sample workflows may feed the pack from ComfyUI's core nodes
                    load_module_pack(f"partyflow.builtin_nodes.{builtin}", engine.host, timeout=timeout)
                payload["source"] = "workflow"
                payload["nodes"] = _bench_workflow(engine, workflow, loaded.node_types, repeat)
            else:
                payload["nodes"] = _bench_generated(engine, loaded.node_types, repeat, emit)
        except Exception as exc:  # noqa: BLE001 - a workflow that cannot run is reported, then generated inputs
            payload["workflow_error"] = f"{type(exc).__name__}: {_first_line(exc)}"
            payload["source"] = "generated"
            payload["nodes"] = _bench_generated(engine, loaded.node_types, repeat, emit)
    os.write(out_fd, ("\n" + MARKER + json.dumps(payload) + "\n").encode("utf-8"))
    os._exit(0)  # threads a pack left running must not keep the benchmark alive


if __name__ == "__main__":
    main(sys.argv[1:])
