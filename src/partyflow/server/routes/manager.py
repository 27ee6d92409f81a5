"""ComfyUI-Manager's `/v2/...` routes (the frontend's manager dialog), backed by `partyflow.manager`.

Why a thin layer: every decision about what a client may do belongs to `partyflow.security.policy`, reached
through a `PackManager(trusted=False, loopback=<listener>)`, so the server, the CLI and the Python API can never
disagree. The routes only translate: they read ComfyUI-Manager's request shapes, ask the policy up front so a
refused request gets a synchronous 403 (and an audit record) instead of a failure buried in the queue history,
and hand accepted work to a single worker thread, because the manager does blocking I/O and runs subprocesses and
two operations on one home must never overlap.

Cross-site requests: every POST here refuses the Content-Types a plain HTML form can send; a JSON body forces the
browser into a CORS preflight this server never answers, so a page on another site cannot drive these routes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from partyflow import __version__
from partyflow.config import ConfigError, Home
from partyflow.manager.audit import AuditLog, current_actor
from partyflow.manager.errors import ManagerError, UnknownPackError
from partyflow.manager.packs import InstalledPack, OperationResult, PackManager
from partyflow.nodes.loader import PackLoadResult
from partyflow.server.access import identity_of
from partyflow.server.context import CONTEXT, context
from partyflow.server.errors import BadJSON, bad_request, json_error, not_found, read_json
from partyflow.server.hub import ClientHub
from partyflow.server.routes import Handler, Route
from partyflow.server.security import is_loopback_name

logger = logging.getLogger("partyflow.server.manager")

FORM_CONTENT_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})
PACK_KINDS = ("install", "uninstall", "update", "enable", "disable", "fix")
RESTORE_KIND = "restore-snapshot"
REMOVE_SNAPSHOT_KIND = "remove-snapshot"
REBOOT_KIND = "reboot"
HISTORY_LIMIT = 1000
DB_MODE = "cache"  # channels are fetched into the home's cache and read from there
_SNAPSHOT_ACTIONS = {RESTORE_KIND: "restoring a snapshot", REMOVE_SNAPSHOT_KIND: "removing a snapshot"}
_SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


# ---- tasks and their queue -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Task:
    """One queued manager action, in ComfyUI-Manager's terms (`ui_id`, `client_id`, `kind`, `params`), plus the
    pack or snapshot it is about (`target`) and who asked (`actor`, for the audit log)."""

    ui_id: str
    client_id: str
    kind: str
    params: dict[str, Any]
    target: str
    actor: str


@dataclass(frozen=True)
class Outcome:
    """ComfyUI-Manager's TaskExecutionStatus: `status_str` is success, skip or error."""

    status_str: str
    result: str
    messages: tuple[str, ...] = ()


