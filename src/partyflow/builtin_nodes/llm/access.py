"""From a `ModelHandle` to a live provider, built from the home's config.toml for one node call.

The home is found the way any ComfyUI pack finds its host's folders (`folder_paths.base_path`), so this pack needs
nothing from the engine. API providers are opened per call and closed after: no connection, key or event loop
outlives the call that used it. A local handle brings the provider its loader made (loading weights is the
expensive part), which is left open for the next call. Under a partyflow engine, local weights are held by the
engine's model manager (`model_manager()`), which keeps them within its memory budget; elsewhere (a ComfyUI
install) the provider holds them itself.

The response cache is opt-in, per provider (`cache = true` in its table) or per call (the Chat node's `cache`
input); cached replies live in the home's `llm_cache.sqlite`, shared by every run and process of that home.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import folder_paths

from partyflow.config import Home
from partyflow.llm import ProviderConfig, ProviderConfigError, ProvidersConfig
from partyflow.llm.cache import CachedChatModel, home_cache
from partyflow.llm.models import ModelManager
from partyflow.llm.providers import create
from partyflow.llm.routing.config import RouterConfig
from partyflow.llm.routing.health import HealthBook
from partyflow.llm.usage.ledger import CallLabels
from partyflow.llm.usage.meter import Meter
from partyflow.nodes.host import current_host_or_none, current_scope

from .sockets import ModelHandle


def current_home() -> Home:
    return Home(Path(folder_paths.base_path))


def model_manager() -> ModelManager | None:
    """The running engine's model manager, or None outside a partyflow engine (then providers keep their own)."""
    host = current_host_or_none()
    return getattr(host, "models", None) if host is not None else None


def model_actors() -> Any:
    """Where this engine's local models live when not in this process (the Ray backend's model actors), or None."""
    host = current_host_or_none()
    return getattr(host, "local_models", None) if host is not None else None


def providers_config() -> ProvidersConfig:
    """The providers configured now: read at each call, so edits to config.toml apply without a restart."""
    return ProvidersConfig.load(current_home())


def provider_names() -> list[str]:
    """Configured provider and router names for the loader's list; an unreadable config lists none (validation
    explains)."""
    try:
        return providers_config().names()
    except ProviderConfigError:
        return []


def provider_config(name: str) -> ProviderConfig:
    return providers_config().get(name)


def provider_entry(name: str) -> ProviderConfig | RouterConfig:
    """The provider or router called `name` (issue 18: routers go wherever providers do)."""
    return providers_config().entry(name)


def router_names() -> list[str]:
    try:
        return sorted(providers_config().routers)
    except ProviderConfigError:
        return []


def current_meter() -> Meter | None:
    """The meter of this node call: the engine's ledger, the home's budgets and prices, labelled with the prompt
    and node. None outside a partyflow engine (a ComfyUI install keeps no ledger)."""
    host = current_host_or_none()
    services = getattr(host, "usage", None) if host is not None else None
    if services is None:
        return None
    scope = current_scope()
    return services.meter_for(current_home().config_file, call_labels(scope))


def call_labels(scope: Any) -> CallLabels:
    """Where a model call comes from, for the usage ledger and budgets: prompt, node, user and workflow."""
    if scope is None:
        return CallLabels()
    return CallLabels(prompt_id=scope.prompt_id, node_id=scope.node_id, user=getattr(scope, "user", None),
                      workflow=getattr(scope, "workflow", None))


def router_health() -> HealthBook | None:
    host = current_host_or_none()
    services = getattr(host, "usage", None) if host is not None else None
    return services.health if services is not None else None


@asynccontextmanager
async def open_provider(handle: ModelHandle, *, cache: bool = False) -> AsyncIterator[Any]:
    """The provider `handle` names, closed (its connections too) when the block ends unless its loader owns it.

    With `cache` (or the provider's own `cache = true`), deterministic requests go through the response cache.
    """
    if not isinstance(handle, ModelHandle):
        raise TypeError(f"expected a model from a model loader node, got {type(handle).__name__}")
    provider, owned, cache = _provider_for(handle, cache)
    try:
        yield CachedChatModel(provider, home_cache(current_home())) if cache else provider
    finally:
        if owned:
            await _close(provider)


def _provider_for(handle: ModelHandle, cache: bool) -> tuple[Any, bool, bool]:
    """(provider, whether this call must close it, whether to cache) for an API or a local handle; every call
    through it is budget-checked and written to the usage ledger when an engine keeps one."""
    meter = current_meter()
    if handle.local is not None:
        if handle.live is not None:
            return _local_traced(meter.wrap(handle.live) if meter is not None else handle.live, handle), False, cache
        from .local import create_local  # a handle unpickled without its loaded model: load it for this call

        provider = create_local(handle)
        return _local_traced(meter.wrap(provider) if meter is not None else provider, handle), True, cache
    config = providers_config()
    entry = config.entry(handle.provider)
    remote = model_actors()
    if remote is not None and entry.type in ("transformers", "llamacpp"):  # loaded once for all workers
        provider = remote(entry, {})
        return (meter.wrap(provider) if meter is not None else provider), False, cache or entry.cache
    # a local provider of config.toml borrows its weights from the engine's manager: loaded once, not per call
    options: dict[str, Any] = {} if entry.type == "openai_compat" else {"home": current_home(),
                                                                       "manager": model_manager()}
    provider = create(handle.provider, config, meter=meter, health=router_health(), **options)
    return provider, True, cache or entry.cache


def _local_traced(provider: Any, handle: ModelHandle) -> Any:
    """A local model's calls as spans when the engine traces (providers of config.toml get theirs in `create`)."""
    from partyflow.llm.tracing import genai_provider, traced

    assert handle.local is not None
    return traced(provider, provider=handle.provider, system=genai_provider(handle.local.type, None, handle.provider),
                  default_model=handle.model or Path(handle.local.path).name)


async def _close(provider: Any) -> None:
    closer = getattr(provider, "aclose", None) or getattr(provider, "close", None)
    if closer is not None and inspect.isawaitable(result := closer()):
        await result
