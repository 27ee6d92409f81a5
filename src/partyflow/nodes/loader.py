"""Import node packs from custom_nodes directories, each on its own, the way ComfyUI does.

A pack is a folder with an `__init__.py` (or a single `.py` file) exporting `NODE_CLASS_MAPPINGS`. Each is
imported as `custom_nodes.<pack>` with its engine's `host_context` active, in a daemon thread so that a pack
that hangs is abandoned after a timeout. Whatever a pack does wrong at import time (raise, `sys.exit`, hang,
export no or broken mappings) becomes a `PackLoadResult` blaming that pack; it never stops the others.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import importlib.util
import inspect
import logging
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from partyflow.nodes.comfy_compat import install_compat_modules
from partyflow.nodes.host import HostContext, host_context
from partyflow.nodes.protocol import NodeDefinitionError

__all__ = ["PackLoadResult", "format_import_times", "load_module_pack", "load_pack", "load_packs"]

logger = logging.getLogger(__name__)

PACKAGE = "custom_nodes"


@dataclass(frozen=True)
class PackLoadResult:
    """What importing one pack gave: its node types, or why it failed, and how long it took."""

    name: str
    path: Path | None
    module_name: str
    ok: bool
    seconds: float
    node_types: tuple[str, ...] = ()
    error: str | None = None
    traceback: str | None = None
    web_directory: Path | None = None
    timed_out: bool = False


class _PackError(Exception):
    """A pack that imported but does not offer nodes the way the interface says."""


@dataclass
class _Attempt:
    module: types.ModuleType | None = None
    error: BaseException | None = None
    timed_out: bool = False


# --- public API ----------------------------------------------------------------------------------------------

def load_packs(directories: Sequence[Path], host: HostContext, *, timeout: float = 120.0,
               load_elsewhere: Callable[[Path], PackLoadResult | None] | None = None) -> list[PackLoadResult]:
    """Load every pack in `directories` (missing directories are skipped) and log the import times.

    `load_elsewhere` (isolated packs, issue 6 item 8) may take a pack and return its result; None means "not
    mine" and the pack is imported in-process as usual.
    """
    results = [_load_one(path, host, timeout, load_elsewhere) for path in _pack_paths(directories)]
    if results:
        logger.info("\n%s\n", format_import_times(results))
    return results


# --- isolated packs (issue 6, item 8): a hook decides per pack; see partyflow.nodes.isolation -----------------
def _load_one(path: Path, host: HostContext, timeout: float,
              load_elsewhere: Callable[[Path], PackLoadResult | None] | None) -> PackLoadResult:
    result = load_elsewhere(path) if load_elsewhere is not None else None
    return result if result is not None else load_pack(path, host, timeout=timeout)
# --- end isolated packs ------------------------------------------------------------------------------------------


def load_pack(path: Path, host: HostContext, *, timeout: float = 120.0) -> PackLoadResult:
    """Import the pack at `path` into `host.registry` as `custom_nodes.<pack>`."""
    path = Path(path).absolute()
    name = path.stem if path.is_file() else path.name
    module_name = _free_module_name(name)
    started = time.perf_counter()
    if path.is_dir() and not (path / "__init__.py").is_file():
        return _failed(name, path, module_name, started, _PackError("not a pack: the folder has no __init__.py"))
    attempt = _import_with_timeout(lambda: _exec_pack(path, module_name), host, timeout, name)
    return _finish(attempt, host, name=name, path=path, module_name=module_name,
                   python_module=f"{PACKAGE}.{name}", started=started, timeout=timeout)


def load_module_pack(module_name: str, host: HostContext, *, timeout: float = 120.0) -> PackLoadResult:
    """Import one of our built-in packs (an importable module such as `partyflow.builtin_nodes.core`).

    Python imports it once per process; later engines register the classes of that same module.
    """
    started = time.perf_counter()
    attempt = _import_with_timeout(lambda: importlib.import_module(module_name), host, timeout, module_name)
    path = _module_path(attempt.module)
    return _finish(attempt, host, name=module_name, path=path, module_name=module_name,
                   python_module=module_name, started=started, timeout=timeout)


def format_import_times(results: Sequence[PackLoadResult]) -> str:
    """ComfyUI's "Import times for custom nodes:" block, fastest first, failures marked."""
    lines = ["Import times for custom nodes:"]
    for result in sorted(results, key=lambda r: r.seconds):
        marker = " (IMPORT FAILED)" if not result.ok else ""
        lines.append(f"{result.seconds:6.1f} seconds{marker}: {result.path or result.module_name}")
    return "\n".join(lines)