class TaskQueue:
    """Pending tasks, the one running, and a bounded history; one worker thread drains it, one task at a time.

    As in ComfyUI-Manager, queued tasks wait for `start()` (the dialog queues a batch, then starts it), and the
    worker exits when the queue is empty. `wait_idle` lets callers (tests, shutdown) wait for that without
    polling on a timer.
    """

    def __init__(self, execute: Callable[[Task], Outcome],
                 notify: Callable[[str, dict[str, Any], str | None], None],
                 installed: Callable[[], dict[str, Any]]) -> None:
        self._execute = execute
        self._notify = notify
        self._installed = installed
        self._cond = threading.Condition()
        self._pending: collections.deque[Task] = collections.deque()
        self._running: Task | None = None
        self._history: dict[str, dict[str, Any]] = {}
        self._thread: threading.Thread | None = None
        self._closed = False

    def put(self, task: Task) -> None:
        with self._cond:
            self._pending.append(task)

    def start(self) -> bool:
        """Start the worker; False when it is already running (ComfyUI-Manager answers 201 then)."""
        with self._cond:
            if self._closed or self._thread is not None:
                return False
            self._thread = threading.Thread(target=self._drain, name="partyflow-manager-tasks", daemon=True)
            self._thread.start()
            return True

    def reset(self) -> int:
        """Drop the pending tasks (the running one finishes: a half-done install would be worse)."""
        with self._cond:
            dropped = len(self._pending)
            self._pending.clear()
            return dropped

    def wait_idle(self, timeout: float) -> bool:
        """Block until no worker runs; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._thread is None, timeout)

    def close(self, timeout: float) -> None:
        """Refuse new starts, drop what is pending and give the running task `timeout` seconds to finish; the
        manager's journal finishes or undoes an operation the process exits in the middle of."""
        with self._cond:
            self._closed = True
            self._pending.clear()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def status(self, client_id: str | None = None) -> dict[str, Any]:
        with self._cond:
            mine = (lambda t: t.client_id == client_id) if client_id else (lambda t: True)
            pending = [t for t in self._pending if mine(t)]
            running = [t for t in (self._running,) if t is not None and mine(t)]
            done = [h for h in self._history.values() if not client_id or h["client_id"] == client_id]
            body = {"total_count": len(pending) + len(running), "done_count": len(done),
                    "in_progress_count": len(running), "pending_count": len(pending),
                    "is_processing": bool(running) if client_id else self._thread is not None}
        return {"client_id": client_id, **body} if client_id else body

    def history(self, *, client_id: str | None = None, ui_id: str | None = None,
                max_items: int | None = None, offset: int = 0) -> dict[str, Any]:
        with self._cond:
            if ui_id is not None:
                return dict(self._history.get(ui_id, {}))
            items = [(k, v) for k, v in self._history.items() if not client_id or v["client_id"] == client_id]
        if max_items is not None and offset < 0:
            offset = max(len(items) - max_items, 0)
        items = items[max(offset, 0):]
        return dict(items[:max_items] if max_items is not None else items)

    def state(self) -> dict[str, Any]:
        """ComfyUI-Manager's TaskStateMessage, sent with every task message so the dialog can redraw at once."""
        with self._cond:
            history = dict(self._history)
            running = [_task_item(t) for t in (self._running,) if t is not None]
            pending = [_task_item(t) for t in self._pending]
        return {"history": history, "running_queue": running, "pending_queue": pending,
                "installed_packs": self._installed()}

    def _drain(self) -> None:
        while True:
            with self._cond:
                if self._closed or not self._pending:
                    self._running = None
                    self._thread = None
                    self._cond.notify_all()
                    break
                task = self._running = self._pending.popleft()
            self._notify("cm-task-started", {"ui_id": task.ui_id, "kind": task.kind, "timestamp": _now(),
                                             "state": self.state()}, task.client_id)
            entry = _history_entry(task, self._execute(task))
            with self._cond:
                self._history[task.ui_id] = entry
                while len(self._history) > HISTORY_LIMIT:
                    self._history.pop(next(iter(self._history)))
                self._running = None
            self._notify("cm-task-completed", {**entry, "state": self.state()}, task.client_id)
        self._notify("cm-queue-status", {"status": "all-done"}, None)


def _task_item(task: Task) -> dict[str, Any]:
    return {"ui_id": task.ui_id, "client_id": task.client_id, "kind": task.kind, "params": task.params}


def _history_entry(task: Task, outcome: Outcome) -> dict[str, Any]:
    """ComfyUI-Manager's TaskHistoryItem."""
    now = _now()
    return {"ui_id": task.ui_id, "client_id": task.client_id, "kind": task.kind, "timestamp": now,
            "result": outcome.result, "batch_id": None, "end_time": now, "params": task.params,
            "status": {"status_str": outcome.status_str, "completed": True, "messages": list(outcome.messages)}}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class BadTask(ValueError):
    """A task body that does not say what to do; answered with a 400."""


# ---- the service: the manager as this server's clients may use it -----------------------------------------

