"""`nodes doctor` for a ComfyUI target: start that ComfyUI headless in the OS sandbox and read its log per pack.

A pack's health in ComfyUI depends on ComfyUI itself (its modules, its Python, the other packs loaded before it),
so the only faithful check is ComfyUI's own start-up. A small stdlib-only launcher (run by ComfyUI's Python) starts
`main.py --cpu --disable-auto-launch --listen 127.0.0.1 --port <free> --disable-api-nodes` (ComfyUI's paid-API
nodes are built in, not packs, and cost seconds to import), passes its log through, and once ComfyUI
says it serves, reads `/object_info` (which node classes each pack registered) and stops it with SIGINT (SIGKILL
after a grace period). All of it runs in `partyflow.security.sandbox`: its own network namespace (loopback is
private to it), the install and its Python visible read-only, the install's user/ folder (partyflow's own state,
ComfyUI-Manager's files, users' data) not visible at all; user, input, output and temp folders and the database are
throwaway ones; a wall-clock limit bounds the whole run. A pack that installs or writes at import changes nothing.
The log is parsed for ComfyUI's messages: `Cannot import <path> module for custom nodes: <error>` (after the
traceback) and the `<seconds> seconds (IMPORT FAILED): <path>` lines of its "Import times for custom nodes" block.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from partyflow.manager.comfyui_target import ComfyUITarget
from partyflow.manager.dependencies import DependencyError, installed_packages, missing_requirements
from partyflow.manager.doctor import PackHealth
from partyflow.manager.errors import ManagerError

__all__ = ["ComfyUILog", "check_comfyui", "diagnose_comfyui", "parse_log"]

_TIMES = re.compile(r"^\s*(\d+(?:\.\d+)?) seconds( \(IMPORT FAILED\))?: (.+?)\s*$")
_CANNOT = re.compile(r"^Cannot import (.+?) module for custom nodes: (.*)$")
_NO_MODULE = re.compile(r"No module named '([^']+)'")
_OBJECT_INFO = "PARTYFLOW-OBJECT-INFO "
_SMOKE = "PARTYFLOW-SMOKE "
_LAUNCHER = r"""
import json, os, signal, subprocess, sys, threading, time, urllib.error, urllib.request
port, marker, smoke_marker, workflow, argv = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
url = "http://127.0.0.1:%s" % port
child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
modules = None