# --- finding packs -------------------------------------------------------------------------------------------

def _pack_paths(directories: Sequence[Path]) -> list[Path]:
    seen: set[Path] = set()
    found: list[Path] = []
    for directory in map(Path, directories):
        if not directory.is_dir() or directory.resolve() in seen:
            continue
        seen.add(directory.resolve())
        found.extend(entry for entry in sorted(directory.iterdir()) if _is_pack_candidate(entry))
    return found


def _is_pack_candidate(entry: Path) -> bool:
    """ComfyUI's rules: folders and `.py` files, minus hidden, disabled and cache entries."""
    if entry.name.startswith(".") or entry.name == "__pycache__" or entry.name.endswith(".disabled"):
        return False
    return entry.is_dir() or entry.suffix == ".py"


def _free_module_name(name: str) -> str:
    """`custom_nodes.<pack>`, or a unique alias when another engine already imported a pack of that name.

    Each engine executes its packs afresh, so routes and model folders a pack registers at import time land
    in the engine importing it. Dots become `_x_` (as in ComfyUI) so the name stays one level deep.
    """
    base = f"{PACKAGE}.{name.replace('.', '_x_')}"
    candidate, number = base, 1
    while candidate in sys.modules:
        number += 1
        candidate = f"{base}__{number}"
    return candidate


# --- importing -----------------------------------------------------------------------------------------------

def _import_with_timeout(load: Callable[[], types.ModuleType], host: HostContext, timeout: float,
                         label: str) -> _Attempt:
    """Run `load` in a daemon thread under `host`'s context; give up waiting after `timeout` seconds."""
    install_compat_modules()
    attempt = _Attempt()

    def run() -> None:
        try:
            attempt.module = load()
        except BaseException as exc:  # SystemExit and KeyboardInterrupt from a pack are its failures too
            attempt.error = exc

    with host_context(host):
        context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(run,), name=f"partyflow-import:{label}", daemon=True)
    thread.start()
    thread.join(timeout)
    attempt.timed_out = thread.is_alive()
    return attempt


