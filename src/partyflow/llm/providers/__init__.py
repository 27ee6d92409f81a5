"""Providers by type, and `create`: from a provider name in a workflow to a ready `ChatModel`.

Each type's module is imported only when a provider of that type is created, so `import partyflow.llm` stays
light and a missing optional dependency is reported for the provider that needs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from partyflow.llm.config import ProviderConfig, ProvidersConfig
from partyflow.llm.errors import ProviderConfigError
from partyflow.llm.types import ChatModel

# provider type -> "module:class"; the class is called as cls(config, **options)
PROVIDER_TYPES: Mapping[str, str] = MappingProxyType({
    "openai_compat": "partyflow.llm.providers.openai_compat:OpenAICompatProvider",
    "transformers": "partyflow.llm.providers.transformers_local:TransformersProvider",
    "llamacpp": "partyflow.llm.providers.llamacpp:LlamaCppProvider",
})


def create(name: str, config: ProvidersConfig | ProviderConfig, **options: Any) -> ChatModel:
    """The provider called `name`, built from its configuration.

    `config` is the whole providers configuration (the usual case) or one provider's. `options` go to the
    provider class (for example `environ=` for the key lookup, or `home=` for local model paths). Raises
    `ProviderConfigError` for unknown names, bad fields, missing key variables and unavailable types.
    """
    provider = config.get(name) if isinstance(config, ProvidersConfig) else config
    if provider.name != name:
        raise ProviderConfigError(f"asked for provider {name!r} but was given the config of {provider.name!r}",
                                  provider=name)
    return provider_class(provider.type, name)(provider, **options)


def provider_class(provider_type: str, name: str | None = None) -> Any:
    """The class implementing `provider_type`, imported on first use."""
    target = PROVIDER_TYPES.get(provider_type)
    if target is None:
        raise ProviderConfigError(f"unknown provider type {provider_type!r}", provider=name,
                                  hint=f"Use one of: {', '.join(PROVIDER_TYPES)}")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise  # a dependency of the module; the module reports its extra itself
        raise ProviderConfigError(f"provider type {provider_type!r} is not available in this version",
                                  provider=name, hint="Use an openai_compat provider (for example a local "
                                  "llama.cpp or Ollama server) meanwhile") from None
    return getattr(module, class_name)
