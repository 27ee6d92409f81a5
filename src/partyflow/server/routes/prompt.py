"""POST/GET /prompt, /queue, /history, /interrupt, /free: accepting prompts and managing the queue."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from partyflow.engine.queue import MAX_QUEUE_NUMBER, queue_number
from partyflow.graph.validate import ValidationResult, validate_prompt
from partyflow.nodes.host import host_context
from partyflow.server.access import OWNER_KEY, identity_of, may_manage, signed_in
from partyflow.server.context import context
from partyflow.server.errors import BadJSON, bad_request, error_body, read_json
from partyflow.server.routes import Route

logger = logging.getLogger("partyflow.server")
_SQLITE_MAX = 2**63 - 1  # SQLite's INTEGER: a larger LIMIT/OFFSET would overflow in the query


def _refuse(kind: str, message: str, details: str = "", **extra: Any) -> web.Response:
    return web.json_response(error_body(kind, message, details, **extra), status=400)


async def get_prompt(request: web.Request) -> web.Response:
    remaining = context(request).engine.queue.known_remaining()
    return web.json_response({"exec_info": {"queue_remaining": remaining}})


async def post_prompt(request: web.Request) -> web.Response:
    ctx = context(request)
    if not ctx.accepting:
        return web.json_response(error_body("server_shutting_down", "The server is shutting down",
                                            "queue the prompt again once it is back"), status=503)
    try:
        body = await read_json(request)
    except BadJSON as exc:
        return _refuse("invalid_prompt", "Invalid request body", str(exc))
    if not isinstance(body, dict):
        return _refuse("invalid_prompt", "The request body must be a JSON object", f"got {type(body).__name__}")
    for handler in ctx.engine.host.prompt_handlers:  # packs' add_on_prompt_handler, as ComfyUI runs them
        try:
            with host_context(ctx.engine.host):
                changed = handler(body)
            if isinstance(changed, dict):
                body = changed
        except Exception:
            logger.exception("prompt handler %r failed; continuing without it", handler)
    if "prompt" not in body:
        return _refuse("no_prompt", "No prompt provided", "No prompt provided")
    parsed = _options(body)
    if isinstance(parsed, web.Response):
        return parsed
    prompt_id, number, front, extra_data, targets = parsed
    identity = identity_of(request)
    extra_data.pop(OWNER_KEY, None)  # who queued it is the server's to say, never the client's
    if signed_in(identity):
        extra_data[OWNER_KEY] = identity.user  # type: ignore[union-attr]
    result = _validate(ctx.engine, body["prompt"], targets)
    runnable = result.runnable_outputs
    if not runnable:
        if result.error is None:
            return _refuse("prompt_no_outputs", "Prompt has no outputs")
        return web.json_response(result.to_json(), status=400)
    refused = await asyncio.to_thread(_code_tools_refusal, ctx, result.prompt)
    if refused is not None:
        return refused
    try:
        # group commit: prompts accepted in the same instant share one transaction and one fsync, written off
        # the event loop; the answer waits until the prompt is on disk
        item = await ctx.engine.queue.put_async(result.prompt, prompt_id=prompt_id, extra_data=extra_data,
                                                outputs_to_execute=runnable, front=front, number=number)
    except ValueError as exc:
        return _refuse("invalid_prompt", "Prompt refused", str(exc))
    except TypeError as exc:  # a value the queue's JSON cannot store (read_json already refused NaN)
        return _refuse("invalid_prompt", "Prompt cannot be stored", str(exc))
    ctx.metrics.prompts_queued.inc()
    return web.json_response({"prompt_id": item.prompt_id, "number": item.as_comfy()[0],
                              "node_errors": result.node_errors})


def _options(body: dict[str, Any]) -> tuple[str, int | None, bool, dict[str, Any], list[str] | None] | web.Response:
    prompt_id = body.get("prompt_id")
    if prompt_id is None:
        prompt_id = str(uuid.uuid4())
    elif not isinstance(prompt_id, str) or not prompt_id.strip() or len(prompt_id) > 200:
        return _refuse("invalid_prompt", "prompt_id must be a non-empty string (up to 200 characters)")
    number = body.get("number")
    if number is not None:
        number = queue_number(number)
        if number is None:
            return _refuse("invalid_prompt", f"number must be an integer between -{MAX_QUEUE_NUMBER} and "
                           f"{MAX_QUEUE_NUMBER}", f"got {_short(body.get('number'))}")
    front = body.get("front", False)
    extra_data = body.get("extra_data", {})
    if extra_data is None:
        extra_data = {}
    if not isinstance(extra_data, dict):
        return _refuse("invalid_prompt", "extra_data must be an object", f"got {type(extra_data).__name__}")
    extra_data = dict(extra_data)
    extra_data["create_time"] = int(time.time() * 1000)  # as ComfyUI stamps it; the jobs API sorts by it
    if "client_id" in body:
        client_id = body["client_id"]
        if client_id is not None and not isinstance(client_id, str):
            return _refuse("invalid_prompt", "client_id must be a string", f"got {type(client_id).__name__}")
        extra_data["client_id"] = client_id
    targets = body.get("partial_execution_targets")
    if targets is not None:
        if not isinstance(targets, list) or not all(isinstance(t, (str, int)) for t in targets):
            return _refuse("invalid_prompt", "partial_execution_targets must be a list of node ids")
        targets = [str(t) for t in targets]
    return prompt_id, number, bool(front), extra_data, targets


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _validate(engine: Any, prompt: Any, targets: list[str] | None) -> ValidationResult:
    try:
        with host_context(engine.host):
            return validate_prompt(prompt, engine.registry, outputs=targets,
                                   max_string_length=engine.settings.max_string_length)
    except Exception as exc:  # a pack's VALIDATE_INPUTS or INPUT_TYPES blew up: the user's prompt is still refused
        logger.exception("validation raised")
        from partyflow.graph.errors import NodeIssue

        return ValidationResult(prompt={}, outputs=[], error=NodeIssue(
            "exception_during_validation", "Exception during validation", f"{type(exc).__name__}: {exc}"))


def _code_tools_refusal(ctx: Any, prompt: Mapping[str, Any]) -> web.Response | None:
    """403 before queueing a prompt with a node that runs code or commands (`PARTYFLOW_RUNS_CODE`: the Python Code
    Tool, MCP nodes given a command line) where the security policy
    refuses code-running tools to HTTP clients; the node checks again when it runs (other routes run prompts too)."""
    from partyflow.config import ConfigError
    from partyflow.security.policy import code_tools_decision

    registry = ctx.engine.registry

    def runs_code(node: Any) -> bool:  # a class flag, or a function of the node's inputs (MCP: a command line)
        if not isinstance(node, Mapping) or node.get("class_type") not in registry:
            return False
        flag = getattr(registry.entry(node["class_type"]).cls, "PARTYFLOW_RUNS_CODE", False)
        return bool(flag(dict(node.get("inputs") or {})) if callable(flag) else flag)

    nodes = sorted(node_id for node_id, node in prompt.items() if runs_code(node))
    if not nodes:
        return None
    try:
        decision = code_tools_decision(ctx.engine.home, over_http=True, loopback=ctx.config.loopback,
                                       security_level=ctx.config.security_level)
    except ConfigError as exc:
        return web.json_response(error_body("code_tools_refused", "Code-running tools are refused", str(exc)),
                                 status=403)
    if decision.allowed:
        return None
    body = error_body("code_tools_refused", decision.reason, decision.hint or "", nodes=nodes)
    return web.json_response(body, status=403)


async def get_queue(request: web.Request) -> web.Response:
    queue = context(request).engine.queue
    return web.json_response({"queue_running": [i.as_comfy() for i in queue.running()],
                              "queue_pending": [i.as_comfy() for i in queue.pending()]})


async def post_queue(request: web.Request) -> web.Response:
    queue = context(request).engine.queue
    identity = identity_of(request)
    if identity is None or identity.is_admin:
        return await _clear_or_delete(request, queue.clear, queue.delete)

    def clear_refused() -> None:
        raise PermissionError("clearing the whole queue needs the admin role; delete your own prompts by id")

    def delete_own(ids: list[str]) -> int:
        owned = {item.prompt_id for item in queue.pending() if may_manage(request, item.extra_data)}
        return queue.delete([i for i in ids if i in owned])

    return await _clear_or_delete(request, clear_refused, delete_own)


async def get_history(request: web.Request) -> web.Response:
    try:
        max_items = int(request.query["max_items"]) if "max_items" in request.query else None
        offset = int(request.query.get("offset", -1))
    except ValueError:
        return bad_request("max_items and offset must be integers")
    if max_items is not None and max_items < 0:
        return bad_request("max_items must not be negative")
    if (max_items or 0) > _SQLITE_MAX or abs(offset) > _SQLITE_MAX:
        return bad_request("max_items and offset must fit in 64 bits", f"at most {_SQLITE_MAX}")
    engine = context(request).engine
    return web.json_response(_with_llm_usage(engine, engine.queue.history(max_items=max_items, offset=offset)))


async def get_history_item(request: web.Request) -> web.Response:
    # what polling clients ask for while they wait: one read by key, the stored JSON passed through as it is,
    # decoded only when the prompt made model calls (their totals are added from the usage ledger)
    engine = context(request).engine
    prompt_id = request.match_info["prompt_id"]
    text = engine.queue.history_json(prompt_id)
    services = getattr(engine.host, "usage", None)
    usage = services.prompt_usage(prompt_id) if services is not None and text != "{}" else None
    if usage is None:
        return web.Response(text=text, content_type="application/json")
    history = json.loads(text)
    history[prompt_id]["llm_usage"] = usage
    return web.json_response(history)


def _with_llm_usage(engine: Any, history: dict[str, Any]) -> dict[str, Any]:
    """Each entry with `llm_usage` (calls, tokens, cost of its model calls, from the usage ledger; issue 18) when
    it made any; ComfyUI's frontend ignores the extra key."""
    services = getattr(engine.host, "usage", None)
    if services is None:
        return history
    for prompt_id, entry in history.items():
        if isinstance(entry, dict) and (usage := services.prompt_usage(prompt_id)) is not None:
            entry["llm_usage"] = usage
    return history