@dataclass
class ManagerService:
    """The manager for one server: its home, whether the listener is loopback (the policy's `Caller`), the task
    queue and where the queue's WebSocket messages go."""

    home: Home
    loopback: bool
    hub: ClientHub
    pack_results: list[PackLoadResult]
    loop: asyncio.AbstractEventLoop | None = None
    security_level: str | None = None  # `partyflow --security-level X serve`; None: env, then config.toml
    queue: TaskQueue = field(init=False)

    def __post_init__(self) -> None:
        self.queue = TaskQueue(self.execute, self.notify, self.installed)

    def packs(self, actor: str | None = None) -> PackManager:
        """An untrusted PackManager: ComfyUI-Manager's whole risk table applies to every call through it."""
        return PackManager(self.home, trusted=False, loopback=self.loopback, actor=actor,
                           security_level=self.security_level)

    def notify(self, kind: str, data: dict[str, Any], client_id: str | None) -> None:
        """Send from the worker thread through the server's loop (the hub is not thread-safe)."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
            loop.call_soon_threadsafe(self.hub.send, {"type": kind, "data": data}, client_id)

    # -- policy ----------------------------------------------------------------------------------------------

    def refusal(self, task: Task) -> Any:
        """The policy's `Decision` when it refuses `task`, else None. Raises UnknownPackError for an install name
        no configured catalog lists (nothing to refuse: there is nothing to install)."""
        manager = self.packs(task.actor)
        policy, caller = manager.policy(), manager.caller()
        if task.kind == "install":
            decision = policy.source(self._origin(task.target), caller)
        elif task.kind in ("uninstall", "update"):
            decision = policy.manage(caller, f"{task.kind} of {task.target}")
        elif task.kind in (RESTORE_KIND, REMOVE_SNAPSHOT_KIND):
            decision = policy.manage(caller, _SNAPSHOT_ACTIONS[task.kind])
        elif task.kind == REBOOT_KIND:
            decision = policy.manage(caller, "restarting the server")
        elif task.kind == "fix":
            decision = policy.pip(caller)  # fix reinstalls the pack's requirements with pip
        else:
            return None
        return None if decision.allowed else decision

    def _origin(self, target: str) -> Any:
        """Where an install target comes from, read exactly as PackManager will read it (`spec_from_text`, then
        the catalogs), so the answer here and the check inside the install cannot differ. A path-like target
        that does not exist is still a path: it gets the policy's refusal, not a "no such file"."""
        from partyflow.manager import catalog
        from partyflow.manager.sources import SourceError, spec_from_text, split_version
        from partyflow.security.policy import Origin

        try:
            spec = spec_from_text(target, bare_names_are_paths=False)  # as PackManager reads it for remote callers
        except SourceError:
            return Origin.PATH
        if spec is not None:
            return Origin.of(spec.kind, catalog=False)
        name, version = split_version(target)
        catalog.load(self.home).find(name, version)
        return Origin.CATALOG

    def audit_refusal(self, task: Task, decision: Any) -> None:
        """A refused request never reaches PackManager, so the refusal is recorded here, in the same log."""
        manager = self.packs(task.actor)
        details = {"via": "server", "caller": manager.caller().label, "security_level": manager.policy().level.value,
                   "params": task.params}
        with AuditLog(self.home) as audit:
            audit.record(task.kind, result="refused", pack=task.target, error=decision.reason, actor=task.actor,
                         details=details)

    # -- running tasks (worker thread) -----------------------------------------------------------------------

    def execute(self, task: Task) -> Outcome:
        """Run one task; never raises (the queue keeps going and the history says what happened)."""
        try:
            return self._run(task)
        except ManagerError as exc:
            return Outcome("error", exc.message, tuple(m for m in (str(exc),) if m))
        except ConfigError as exc:
            return Outcome("error", str(exc), (str(exc),))
        except Exception as exc:  # a bug, not a refusal: logged with its traceback, reported briefly
            logger.exception("manager task %s %s failed", task.kind, task.target)
            return Outcome("error", f"{task.kind} {task.target} failed: {type(exc).__name__}: {exc}")

    def _run(self, task: Task) -> Outcome:
        manager = self.packs(task.actor)
        if task.kind == RESTORE_KIND:
            return self._restore(task, manager)
        if task.kind == "fix":
            from partyflow.manager.doctor import fix

            fix(task.target, self.home)
            return Outcome("success", f"reinstalled the dependencies of {task.target}")
        actions: dict[str, Callable[[str], OperationResult]] = {
            "install": manager.install, "uninstall": manager.uninstall, "update": manager.update,
            "enable": manager.enable, "disable": manager.disable}
        result = actions[task.kind](task.target)
        return Outcome("success" if result.changed else "skip", result.message)

    def _restore(self, task: Task, manager: PackManager) -> Outcome:
        """Packs through the untrusted manager (each install is judged by the policy); Python packages only where
        the policy allows arbitrary pip installs for this caller."""
        from partyflow.manager import snapshots

        path = snapshot_path(self.home, task.target)
        if path is None:
            return Outcome("error", f"no snapshot {task.target!r}")
        with_python = manager.policy().pip(manager.caller()).allowed
        result = snapshots.restore(snapshots.load(path), self.home, python=with_python or None, manager=manager)
        notes = tuple(result.problems) + (() if with_python else
                                         ("Python packages were left as they are: the security level does not "
                                          "allow pip installs for this caller",))
        if result.ok:
            return Outcome("success", f"restored snapshot {task.target}", notes)
        return Outcome("error", f"snapshot {task.target} restored with problems", notes)

    # -- views -----------------------------------------------------------------------------------------------

    def installed(self) -> dict[str, dict[str, Any]]:
        """ComfyUI-Manager's shape: folder name -> {ver, cnr_id, aux_id, enabled}; an enabled copy wins."""
        found: dict[str, dict[str, Any]] = {}
        for pack in self.packs().installed():
            if pack.name in found:
                continue
            record = pack.record
            found[pack.name] = {"ver": _version_of(pack), "cnr_id": (record.catalog or "") if record else "",
                                "aux_id": _aux_id(record.source.location) if record and
                                record.source.kind == "git" else None,
                                "enabled": pack.enabled}
        return found

    def mappings(self) -> dict[str, list[Any]]:
        """extension-node-map.json's shape: pack URL -> [[class names], {title_aux}], from the catalogs' node
        maps and from the packs this server loaded."""
        from partyflow.manager import catalog

        loaded = catalog.load(self.home)
        titles = {url: e.title for e in loaded.entries for url in (e.reference, *e.files)}
        out: dict[str, list[Any]] = {url: [sorted(names), {"title_aux": titles.get(url, url)}]
                                     for url, names in loaded.node_map.nodes.items()}
        for pack in self.packs().installed():
            types = self._loaded_types(pack.name)
            if not types:
                continue
            key = _pack_url(pack, loaded)
            names, meta = out.setdefault(key, [[], {"title_aux": pack.name}])
            out[key] = [sorted(set(names) | set(types)), meta]
        return out

    def _loaded_types(self, name: str) -> tuple[str, ...]:
        custom = self.home.custom_nodes
        for result in self.pack_results:
            if result.name == name and result.ok and result.path is not None and custom in result.path.parents:
                return tuple(result.node_types)
        return ()

    def import_failure(self, cnr_id: str | None, url: str | None) -> dict[str, Any] | None:
        """ComfyUI-Manager's error_dict entry ({name, path, msg, traceback}) of a pack that failed to import."""
        name = self._pack_named(cnr_id, url)
        for result in self.pack_results:
            if name is not None and result.name == name and not result.ok:
                return {"name": result.name, "path": str(result.path) if result.path else None,
                        "msg": result.error or "", "traceback": result.traceback or ""}
        return None

    def _pack_named(self, cnr_id: str | None, url: str | None) -> str | None:
        for pack in self.packs().installed():
            record = pack.record
            if cnr_id and cnr_id in (pack.name, record.catalog if record else None):
                return pack.name
            if url and record is not None and _norm(url) == _norm(record.source.location):
                return pack.name
        return None


