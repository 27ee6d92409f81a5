"""`nodes bench`: how long a pack takes to import, how much memory it adds, and how fast each of its nodes runs.

The measuring happens in `bench_child`, a separate process inside the OS sandbox, exactly as `nodes doctor`
imports packs (`manager.verify`): no network, nothing writable but a throwaway folder, a throwaway home. A pack's
import-time side effects and its nodes' work change nothing here, and a pack that hangs is killed at the timeout.
Without the sandbox, bench refuses to run anything.

Node timings come from a sample workflow (`--workflow FILE`, else the pack's own `example_workflows/*.json`, the
folder ComfyUI reads custom nodes' example workflows from), or, without one, from a single-node prompt per class
whose inputs are generated from INPUT_TYPES defaults; a node whose inputs cannot be generated (an IMAGE input, say)
is listed as skipped with the reason. The JSON (`BenchReport.to_dict`, schema `partyflow-bench/1`) is meant for CI.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from partyflow.config import Home
from partyflow.manager.errors import ManagerError

__all__ = ["SCHEMA", "BenchReport", "bench_pack", "sample_workflow"]

SCHEMA = "partyflow-bench/1"
MAX_REPEAT = 1000


@dataclass
class BenchReport:
    """One pack's benchmark. `ok`: it imported, no node failed, and a workflow asked for ran."""

    pack: str
    path: str
    repeat: int
    source: str                          # generated | workflow
    workflow: str | None
    import_result: dict[str, Any]
    nodes: list[dict[str, Any]] = field(default_factory=list)
    workflow_error: str | None = None
    python: str = f"{sys.version_info.major}.{sys.version_info.minor}"

    @property
    def ok(self) -> bool:
        return bool(self.import_result.get("ok")) and not self.workflow_error \
            and not any(n["status"] == "error" for n in self.nodes)

    def to_dict(self) -> dict[str, Any]:
        counts = {s: sum(1 for n in self.nodes if n["status"] == s) for s in ("ok", "skipped", "error")}
        return {"schema": SCHEMA, "pack": self.pack, "path": self.path, "ok": self.ok, "repeat": self.repeat,
                "python": self.python, "sandboxed": True, "source": self.source, "workflow": self.workflow,
                "workflow_error": self.workflow_error, "import": self.import_result, "nodes": self.nodes,
                "counts": counts}


def sample_workflow(pack: Path) -> Path | None:
    """The pack's own sample workflow: the first `example_workflows/*.json` (ComfyUI's folder for them)."""
    folder = pack / "example_workflows" if pack.is_dir() else None
    if folder is None or not folder.is_dir():
        return None
    found = sorted(p for p in folder.glob("*.json") if p.is_file())
    return found[0] if found else None


def _locate(home: Home, pack: str) -> tuple[str, Path]:
    """An installed pack's name, or a path to a pack folder or .py file (bench before installing)."""
    candidate = Path(pack).expanduser()
    if ("/" in pack or pack.startswith(".")) and candidate.exists():
        resolved = candidate.resolve()
        return (resolved.stem if resolved.is_file() else resolved.name), resolved
    from partyflow.manager.packs import PackManager

    info = PackManager(home).info(pack)
    return info.name, info.path


def bench_pack(home: Home, pack: str, *, workflow: Path | None = None, repeat: int = 3,
               timeout: float = 300.0) -> BenchReport:
    """Benchmark one pack in the sandbox. Raises ManagerError for an unknown pack, a missing workflow file, a
    bad `repeat`, or no sandbox; a pack that fails to import or a node that fails is a report with `ok` false."""
    from partyflow.security.sandbox import SandboxUnavailable, check

    if not 1 <= repeat <= MAX_REPEAT:
        raise ManagerError(f"--repeat must be between 1 and {MAX_REPEAT}, got {repeat}", user_error=True)
    name, path = _locate(home, pack)
    if workflow is not None:
        workflow = workflow.expanduser().resolve()
        if not workflow.is_file():
            raise ManagerError(f"no such workflow file: {workflow}", user_error=True)
    chosen = workflow or sample_workflow(path)
    try:
        check()
    except SandboxUnavailable as exc:
        raise ManagerError(f"nodes bench runs packs only inside the OS sandbox; {exc}", user_error=True) from None
    payload = _run_child(path, name, home, chosen, repeat, timeout)
    failed = payload.get("workflow_error")
    own_example = workflow is None and chosen is not None  # its failure is reported, generated inputs stood in
    report = BenchReport(pack=name, path=str(path), repeat=repeat, source=str(payload.get("source", "generated")),
                         workflow=str(chosen) if chosen else None, import_result=payload["import"],
                         nodes=list(payload.get("nodes", [])), workflow_error=None if own_example else failed)
    if failed and own_example:
        report.import_result = {**report.import_result, "sample_workflow_error": failed}
    return report