def smoke(path):
    # queue the workflow (API format) and follow /history until ComfyUI reports it done or failed
    body = json.dumps({"prompt": json.load(open(path)), "client_id": "partyflow-health"}).encode()
    request = urllib.request.Request(url + "/prompt", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as reply:
            prompt_id = json.load(reply)["prompt_id"]
    except urllib.error.HTTPError as exc:
        try:
            data = json.loads(exc.read())
            error = data.get("error", {})
            nodes = data.get("node_errors") or {}
            detail = "; ".join("node %s (%s): %s" % (k, v.get("class_type"), ", ".join(
                e.get("details") or e.get("message", "") for e in v.get("errors", []))) for k, v in nodes.items())
            message = (error.get("message") or "refused") + (": " + detail if detail else "")
        except Exception:
            message = "HTTP %s" % exc.code
        return {"ok": False, "status": "invalid", "error": "ComfyUI refused the workflow: " + message}
    while True:
        with urllib.request.urlopen(url + "/history/" + prompt_id, timeout=60) as reply:
            entry = json.load(reply).get(prompt_id)
        status = (entry or {}).get("status") or {}
        if status.get("completed") or status.get("status_str") == "error":
            break
        time.sleep(0.1)
    if status.get("status_str") == "success":
        return {"ok": True, "status": "success", "prompt_id": prompt_id}
    error = "failed"
    for event, data in status.get("messages", []):
        if event == "execution_error":
            error = "node %s (%s): %s" % (data.get("node_id"), data.get("node_type"), data.get("exception_message"))
    return {"ok": False, "status": "error", "prompt_id": prompt_id, "error": error}


def drain():
    for raw in child.stdout:
        sys.stderr.buffer.write(raw)


for raw in child.stdout:
    sys.stderr.buffer.write(raw)
    if b"To see the GUI go to:" in raw and modules is None:
        sys.stderr.flush()
        try:
            with urllib.request.urlopen(url + "/object_info", timeout=120) as reply:
                info = json.load(reply)
            modules = {}
            for name, entry in info.items():
                modules.setdefault(str(entry.get("python_module", "")), []).append(name)
        except Exception as exc:
            modules = {"": [], "error": [repr(exc)]}
        sys.stdout.write("\n" + marker + json.dumps(modules) + "\n")
        sys.stdout.flush()
        if workflow:
            pump = threading.Thread(target=drain, daemon=True)
            pump.start()  # ComfyUI keeps logging while the workflow runs: its pipe must not fill up
            try:
                outcome = smoke(workflow)
            except Exception as exc:
                outcome = {"ok": False, "status": "error", "error": "running the workflow: %r" % (exc,)}
            sys.stdout.write("\n" + smoke_marker + json.dumps(outcome) + "\n")
            sys.stdout.flush()
        child.send_signal(signal.SIGINT)
        break
try:
    child.wait(timeout=15)
except subprocess.TimeoutExpired:
    child.kill()
    child.wait()
sys.exit(0 if modules is not None else (child.returncode or 1))
"""


@dataclass(frozen=True)
class ComfyUILog:
    """What ComfyUI's start-up said about custom node folders: {path: (seconds, ok)} and {path: error text}."""

    times: dict[str, tuple[float, bool]]
    errors: dict[str, str]
    finished: bool  # the import-times block was printed: every custom node was tried


def parse_log(text: str) -> ComfyUILog:
    times: dict[str, tuple[float, bool]] = {}
    errors: dict[str, str] = {}
    lines = text.splitlines()
    in_block = finished = False
    for index, line in enumerate(lines):
        if line.strip() == "Import times for custom nodes:":
            in_block = finished = True
            continue
        if in_block:
            match = _TIMES.match(line)
            if match:
                times[match.group(3)] = (float(match.group(1)), match.group(2) is None)
                continue
            in_block = False
        cannot = _CANNOT.match(line.strip())
        if cannot:
            start = index
            while start > 0 and not lines[start - 1].startswith("Traceback (most recent call last)"):
                start -= 1
                if index - start > 200:
                    start = index
                    break
            trace = lines[max(start - 1, 0):index] if start != index else []
            errors[cannot.group(1)] = "\n".join([*trace[-40:], cannot.group(2)]).strip()
    return ComfyUILog(times, errors, finished)


def diagnose_comfyui(home: Any, *, timeout: float = 300.0) -> list[PackHealth]:
    """Start the target's ComfyUI once in the sandbox and report each enabled pack from its log. Refuses
    (ManagerError) without the OS sandbox."""
    return check_comfyui(home, timeout=timeout)[0]


def check_comfyui(home: Any, *, timeout: float = 300.0,
                  workflow: Mapping[str, Any] | None = None) -> tuple[list[PackHealth], dict[str, Any] | None]:
    """`diagnose_comfyui`, and with `workflow` (API format, as ComfyUI's /prompt takes it) also run it in that
    same ComfyUI once it serves: the outcome is {ok, status, error?} (None without a workflow). A promotion's
    health check, so ComfyUI starts once for both."""
    from partyflow.manager.packs import PackManager
    from partyflow.security.sandbox import SandboxUnavailable, check

    try:
        check()
    except SandboxUnavailable as exc:
        raise ManagerError(f"nodes doctor starts ComfyUI only inside the OS sandbox, so that a pack's import-time "
                           f"installs or writes change nothing; {exc}", user_error=True) from None
    target: ComfyUITarget = home.target
    packs = [p for p in PackManager(home).installed() if p.enabled]
    log, modules, exit_code, timed_out, smoke = _start(target, protected=(home.root, *_settings(home)),
                                                        timeout=timeout, workflow=workflow)
    if workflow is not None and smoke is None:
        smoke = {"ok": False, "status": "not run", "error": "ComfyUI did not serve within the time limit" if
                 timed_out else f"ComfyUI stopped before the workflow could run (exit {exit_code})"}
    installed = installed_packages(str(target.python))
    by_path = {str(Path(p).resolve()) if Path(p).is_absolute() else p: v for p, v in log.times.items()}
    errors = {str(Path(p).resolve()) if Path(p).is_absolute() else p: v for p, v in log.errors.items()}
    results = []
    for pack in packs:
        key = str(pack.path.resolve())
        try:
            missing = tuple(missing_requirements(pack.path, installed)) if pack.path.is_dir() else ()
        except DependencyError as exc:
            missing = (f"(requirements unreadable: {exc})",)
        timing = by_path.get(key)
        if timing is not None and timing[1] and key not in errors:
            hints = (f"declared but not installed: {', '.join(missing)}",) if missing else ()
            node_types = tuple(sorted(modules.get(f"custom_nodes.{pack.path.stem if pack.single_file else pack.path.name}",
                                                  ())))
            results.append(PackHealth(pack.name, True, True, seconds=timing[0], node_types=node_types,
                                      missing_requirements=missing, hints=hints))
            continue
        if timing is None and key not in errors:
            why = ("ComfyUI did not finish loading custom nodes within the time limit" if timed_out else
                   f"ComfyUI stopped before loading custom nodes (exit {exit_code})" if not log.finished else
                   "ComfyUI did not load it")
            results.append(PackHealth(pack.name, True, False, error=why, missing_requirements=missing,
                                      hints=("run ComfyUI by hand to see its whole log",)))
            continue
        error = errors.get(key) or "ComfyUI reports IMPORT FAILED"
        module = _NO_MODULE.search(error)
        installable = [m for m in missing if not m.startswith("(requirements unreadable")]
        hints: list[str] = []
        if installable:
            hints.append(f"run 'partyflow --comfyui {target.root} nodes fix {pack.name}' to install: "
                         f"{', '.join(installable)}")
        elif module:
            hints.append(f"the pack imports {module.group(1)!r} but does not declare it in requirements.txt")
        results.append(PackHealth(pack.name, True, False, seconds=timing[0] if timing else None,
                                  error=error, missing_module=module.group(1) if module else None,
                                  missing_requirements=missing, hints=tuple(hints)))
    return results, smoke


def _settings(home: Any) -> tuple[Path, ...]:
    settings = getattr(home, "settings_home", None)
    return (Path(settings),) if settings is not None else ()


def _interpreter(python: Path) -> dict[str, Any]:
    script = ("import json, os, sys; print(json.dumps({'prefix': sys.prefix, 'base': sys.base_prefix, "
              "'exe': os.path.realpath(sys.executable), 'path': [p for p in sys.path if p]}))")
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise ManagerError(f"cannot inspect ComfyUI's Python {python}: {done.stderr.strip()[-300:]}")
    return json.loads(done.stdout)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(target: ComfyUITarget, *, protected: tuple[Path, ...], timeout: float,
           workflow: Mapping[str, Any] | None = None,
           ) -> tuple[ComfyUILog, dict[str, list[str]], int, bool, dict[str, Any] | None]:
    from partyflow.security.sandbox import SCRATCH, Limits, SandboxError, SandboxSpec, run_sync

    info = _interpreter(target.python)
    python_paths = {Path(info["prefix"]), Path(info["base"]), Path(info["exe"]).parent}
    python_paths |= {Path(p) for p in info["path"] if Path(p).is_dir()}
    # the install without its user/ folder (partyflow's state, keys, ComfyUI-Manager's files, users' data)
    install = [entry for entry in target.root.iterdir() if entry.name != "user"]
    guarded = {p.resolve() for p in protected} | {(target.root / "user").resolve()}
    read_only = [p for p in python_paths if not any(g == p.resolve() or g in p.resolve().parents
                                                     for g in guarded)] + install
    limits = Limits(wall_seconds=timeout, cpu_seconds=int(timeout) * 4 + 30, memory_bytes=None,
                    file_bytes=256 * 1024 * 1024, open_files=4096, output_bytes=8 * 1024 * 1024, processes=True)
    with tempfile.TemporaryDirectory(prefix="partyflow-comfyui-doctor-") as scratch:
        for folder in ("user", "input", "output", "temp", "frontend"):
            (Path(scratch) / folder).mkdir()
        (Path(scratch) / "frontend" / "index.html").write_text("<!doctype html><title>doctor</title>\n")
        if workflow is not None:
            (Path(scratch) / "smoke.json").write_text(json.dumps(workflow), encoding="utf-8")
        spec = SandboxSpec(scratch=Path(scratch), limits=limits, proc=True, protected=tuple(guarded),
                           read_only=tuple(read_only),
                           env={"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"})
        port = str(_free_port())
        argv = [str(target.python), "-c", _LAUNCHER, port, _OBJECT_INFO, _SMOKE,
                f"{SCRATCH}/smoke.json" if workflow is not None else "",
                str(target.python), str(target.root / "main.py"), "--cpu", "--disable-auto-launch",
                "--listen", "127.0.0.1", "--port", port, "--disable-api-nodes", "--user-directory", f"{SCRATCH}/user", "--input-directory", f"{SCRATCH}/input",
                "--output-directory", f"{SCRATCH}/output", "--temp-directory", f"{SCRATCH}/temp",
                "--front-end-root", f"{SCRATCH}/frontend", "--database-url", "sqlite:///:memory:"]
        try:
            done = run_sync(argv, spec)
        except SandboxError as exc:
            raise ManagerError(f"cannot start ComfyUI in the sandbox: {exc}") from None
    stdout = done.stdout.decode("utf-8", "replace")
    modules: dict[str, list[str]] = {}
    smoke: dict[str, Any] | None = None
    for line in stdout.splitlines():
        if line.startswith(_OBJECT_INFO):
            modules = json.loads(line[len(_OBJECT_INFO):])
        elif line.startswith(_SMOKE):
            smoke = json.loads(line[len(_SMOKE):])
    text = done.stderr.decode("utf-8", "replace") + "\n" + stdout
    return parse_log(text), modules, done.exit_code, done.timed_out, smoke
