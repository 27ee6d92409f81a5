"""Shared pieces of the agents pack: socket names, the home, providers for model handles, tools from TOOL links.

The pack resolves a model handle itself (provider name -> `partyflow.llm.providers.create` from the home's
config.toml), like the LLM pack does, so it needs nothing from another pack's internals: a handle is anything
with `provider` and `model` attributes.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import folder_paths
from server import PromptServer

from partyflow.config import Home
from partyflow.llm import ChatModel, ProvidersConfig
from partyflow.llm.providers import create
from partyflow.nodes.host import PromptSource, current_host_or_none, current_scope
from partyflow.tools import Tool

from ..llm.access import call_labels

CATEGORY = "partyflow/agents"
LLM_MODEL = "LLM_MODEL"
LLM_HISTORY = "LLM_HISTORY"
TOOL = "TOOL"
JSON = "JSON"
AGENT = "AGENT"
"""An `AgentSpec`: a model handle, a name, a system prompt, tools and limits; run by Round Table, Agent As Tool."""

STEP_EVENT = "partyflow.agent.step"
TURN_EVENT = "partyflow.party.turn"


class AnyType(str):
    """The `*` socket: connects to anything, also in ComfyUI versions that compare types with `!=`."""

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__


ANY = AnyType("*")


def current_home() -> Home:
    return Home(Path(folder_paths.base_path))


def code_tools_decision() -> Any:
    """The security policy's answer (`SecurityPolicy.code_tools`) for whoever submitted the running prompt."""
    # imported on use: keeps the pack's import fast
    from partyflow.security.policy import code_tools_decision as decide

    host = current_host_or_none()
    source = host.source if host is not None else PromptSource()
    return decide(current_home(), over_http=source.over_http, loopback=source.loopback,
                  security_level=source.security_level)


def require_code_tools() -> None:
    """Refuse (PermissionError naming the setting) where the policy does not allow code-running tools."""
    decision = code_tools_decision()
    if not decision.allowed:
        raise PermissionError(f"{decision.reason}; {decision.hint}" if decision.hint else decision.reason)


@asynccontextmanager
async def open_model(handle: Any) -> AsyncIterator[ChatModel]:
    """The provider a model handle names, built from config.toml now and closed when the block ends."""
    provider_name = getattr(handle, "provider", None)
    if not isinstance(provider_name, str):
        raise TypeError(f"expected a model from a model loader node, got {type(handle).__name__}")
    home = current_home()
    config = ProvidersConfig.load(home)
    entry = config.entry(provider_name)  # a provider or a router (issue 18)
    options: dict[str, Any] = {} if entry.type == "openai_compat" else {"home": home}
    services = _model_services()
    scope = current_scope()
    meter = services.meter_for(home.config_file, call_labels(scope)) if services is not None else None
    provider = create(provider_name, config, meter=meter, health=services.health if services else None, **options)
    try:
        yield provider
    finally:
        closer = getattr(provider, "aclose", None) or getattr(provider, "close", None)
        if closer is not None and inspect.isawaitable(result := closer()):
            await result


def _model_services() -> Any:
    """The engine's routers' health and usage ledger (issue 18); None outside a partyflow engine."""
    host = current_host_or_none()
    return getattr(host, "usage", None) if host is not None else None


def model_name(handle: Any) -> str | None:
    return getattr(handle, "model", None) or None


def collect_tools(value: Any) -> list[Tool]:
    """Runnable tools from a TOOL link: a `Tool` or a (nested) list of them.

    A bare definition (the LLM pack's Tool Definition node) has no code behind it, so an agent cannot run it;
    that is refused here with a pointer to the nodes that make runnable tools.
    """
    if value is None or value == "":
        return []
    items = value if isinstance(value, list | tuple) else [value]
    tools: list[Tool] = []
    for item in items:
        if isinstance(item, list | tuple):
            tools.extend(collect_tools(item))
        elif isinstance(item, Tool):
            tools.append(item)
        else:
            name = item.get("name", "?") if isinstance(item, dict) else getattr(item, "name", type(item).__name__)
            raise ValueError(f"tool {name!r} is only a definition, with nothing to run it; an agent needs tools "
                             "from tool nodes (partyflow/agents/tools), Workflow As Tool or Agent As Tool")
    return tools


def chain(tools: Any, tool: Tool | list[Tool]) -> list[Tool]:
    """The tools linked in plus this node's, the way tool nodes chain into one list."""
    return [*collect_tools(tools), *(tool if isinstance(tool, list) else [tool])]


def send_event(event: str, data: Any) -> None:
    """A progress message to the client whose prompt runs this node."""
    server = PromptServer.instance
    server.send_sync(event, data, server.client_id)
