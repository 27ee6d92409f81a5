"""Providers by type, and `create`: from a provider name in a workflow to a ready `ChatModel`.

Each type's module is imported only when a provider of that type is created, so `import partyflow.llm` stays
light and a missing optional dependency is reported for the provider that needs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from partyflow.llm.config import ProviderConfig, ProvidersConfig
from partyflow.llm.errors import ProviderConfigError
from partyflow.llm.routing.config import RouterConfig
from partyflow.llm.types import ChatModel
from partyflow.telemetry.tracing import active as active_tracing

if TYPE_CHECKING:
    from partyflow.llm.routing.health import HealthBook
    from partyflow.llm.usage.meter import Meter

# provider type -> "module:class"; the class is called as cls(config, **options)
PROVIDER_TYPES: Mapping[str, str] = MappingProxyType({
    "openai_compat": "partyflow.llm.providers.openai_compat:OpenAICompatProvider",
    "transformers": "partyflow.llm.providers.transformers_local:TransformersProvider",
    "llamacpp": "partyflow.llm.providers.llamacpp:LlamaCppProvider",
})


def create(name: str, config: ProvidersConfig | ProviderConfig, *, meter: Meter | None = None,
           health: HealthBook | None = None, **options: Any) -> ChatModel:
    """The provider (or router) called `name`, built from its configuration.

    `config` is the whole providers configuration (the usual case, and needed for routers) or one provider's.
    `options` go to the provider class (for example `environ=` for the key lookup, or `home=` for local model
    paths). With `meter`, every call is budget-checked and written to the usage ledger; `health` is the book a
    router keeps its members' health in (share one to keep what routers learn between calls). Raises
    `ProviderConfigError` for unknown names, bad fields, missing key variables and unavailable types.
    """
    entry = config.entry(name) if isinstance(config, ProvidersConfig) else config
    if entry.name != name:
        raise ProviderConfigError(f"asked for provider {name!r} but was given the config of {entry.name!r}",
                                  provider=name)
    if isinstance(entry, RouterConfig):
        if not isinstance(config, ProvidersConfig):
            raise ProviderConfigError("a router needs the whole providers configuration", provider=name)
        return _traced_router(_router(entry, config, meter=meter, health=health, options=options), entry)
    provider: ChatModel = provider_class(entry.type, name)(entry, **options)
    provider = meter.wrap(provider) if meter is not None else provider
    return _traced(provider, entry, options.get("environ"))


def _traced(provider: ChatModel, entry: ProviderConfig, environ: Mapping[str, str] | None) -> ChatModel:
    """`provider` with a span per call when the code creating it runs under a traced engine (issue 18, item 6)."""
    if active_tracing() is None:
        return provider
    from partyflow.llm.tracing import genai_provider, server_of, traced

    try:
        secrets = (entry.api_key(environ),)
    except ProviderConfigError:
        secrets = ()
    return traced(provider, provider=entry.name, system=genai_provider(entry.type, entry.base_url, entry.name),
                  default_model=entry.model, secrets=(*secrets, *entry.extra_headers.values()),
                  attributes=server_of(entry.base_url), embedding_model=entry.embedding_model or entry.model)


def _traced_router(router: ChatModel, entry: RouterConfig) -> ChatModel:
    """A router's call is a span too; its members' attempts (failed ones with ERROR status) are its children."""
    if active_tracing() is None:
        return router
    from partyflow.llm.tracing import traced

    return traced(router, provider=entry.name, system=entry.name, usage=False,
                  attributes={"partyflow.router": entry.name, "partyflow.router.strategy": entry.strategy})


def _router(router: RouterConfig, config: ProvidersConfig, *, meter: Meter | None, health: HealthBook | None,
            options: dict[str, Any]) -> ChatModel:
    from partyflow.llm.routing.health import HealthBook
    from partyflow.llm.routing.router import RouterModel

    book = health if health is not None else HealthBook()
    member_meter = meter.for_router(router.name) if meter is not None else None

    def build(member: str) -> ChatModel:
        entry = config.entry(member)
        if isinstance(entry, RouterConfig):
            return create(member, config, meter=member_meter, health=book, **options)
        update: dict[str, Any] = {"max_retries": 0}  # the router's failover replaces the member's own retries
        if router.timeout is not None:
            update["timeout"] = min(entry.timeout, router.timeout)
        member_options = options if entry.type != "openai_compat" else {
            k: v for k, v in options.items() if k not in ("home", "manager")}
        return create(member, entry.model_copy(update=update), meter=member_meter, **member_options)

    infos = {member: _member_info(member, config) for member in router.members}
    check = (lambda: meter.check(router=router.name)) if meter is not None else None
    return RouterModel(router, infos, build, health=book, check_budget=check)


def embedding_model_of(name: str, config: ProvidersConfig, model: str | None = None, *,
                       router: str | None = None) -> str:
    """The embedding model that calls to provider or router `name` use (`model` when given).

    A router embeds only when every member can: each serves embeddings (a chat-only member is named) and, without
    an explicit `model`, all use the same embedding model, since vectors of different models cannot share an index.
    Raises `ProviderConfigError` naming the router and the member.
    """
    entry = config.entry(name)
    where = f"router {router!r}: member {name!r}" if router else f"provider {name!r}"
    if isinstance(entry, RouterConfig):
        found = {member: embedding_model_of(member, config, model, router=name) for member in entry.members}
        if len(set(found.values())) > 1:
            listed = ", ".join(f"{member}: {chosen}" for member, chosen in found.items())
            raise ProviderConfigError(
                f"router {name!r}: members embed with different models ({listed}); vectors of different models "
                "cannot be compared", provider=name,
                hint=f"Give the members the same embedding_model, or name the model: provider:{name}/MODEL")
        return next(iter(found.values()))
    if not callable(getattr(provider_class(entry.type, name), "embed", None)):
        raise ProviderConfigError(f"{where} (type {entry.type}) offers no embeddings (chat only)", provider=name,
                                  hint="Use an openai_compat provider with an embedding_model" +
                                  (f", or remove {name!r} from router {router!r}" if router else ""))
    chosen = model or entry.embedding_model or entry.model
    if not chosen:
        raise ProviderConfigError(f"{where} has no embedding_model", provider=name,
                                  hint=f"Set embedding_model in [providers.{name}]")
    return chosen


def _member_info(name: str, config: ProvidersConfig) -> Any:
    """A member's limits, context window and price; a nested router's window is its largest member's."""
    from partyflow.llm.routing.router import MemberInfo

    entry = config.entry(name)
    if isinstance(entry, RouterConfig):
        inner = [_member_info(member, config) for member in entry.members]
        windows = [info.window for info in inner if info.window is not None]
        return MemberInfo(name, window=max(windows) if windows else None,
                          price=min((info.price for info in inner), default=0.0))
    price = (entry.price_input_per_1k or 0.0) + (entry.price_output_per_1k or 0.0)
    return MemberInfo(name, rpm=entry.rpm, tpm=entry.tpm, window=entry.context_window or entry.n_ctx, price=price)


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