def _version_of(pack: InstalledPack) -> str:
    record = pack.record
    if record is None:
        return "unknown"
    return record.version or record.commit or record.content_hash


def _aux_id(url: str) -> str | None:
    """`owner/repo` of a git URL, as ComfyUI-Manager names packs that are not in the registry."""
    parts = [p for p in re.split(r"[/:]", url.rstrip("/").removesuffix(".git")) if p]
    return "/".join(parts[-2:]) if len(parts) >= 2 else None


def _norm(url: str) -> str:
    return url.strip().rstrip("/").removesuffix(".git").lower()


def _pack_url(pack: InstalledPack, loaded: Any) -> str:
    record = pack.record
    if record is None:
        return pack.name
    if record.catalog:
        with contextlib.suppress(ManagerError):
            return str(loaded.find(record.catalog).reference or record.source.location)
    return record.source.location


def snapshot_path(home: Home, name: str) -> Path | None:
    """A snapshot of this home by name only: clients never name paths."""
    if not _SNAPSHOT_NAME.fullmatch(name):
        return None
    for suffix in (".json", ".yaml", ".yml"):
        candidate = home.snapshots / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    return None


# ---- request plumbing ----------------------------------------------------------------------------------------

MANAGER: web.AppKey[ManagerService] = web.AppKey("partyflow_manager", ManagerService)