def _exec_pack(path: Path, module_name: str) -> types.ModuleType:
    """Execute the pack as a fresh module; relative imports resolve inside its folder."""
    _ensure_package()
    source = path / "__init__.py" if path.is_dir() else path
    spec = importlib.util.spec_from_file_location(
        module_name, source, submodule_search_locations=[str(path)] if path.is_dir() else None)
    if spec is None or spec.loader is None:
        raise _PackError(f"cannot import {source}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
        entrypoint = getattr(module, "comfy_entrypoint", None)
        if callable(entrypoint):
            module.__partyflow_v3_nodes__ = _v3_nodes(entrypoint)  # type: ignore[attr-defined]
    except BaseException:
        _forget(module_name)
        raise
    setattr(sys.modules[PACKAGE], module_name.rpartition(".")[2], module)
    return module


def _v3_nodes(entrypoint: Callable[[], Any]) -> dict[str, type]:
    """ComfyUI's V3 registration: `comfy_entrypoint()` gives an extension whose `get_node_list()` names the nodes.

    Runs in the import thread (which has no event loop), so the coroutines are simply driven to completion.
    """

    async def collect() -> list[Any]:
        extension = entrypoint()
        if inspect.isawaitable(extension):
            extension = await extension
        on_load = getattr(extension, "on_load", None)
        if callable(on_load):
            loaded = on_load()
            if inspect.isawaitable(loaded):
                await loaded
        nodes = extension.get_node_list()
        return list(await nodes if inspect.isawaitable(nodes) else nodes)

    found: dict[str, type] = {}
    for cls in asyncio.run(collect()):
        schema = cls.GET_SCHEMA() if hasattr(cls, "GET_SCHEMA") else None
        node_id = getattr(schema, "node_id", None)
        if not isinstance(node_id, str) or not node_id:
            raise _PackError(f"comfy_entrypoint listed {cls!r}, which has no schema node_id")
        found[node_id] = cls
    return found


def _ensure_package() -> None:
    """A `custom_nodes` namespace parent, so `import custom_nodes.<pack>` and pickling find loaded packs."""
    if PACKAGE not in sys.modules:
        package = types.ModuleType(PACKAGE, "Node packs loaded by partyflow (filled in by the loader).")
        package.__path__ = []
        sys.modules[PACKAGE] = package


def _forget(module_name: str) -> None:
    """Drop a failed pack and the submodules it imported, so nothing half-initialised stays importable."""
    for name in [n for n in sys.modules if n == module_name or n.startswith(module_name + ".")]:
        del sys.modules[name]


def _module_path(module: types.ModuleType | None) -> Path | None:
    file = getattr(module, "__file__", None)
    if file is None:
        return None
    path = Path(file)
    return path.parent if path.name == "__init__.py" else path


# --- registering ---------------------------------------------------------------------------------------------

def _finish(attempt: _Attempt, host: HostContext, *, name: str, path: Path | None, module_name: str,
            python_module: str, started: float, timeout: float) -> PackLoadResult:
    if attempt.timed_out:
        error = TimeoutError(f"import did not finish within {timeout:g} seconds; the pack was abandoned (raise "
                             "pack_import_timeout under [engine] in config.toml, or PARTYFLOW_PACK_IMPORT_TIMEOUT, "
                             "if it only needs longer)")
        return _failed(name, path, module_name, started, error, timed_out=True)
    if attempt.error is not None or attempt.module is None:
        return _failed(name, path, module_name, started, attempt.error or _PackError("import gave no module"))
    module = attempt.module
    web_directory = _web_directory(module, path, name)
    if web_directory is not None:
        host.registry.web_directories[name] = web_directory
    try:
        node_types = _register(module, host, name, python_module)
    except (_PackError, NodeDefinitionError) as exc:
        return _failed(name, path, module_name, started, exc, web_directory=web_directory)
    return PackLoadResult(name=name, path=path, module_name=module_name, ok=True,
                          seconds=time.perf_counter() - started, node_types=node_types,
                          web_directory=web_directory)


def _register(module: types.ModuleType, host: HostContext, name: str, python_module: str) -> tuple[str, ...]:
    """Check the whole mapping first, so a broken pack registers nothing."""
    mappings = getattr(module, "NODE_CLASS_MAPPINGS", None)
    v3_nodes: dict[str, type] = getattr(module, "__partyflow_v3_nodes__", None) or {}
    if mappings is None and not v3_nodes:
        hint = " (its comfy_entrypoint listed no nodes)" if hasattr(module, "comfy_entrypoint") else ""
        raise _PackError(f"the pack exports no NODE_CLASS_MAPPINGS{hint}")
    if mappings is None:
        mappings = {}
    if not isinstance(mappings, Mapping):
        raise _PackError(f"NODE_CLASS_MAPPINGS must be a dict of class_type -> class, "
                         f"got {type(mappings).__name__}")
    for class_type, cls in mappings.items():
        if not isinstance(class_type, str) or not class_type or not isinstance(cls, type):
            raise _PackError(f"NODE_CLASS_MAPPINGS[{class_type!r}] must map a non-empty name to a class, "
                             f"got {cls!r}")
    combined = {**mappings, **v3_nodes}
    declared = getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None)
    display_names = dict(declared) if isinstance(declared, Mapping) else {}
    for class_type, cls in combined.items():
        if class_type not in display_names and hasattr(cls, "GET_SCHEMA"):  # V3 nodes name themselves
            try:
                title = cls.DISPLAY_NAME
            except Exception:  # a broken schema shows up when the class is read; no title is no harm
                title = None
            if title:
                display_names[class_type] = title
    added = host.registry.register_mappings(combined, display_names, pack=name, python_module=python_module)
    return tuple(added)


def _web_directory(module: types.ModuleType, path: Path | None, name: str) -> Path | None:
    """WEB_DIRECTORY resolved against the pack's folder; refused if it points outside the pack."""
    declared: Any = getattr(module, "WEB_DIRECTORY", None)
    if declared is None or path is None:
        return None
    root = (path if path.is_dir() else path.parent).resolve()
    web = (root / str(declared)).resolve()
    if root != web and root not in web.parents:
        logger.warning("pack %s: WEB_DIRECTORY %r points outside the pack; not served", name, declared)
        return None
    return web if web.is_dir() else None


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= 200 else line[:197] + "..."


def _failed(name: str, path: Path | None, module_name: str, started: float, error: BaseException, *,
            timed_out: bool = False, web_directory: Path | None = None) -> PackLoadResult:
    if isinstance(error, (_PackError, TimeoutError)):  # our own verdicts: the message says it all
        described, trace = str(error), None
    else:
        described = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        trace = "".join(traceback.format_exception(error))
    logger.warning("Cannot import %s module for custom nodes: %s (details: partyflow nodes doctor)",
                   path or module_name, _first_line(described))
    if trace:
        logger.debug("import of %s failed:\n%s", path or module_name, trace)
    return PackLoadResult(name=name, path=path, module_name=module_name, ok=False,
                          seconds=time.perf_counter() - started, error=described, traceback=trace,
                          web_directory=web_directory, timed_out=timed_out)
