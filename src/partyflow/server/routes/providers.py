"""The editor's Providers page: list the model providers of config.toml, test one, add or edit one.

Only callers on this machine (a loopback listener and a loopback peer) may test or change providers: a remote
caller able to change `base_url` could redirect every prompt, with its key, to a server of its own. A change is
also judged by the security policy (middle risk, like updating a pack) and recorded in the audit log. Keys are never
read, written or shown here: a provider names the environment variable that holds its key, and the page shows
only whether that variable is set.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from aiohttp import web

from partyflow.llm import ProviderConfigError, ProvidersConfig
from partyflow.manager.audit import AuditLog
from partyflow.server.context import context
from partyflow.server.errors import BadJSON, bad_request, forbidden, json_error, read_json
from partyflow.server.routes import Route
from partyflow.server.routes.manager import MANAGER, json_only
from partyflow.server.security import is_loopback_name

TEST_PROMPT = "Reply with one short friendly sentence."
TEST_TIMEOUT_S = 30.0


def _local(request: web.Request) -> bool:
    return context(request).config.loopback and is_loopback_name(request.remote or "")


def _row(name: str, config: Any) -> dict[str, Any]:
    env = config.api_key_env
    return {"name": name, "type": config.type, "base_url": config.base_url or "", "model": config.model or "",
            "api_key_env": env or "", "key_set": bool(env and os.environ.get(env, "").strip()),
            "path": config.path or ""}


async def list_providers(request: web.Request) -> web.Response:
    home = context(request).engine.home
    try:
        providers = await asyncio.to_thread(ProvidersConfig.load, home)
    except ProviderConfigError as exc:
        return bad_request(exc.message, exc.hint or "", kind="provider_config")
    return web.json_response({"providers": [_row(n, providers.get(n)) for n in sorted(providers)],
                              "can_change": _local(request)})


async def test_provider(request: web.Request) -> web.Response:
    if not _local(request):
        return forbidden("only a caller on this machine may test providers", "open the editor on the server")
    name = request.match_info["name"]
    home = context(request).engine.home

    def ask() -> dict[str, Any]:
        from partyflow.llm import ChatRequest, LLMError, UserMessage
        from partyflow.llm.providers import create

        config = ProvidersConfig.load(home).get(name)
        config = config.model_copy(update={"timeout": min(config.timeout, TEST_TIMEOUT_S), "max_retries": 0})
        provider = create(name, config, **({} if config.type == "openai_compat" else {"home": home}))
        started = time.perf_counter()
        try:
            response = provider.chat(ChatRequest(messages=(UserMessage(content=TEST_PROMPT),)))
        except LLMError as exc:
            return {"ok": False, "error": str(exc), "seconds": round(time.perf_counter() - started, 3)}
        finally:
            close = getattr(provider, "close", None)
            if callable(close):
                close()
        return {"ok": True, "model": response.model, "reply": response.text,
                "seconds": round(time.perf_counter() - started, 3)}

    try:
        return web.json_response(await asyncio.to_thread(ask))
    except ProviderConfigError as exc:
        return json_error(404 if "unknown provider" in exc.message else 400, "provider_config", exc.message,
                          exc.hint or "")


async def put_provider(request: web.Request) -> web.Response:
    if not _local(request):
        return forbidden("only a caller on this machine may change providers",
                         "a remote caller could redirect every prompt to its own server")
    name = request.match_info["name"]
    try:
        body = await read_json(request, default={})
    except BadJSON as exc:
        return bad_request("Invalid request body", str(exc))
    if not isinstance(body, dict):
        return bad_request("the body must be an object with type, base_url, model and api_key_env")
    service = request.app[MANAGER]
    actor = f"{request.remote or 'unknown'} via http"
    manager = service.packs(actor)
    decision = manager.policy().manage(manager.caller(), f"changing model provider {name!r}")
    home = context(request).engine.home
    if not decision.allowed:
        await asyncio.to_thread(_audit, home, name, actor, "refused", decision.reason, body)
        return forbidden(decision.reason, decision.hint or "")
    from partyflow.llm.config_edit import set_provider

    try:
        config = await asyncio.to_thread(set_provider, home, name, body)
    except ProviderConfigError as exc:
        await asyncio.to_thread(_audit, home, name, actor, "error", exc.message, body)
        return bad_request(exc.message, exc.hint or "", kind="provider_config")
    await asyncio.to_thread(_audit, home, name, actor, "ok", None, body)
    return web.json_response(_row(name, config))


def _audit(home: Any, name: str, actor: str, result: str, error: str | None, fields: dict[str, Any]) -> None:
    from partyflow.llm.config_edit import ENV_NAME

    shown = {k: str(v)[:200] for k, v in fields.items() if k in ("type", "base_url", "model")}
    env = fields.get("api_key_env")
    if env:  # a refused value may be a pasted key: the audit log never holds it
        shown["api_key_env"] = env if isinstance(env, str) and ENV_NAME.match(env) else "(not a variable name)"
    with AuditLog(home) as audit:
        audit.record("provider.set", result=result, pack=name, error=error, actor=actor, details=shown)


ROUTES: list[Route] = [
    ("GET", "/partyflow/providers", list_providers),
    ("POST", "/partyflow/providers/{name}/test", json_only(test_provider)),
    ("PUT", "/partyflow/providers/{name}", json_only(put_provider)),
]