def attach(app: web.Application) -> None:
    """Create the manager service for `app` (after its ServerContext) and tie its worker to the app's life."""
    ctx = app[CONTEXT]
    app[MANAGER] = ManagerService(ctx.engine.home, ctx.config.loopback, ctx.hub, list(ctx.engine.pack_results),
                                  security_level=ctx.config.security_level)
    app.cleanup_ctx.append(_lifecycle)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    service = app[MANAGER]
    service.loop = asyncio.get_running_loop()
    yield
    grace = app[CONTEXT].config.shutdown_grace_s
    await asyncio.to_thread(service.queue.close, grace)
    service.loop = None


def _service(request: web.Request) -> ManagerService:
    return request.app[MANAGER]


def json_only(handler: Handler) -> Handler:
    """Refuse a POST whose Content-Type a plain HTML form can send, and a body that is not JSON: either would let
    another site's page drive the manager without a CORS preflight."""

    @functools.wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        kind = request.content_type
        has_body = request.can_read_body
        if kind in FORM_CONTENT_TYPES or (has_body and kind != "application/json"):
            return json_error(415, "unsupported_media_type", f"manager requests must be JSON, not {kind}",
                              "send 'Content-Type: application/json' (or no body at all)")
        return await handler(request)

    return checked


def _actor(request: web.Request) -> str:
    """Who asked, for the audit log: the signed-in user when there is one, else the OS user running the server."""
    identity = identity_of(request)
    who = identity.user if identity is not None and identity.via in ("token", "session") else current_actor()
    return f"{who} via http from {request.remote or 'unknown'}"


def _local_caller(request: web.Request) -> bool:
    """A change of manager settings comes only from this machine: a loopback listener and a loopback peer."""
    return context(request).config.loopback and is_loopback_name(request.remote or "")


def _manager_error(exc: ManagerError | ConfigError) -> web.Response:
    if isinstance(exc, UnknownPackError):
        return not_found(exc.message, exc.hint or "")
    if isinstance(exc, ManagerError) and not exc.user_error:
        return json_error(502, "manager_error", exc.message, exc.hint or "")
    return bad_request(getattr(exc, "message", str(exc)), getattr(exc, "hint", None) or "", kind="manager_error")


def _refused(decision: Any) -> web.Response:
    return json_error(403, "forbidden", decision.reason, decision.hint or "")


def parse_task(body: Any, actor: str) -> Task:
    """ComfyUI-Manager's QueueTaskItem: {ui_id, client_id, kind, params}; the pack each kind names."""
    if not isinstance(body, dict):
        raise BadTask("the task must be a JSON object with ui_id, client_id, kind and params")
    kind, params = body.get("kind"), body.get("params")
    if kind not in PACK_KINDS:
        raise BadTask(f"kind {kind!r} is not supported; use one of {', '.join(PACK_KINDS)}")
    if not isinstance(params, dict):
        raise BadTask("params must be an object")
    target = _task_target(kind, params)
    ui_id = body.get("ui_id") or uuid.uuid4().hex
    client_id = body.get("client_id") or ""
    if not isinstance(ui_id, str) or not isinstance(client_id, str):
        raise BadTask("ui_id and client_id must be strings")
    return Task(ui_id, client_id, kind, params, target, actor)


