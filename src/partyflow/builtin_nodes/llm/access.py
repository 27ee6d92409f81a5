"""From a `ModelHandle` to a live provider, built from the home's config.toml for one node call.

The home is found the way any ComfyUI pack finds its host's folders (`folder_paths.base_path`), so this pack needs
nothing from the engine. Providers are opened per call and closed after: no connection, key or event loop
outlives the call that used it.
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
from partyflow.llm.providers import create

from .sockets import ModelHandle


def current_home() -> Home:
    return Home(Path(folder_paths.base_path))


def providers_config() -> ProvidersConfig:
    """The providers configured now: read at each call, so edits to config.toml apply without a restart."""
    return ProvidersConfig.load(current_home())


def provider_names() -> list[str]:
    """Configured provider names for the loader's list; an unreadable config lists none (validation explains)."""
    try:
        return sorted(providers_config())
    except ProviderConfigError:
        return []


def provider_config(name: str) -> ProviderConfig:
    return providers_config().get(name)


@asynccontextmanager
async def open_provider(handle: ModelHandle) -> AsyncIterator[Any]:
    """The provider named by `handle`, closed (its connections too) when the block ends."""
    if not isinstance(handle, ModelHandle):
        raise TypeError(f"expected a model from a model loader node, got {type(handle).__name__}")
    config = provider_config(handle.provider)
    options: dict[str, Any] = {} if config.type == "openai_compat" else {"home": current_home()}
    provider = create(handle.provider, config, **options)
    try:
        yield provider
    finally:
        await _close(provider)


async def _close(provider: Any) -> None:
    closer = getattr(provider, "aclose", None) or getattr(provider, "close", None)
    if closer is not None and inspect.isawaitable(result := closer()):
        await result