def _run_child(path: Path, name: str, home: Home, workflow: Path | None, repeat: int,
               timeout: float) -> dict[str, Any]:
    import partyflow
    from partyflow.manager.bench_child import MARKER
    from partyflow.security.sandbox import Limits, SandboxSpec, python_binds, run_sync

    source = Path(partyflow.__file__).resolve().parent.parent  # the child imports this very partyflow
    limits = Limits(wall_seconds=timeout + 5, cpu_seconds=int(timeout) + 5, memory_bytes=None,
                    file_bytes=256 * 1024 * 1024, open_files=1024, output_bytes=4 * 1024 * 1024, processes=True)
    binds = [path, *([workflow] if workflow is not None else [])]
    with tempfile.TemporaryDirectory(prefix="partyflow-bench-") as scratch:
        spec = SandboxSpec(scratch=Path(scratch), limits=limits, proc=True, protected=(home.root,),
                           read_only=(*python_binds(site_packages=True, protected=(home.root,)), source, *binds),
                           env={"PYTHONPATH": str(source), "PYTHONDONTWRITEBYTECODE": "1"})
        done = run_sync([sys.executable, "-m", "partyflow.manager.bench_child", str(path), str(min(timeout, 120.0)),
                         str(repeat), str(workflow) if workflow is not None else ""], spec)
    stdout = done.stdout.decode("utf-8", "replace")
    lines = [line for line in stdout.splitlines() if line.startswith(MARKER)]
    if lines:
        return dict(json.loads(lines[-1][len(MARKER):]))
    if done.timed_out:
        why = f"the benchmark did not finish within {timeout:g} seconds"
    else:
        tail = (done.stderr.decode("utf-8", "replace").strip().splitlines() or ["(no output)"])[-1]
        why = f"the pack killed the benchmark process (exit {done.exit_code}): {tail}"
    return _partial(stdout, f"{name}: {why}", workflow is not None)


def _partial(stdout: str, why: str, with_workflow: bool) -> dict[str, Any]:
    """What a benchmark that was killed got to: its import result and the nodes it finished; the node it was
    running is the one blamed. Without even an import result, the import is what failed."""
    from partyflow.manager.bench_child import PROGRESS

    imported: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = []
    running: str | None = None
    for line in stdout.splitlines():
        if not line.startswith(PROGRESS):
            continue
        try:
            event = json.loads(line[len(PROGRESS):])
            kind, data = event["kind"], event["data"]
        except (ValueError, KeyError, TypeError):
            continue
        if kind == "import":
            imported = dict(data)
        elif kind == "start":
            running = str(data.get("class_type"))
        elif kind == "node":
            rows.append(dict(data))
            running = None
    if imported is None or not imported.get("ok"):
        return {"import": {**(imported or {"seconds": None, "rss_bytes": None, "peak_rss_bytes": None,
                                           "node_types": []}), "ok": False, "error": why},
                "nodes": [], "source": "generated"}
    if with_workflow:
        return {"import": imported, "nodes": rows, "source": "workflow", "workflow_error": why}
    if running is not None:
        rows.append({"class_type": running, "status": "error", "runs": 0, "seconds": None, "reason": why})
    return {"import": imported, "nodes": rows, "source": "generated"}