def _task_target(kind: str, params: dict[str, Any]) -> str:
    """install: the catalog id (or whatever a client names instead, for the policy to judge), with
    `selected_version` when it is a real version; the other kinds: the installed pack's name."""
    if kind == "install":
        ident = params.get("id")
        if not isinstance(ident, str) or not ident.strip():
            raise BadTask("an install task needs params.id: the catalog id of the pack")
        version = params.get("selected_version") or params.get("version")
        pinned = isinstance(version, str) and version not in ("", "latest", "nightly", "unknown")
        return f"{ident.strip()}@{version}" if pinned else ident.strip()
    keys = ("cnr_id", "node_name") if kind == "enable" else ("node_name", "cnr_id")
    name = next((params[k] for k in keys if isinstance(params.get(k), str) and params[k].strip()), None)
    if name is None:
        raise BadTask(f"a {kind} task needs params.node_name: the installed pack's name")
    return name.strip()


async def _check(request: web.Request, task: Task) -> web.Response | None:
    """Ask the policy about `task`; a refusal is audited and answered with a 403, an unknown pack with a 404."""
    service = _service(request)
    try:
        decision = await asyncio.to_thread(service.refusal, task)
    except (ManagerError, ConfigError) as exc:
        return _manager_error(exc)
    if decision is None:
        return None
    await asyncio.to_thread(service.audit_refusal, task, decision)
    logger.warning("refused manager request %s %s from %s: %s", task.kind, task.target, request.remote,
                   decision.reason)
    return _refused(decision)


async def _submit(request: web.Request, task: Task) -> web.Response:
    """Queue `task` once the policy allows it."""
    refused = await _check(request, task)
    if refused is not None:
        return refused
    _service(request).queue.put(task)
    return web.json_response({"ui_id": task.ui_id})


# ---- handlers ------------------------------------------------------------------------------------------------

async def get_installed(request: web.Request) -> web.Response:
    return web.json_response(await asyncio.to_thread(_service(request).installed))


async def get_mappings(request: web.Request) -> web.Response:
    try:
        return web.json_response(await asyncio.to_thread(_service(request).mappings))
    except (ManagerError, ConfigError) as exc:
        return _manager_error(exc)


async def get_fetch_updates(request: web.Request) -> web.Response:
    """Newer catalog versions of installed packs; 201 when there are some (ComfyUI-Manager's signal)."""
    from partyflow.manager import catalog

    try:
        found = await asyncio.to_thread(catalog.outdated, _service(request).home)
    except (ManagerError, ConfigError) as exc:
        return _manager_error(exc)
    return web.json_response({"updates": [asdict(o) for o in found]}, status=201 if found else 200)


async def post_import_fail_info(request: web.Request) -> web.Response:
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    cnr_id, url = body.get("cnr_id"), body.get("url")
    if not isinstance(cnr_id, str) and not isinstance(url, str):
        return bad_request("give 'cnr_id' or 'url' as a string")
    info = await asyncio.to_thread(_service(request).import_failure, cnr_id if isinstance(cnr_id, str) else None,
                                   url if isinstance(url, str) else None)
    if info is None:
        return not_found("no import failure is recorded for that pack", "it imported, or is not installed")
    return web.json_response(info)


async def post_import_fail_info_bulk(request: web.Request) -> web.Response:
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    service = _service(request)

    def collect() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, ids in (("cnr_id", body.get("cnr_ids") or []), ("url", body.get("urls") or [])):
            for ident in ids if isinstance(ids, list) else []:
                info = service.import_failure(**{"cnr_id": None, "url": None, key: str(ident)})
                out[str(ident)] = {"error": info["msg"], "traceback": info["traceback"]} if info else None
        return out

    return web.json_response(await asyncio.to_thread(collect))


async def post_queue_task(request: web.Request) -> web.Response:
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    try:
        task = parse_task(body, _actor(request))
    except BadTask as exc:
        return bad_request(str(exc), kind="invalid_task")
    return await _submit(request, task)


async def post_queue_start(request: web.Request) -> web.Response:
    started = _service(request).queue.start()
    return web.json_response({"started": started}, status=200 if started else 201)


async def post_queue_reset(request: web.Request) -> web.Response:
    return web.json_response({"dropped": _service(request).queue.reset()})


