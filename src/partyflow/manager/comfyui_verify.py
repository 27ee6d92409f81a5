"""Check that a staged pack imports in a ComfyUI target, with ComfyUI's interpreter, before it is activated.

partyflow's own check (`verify.verify_pack`) loads a pack into partyflow's host, with partyflow's Python. For a
ComfyUI target that is the wrong place: the pack's dependencies were installed into ComfyUI's environment, and the
pack imports ComfyUI's modules (`folder_paths`, `comfy.*`, `nodes`). So the check runs ComfyUI's interpreter with
the ComfyUI root first on `sys.path` and imports the pack the way ComfyUI's loader does (by file location, under its
folder name), then requires `NODE_CLASS_MAPPINGS` (or the v3 `comfy_entrypoint`). The child script uses only the
standard library, since partyflow is not installed in ComfyUI's environment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from partyflow.manager.comfyui_target import ComfyUITarget
from partyflow.manager.verify import Verified, VerifyError

__all__ = ["verify_in_comfyui"]

_MARKER = "PARTYFLOW-COMFYUI-VERIFY "
_CHILD = r"""
import importlib.util, json, os, sys, time, traceback
root, path, marker = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, root)
out = os.dup(1)
start = time.perf_counter()
result = {"ok": False, "error": None, "node_types": []}
try:
    name = os.path.basename(path)
    if os.path.isfile(path):
        name = os.path.splitext(name)[0]
        spec = importlib.util.spec_from_file_location(name, path)
    else:
        spec = importlib.util.spec_from_file_location(name, os.path.join(path, "__init__.py"))
        sys.path.insert(1, os.path.dirname(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    mappings = getattr(module, "NODE_CLASS_MAPPINGS", None)
    if isinstance(mappings, dict):
        result.update(ok=True, node_types=sorted(str(k) for k in mappings))
    elif hasattr(module, "comfy_entrypoint"):
        result.update(ok=True)
    else:
        result["error"] = "the pack exports neither NODE_CLASS_MAPPINGS nor comfy_entrypoint"
except BaseException as exc:
    lines = traceback.format_exception_only(type(exc), exc)
    result["error"] = "".join(lines).strip()[-2000:]
result["seconds"] = time.perf_counter() - start
os.write(out, ("\n" + marker + json.dumps(result) + "\n").encode())
os._exit(0)
"""


def verify_in_comfyui(path: Path, target: ComfyUITarget, *, timeout: float = 120.0) -> Verified:
    """Raise VerifyError unless the pack at `path` imports in `target` and exports nodes."""
    name = path.stem if path.is_file() else path.name
    if path.is_dir() and not (path / "__init__.py").is_file():
        raise VerifyError(f"{name}: not a node pack: the folder has no __init__.py", pack=name,
                          hint="a pack is a folder with __init__.py exporting NODE_CLASS_MAPPINGS, or one .py file")
    if path.is_file() and path.suffix != ".py":
        raise VerifyError(f"{name}: not a node pack: {path.name} is not a .py file", pack=name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    process = subprocess.Popen([str(target.python), "-c", _CHILD, str(target.root), str(path.resolve()), _MARKER],
                               cwd=target.root, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise VerifyError(f"{name}: importing the pack in ComfyUI's Python did not finish within {timeout:g} "
                          "seconds", pack=name) from None
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    lines = [line for line in stdout.splitlines() if line.startswith(_MARKER)]
    if not lines:
        tail = (stderr.strip().splitlines() or ["(no output)"])[-1]
        raise VerifyError(f"{name}: importing the pack killed ComfyUI's Python (exit {process.returncode}): {tail}",
                          pack=name)
    result = json.loads(lines[-1][len(_MARKER):])
    if not result["ok"]:
        raise VerifyError(f"{name}: the pack does not load in {target.root}: {result['error']}", pack=name)
    return Verified(tuple(result["node_types"]), float(result["seconds"]))