async def post_history(request: web.Request) -> web.Response:
    queue = context(request).engine.queue
    return await _clear_or_delete(request, queue.clear_history, queue.delete_history)


async def _clear_or_delete(request: web.Request, clear: Callable[[], Any],
                           delete: Callable[[list[str]], Any]) -> web.Response:
    """POST /queue and POST /history take the same body in ComfyUI: `{"clear": true}` empties the list, then
    `{"delete": [prompt ids]}` drops those entries."""
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    ids = _ids(body["delete"]) if "delete" in body else []
    if ids is None:
        return bad_request("delete must be a list of prompt ids")
    # durable writes wait for fsync: off the event loop, as POST /prompt does
    if body.get("clear"):
        try:
            await asyncio.to_thread(clear)
        except PermissionError as exc:
            return web.json_response(error_body("forbidden", "Not allowed", str(exc)), status=403)
    if ids:
        await asyncio.to_thread(delete, ids)
    return web.Response(status=200)


async def post_interrupt(request: web.Request) -> web.Response:
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    ctx = context(request)
    prompt_id = body.get("prompt_id")
    current = ctx.worker.current
    if current is not None and not may_manage(request, current.extra_data):
        if prompt_id is None or prompt_id == current.prompt_id:
            return web.json_response(error_body("forbidden", "Not allowed",
                                                "the running prompt was queued by another user"), status=403)
    if prompt_id is None:
        if current is not None:
            ctx.engine.interrupt(current.prompt_id)
    elif isinstance(prompt_id, str):
        if current is not None and current.prompt_id == prompt_id:
            ctx.engine.interrupt(prompt_id)
    else:
        return bad_request("prompt_id must be a string")
    return web.Response(status=200)


async def post_free(request: web.Request) -> web.Response:
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    ctx = context(request)
    if body.get("unload_models") or body.get("free_memory"):
        if ctx.worker.current is None:
            ctx.engine.clear_cache()
        else:
            ctx.worker.free_requested = True  # between prompts, as ComfyUI does
    return web.Response(status=200)


async def _body(request: web.Request) -> Mapping[str, Any] | web.Response:
    try:
        body = await read_json(request, default={})
    except BadJSON as exc:
        return bad_request("Invalid request body", str(exc))
    if not isinstance(body, dict):
        return bad_request("The request body must be a JSON object")
    return body


def _ids(value: Any) -> list[str] | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return value


ROUTES: list[Route] = [
    ("GET", "/prompt", get_prompt),
    ("POST", "/prompt", post_prompt),
    ("GET", "/queue", get_queue),
    ("POST", "/queue", post_queue),
    ("GET", "/history", get_history),
    ("GET", "/history/{prompt_id}", get_history_item),
    ("POST", "/history", post_history),
    ("POST", "/interrupt", post_interrupt),
    ("POST", "/free", post_free),
]