async def get_queue_status(request: web.Request) -> web.Response:
    return web.json_response(_service(request).queue.status(request.query.get("client_id") or None))


async def get_queue_history(request: web.Request) -> web.Response:
    query = request.query
    try:
        max_items = int(query["max_items"]) if query.get("max_items") else None
        offset = int(query.get("offset", 0))
    except ValueError:
        return bad_request("max_items and offset must be integers")
    history = _service(request).queue.history(client_id=query.get("client_id") or None,
                                              ui_id=query.get("ui_id") or None, max_items=max_items, offset=offset)
    return web.json_response({"history": history})


async def get_history_list(request: web.Request) -> web.Response:
    """Batch history files: partyflow keeps the queue history in memory and the audit log on disk, so none."""
    return web.json_response({"ids": []})


async def get_version(request: web.Request) -> web.Response:
    return web.Response(text=f"partyflow {__version__}")


async def get_db_mode(request: web.Request) -> web.Response:
    return web.Response(text=DB_MODE)


async def post_db_mode(request: web.Request) -> web.Response:
    return await _read_only_setting(request, DB_MODE, "the catalog is always read from the home's cache of its "
                                    "channels; refresh it with 'partyflow nodes refresh'")


async def get_channel_url_list(request: web.Request) -> web.Response:
    from partyflow.manager import catalog

    try:
        channels = await asyncio.to_thread(catalog.channels, _service(request).home)
    except ConfigError as exc:
        return _manager_error(exc)
    return web.json_response({"selected": channels[0].name if channels else "",
                              "list": [f"{c.name}::{c.url}" for c in channels]})


async def post_channel_url_list(request: web.Request) -> web.Response:
    from partyflow.manager import catalog

    try:
        channels = await asyncio.to_thread(catalog.channels, _service(request).home)
    except ConfigError as exc:
        return _manager_error(exc)
    return await _read_only_setting(request, channels[0].name if channels else "",
                                    "channels are configured in config.toml, [manager] channels")


async def _read_only_setting(request: web.Request, current: str, how: str) -> web.Response:
    """Settings are views here: a remote caller may not change them at all, a local one is told where they are."""
    if not _local_caller(request):
        return json_error(403, "forbidden", "manager settings can only be changed from this machine", how)
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    if body.get("value") == current:
        return web.json_response({"value": current})
    return json_error(409, "read_only", f"this server does not change that setting (it is {current!r})", how)


async def get_snapshot_list(request: web.Request) -> web.Response:
    from partyflow.manager import snapshots

    paths = await asyncio.to_thread(snapshots.list_snapshots, _service(request).home)
    return web.json_response({"items": sorted((p.stem for p in paths if p.suffix == ".json"), reverse=True)})


async def get_current_snapshot(request: web.Request) -> web.Response:
    from partyflow.manager import snapshots

    try:
        snapshot = await asyncio.to_thread(snapshots.capture, _service(request).home)
    except (ManagerError, ConfigError) as exc:
        return _manager_error(exc)
    return web.json_response(snapshot.to_dict())


async def post_snapshot_save(request: web.Request) -> web.Response:
    from partyflow.manager import snapshots

    home = _service(request).home
    try:
        path = await asyncio.to_thread(snapshots.save, home, f"{_stamp()}_snapshot")
    except (ManagerError, ConfigError) as exc:
        return _manager_error(exc)
    await asyncio.to_thread(_audit, home, "save-snapshot", _actor(request), {"snapshot": path.stem})
    return web.json_response({"name": path.stem})


def _audit(home: Home, action: str, actor: str, details: dict[str, Any]) -> None:
    """Snapshot files change outside PackManager, so these routes record them in the same audit log."""
    with AuditLog(home) as audit:
        audit.record(action, actor=actor, details=details)


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d_%H-%M-%S")


async def post_snapshot_restore(request: web.Request) -> web.Response:
    """Restores run as a queued task (one manager operation at a time), started at once."""
    service = _service(request)
    target = request.query.get("target", "")
    if snapshot_path(service.home, target) is None:
        return not_found(f"no snapshot {target!r}", "GET /v2/snapshot/getlist lists them")
    task = Task(uuid.uuid4().hex, request.query.get("client_id", ""), RESTORE_KIND, {"target": target}, target,
                _actor(request))
    response = await _submit(request, task)
    if response.status == 200:
        service.queue.start()
    return response


async def post_snapshot_remove(request: web.Request) -> web.Response:
    """Deleting a snapshot loses a restore point: middle risk, decided by the policy like an uninstall."""
    service = _service(request)
    target = request.query.get("target", "")
    path = snapshot_path(service.home, target)
    if path is None:
        return not_found(f"no snapshot {target!r}", "GET /v2/snapshot/getlist lists them")
    task = Task(uuid.uuid4().hex, "", REMOVE_SNAPSHOT_KIND, {"target": target}, target, _actor(request))
    refused = await _check(request, task)
    if refused is not None:
        return refused
    await asyncio.to_thread(path.unlink, missing_ok=True)
    await asyncio.to_thread(_audit, service.home, REMOVE_SNAPSHOT_KIND, task.actor, {"snapshot": target})
    return web.json_response({"removed": target})


async def post_reboot(request: web.Request) -> web.Response:
    """The dialog's "Apply Changes": restart so changed packs load. Middle risk (as in ComfyUI-Manager), audited;
    `partyflow serve` restarts gracefully (the running prompt finishes or stays queued) in a fresh process."""
    from partyflow.server.runner import RESTART_HOOK

    service = _service(request)
    task = Task(uuid.uuid4().hex, "", REBOOT_KIND, {}, "server", _actor(request))
    refused = await _check(request, task)
    if refused is not None:
        return refused
    restart = context(request).extra.get(RESTART_HOOK)
    if not callable(restart):  # an app embedded elsewhere, not run by `partyflow serve`: nothing is broken
        return json_error(409, "restart_unavailable", "this server cannot restart itself",
                          "restart partyflow to load the changed packs")
    await asyncio.to_thread(_audit, service.home, REBOOT_KIND, task.actor, {})
    asyncio.get_running_loop().call_soon(restart)  # after this answer is on its way
    return web.json_response({"restarting": True})


async def _json_body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await read_json(request, default={})
    except BadJSON as exc:
        return bad_request(str(exc))
    if not isinstance(body, dict):
        return bad_request("the body must be a JSON object")
    return body


ROUTES: list[Route] = [
    ("GET", "/v2/customnode/installed", get_installed),
    ("GET", "/v2/customnode/getmappings", get_mappings),
    ("GET", "/v2/customnode/fetch_updates", get_fetch_updates),
    ("POST", "/v2/customnode/import_fail_info", json_only(post_import_fail_info)),
    ("POST", "/v2/customnode/import_fail_info_bulk", json_only(post_import_fail_info_bulk)),
    ("POST", "/v2/manager/queue/task", json_only(post_queue_task)),
    ("POST", "/v2/manager/queue/start", json_only(post_queue_start)),
    ("POST", "/v2/manager/queue/reset", json_only(post_queue_reset)),
    ("GET", "/v2/manager/queue/status", get_queue_status),
    ("GET", "/v2/manager/queue/history", get_queue_history),
    ("GET", "/v2/manager/queue/history_list", get_history_list),
    ("GET", "/v2/manager/version", get_version),
    ("GET", "/v2/manager/db_mode", get_db_mode),
    ("POST", "/v2/manager/db_mode", json_only(post_db_mode)),
    ("GET", "/v2/manager/channel_url_list", get_channel_url_list),
    ("POST", "/v2/manager/channel_url_list", json_only(post_channel_url_list)),
    ("GET", "/v2/snapshot/getlist", get_snapshot_list),
    ("GET", "/v2/snapshot/get_current", get_current_snapshot),
    ("POST", "/v2/snapshot/save", json_only(post_snapshot_save)),
    ("POST", "/v2/snapshot/restore", json_only(post_snapshot_restore)),
    ("POST", "/v2/snapshot/remove", json_only(post_snapshot_remove)),
    ("POST", "/v2/manager/reboot", json_only(post_reboot)),
]
