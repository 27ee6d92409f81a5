"""Issue 18's nodes: the Router Loader (a configured router, as a model like any other) and Usage (what this run
has spent so far, from the usage ledger)."""

from __future__ import annotations

from typing import Any

from partyflow.llm import ProviderConfigError
from partyflow.llm.routing.config import RouterConfig
from partyflow.nodes.host import current_host_or_none, current_scope

from .access import providers_config, router_names
from .sockets import JSON, LLM_MODEL, ModelHandle

CATEGORY = "partyflow/llm"


class _AnyType(str):
    """Matches every socket type, for Usage's `after` input (only its timing matters)."""

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__


ANY = _AnyType("*")


class RouterLoader:
    DESCRIPTION = ("Choose a router configured in config.toml ([routers.NAME]): one model over several providers, "
                   "with failover, health checks, rate limits and budgets. Use it wherever a model goes.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (LLM_MODEL,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("A handle naming the router; each call goes to one of its members.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"router": (router_names(), {"tooltip": "A [routers.NAME] table of config.toml."})}}

    @classmethod
    def VALIDATE_INPUTS(cls, router):
        try:
            _router(router)
        except ProviderConfigError as exc:
            return str(exc)
        return True

    def load(self, router):
        _router(router)
        return (ModelHandle(router, None),)


def _router(name: str) -> RouterConfig:
    config = providers_config()
    entry = config.routers.get(name)
    if entry is None:
        known = ", ".join(sorted(config.routers)) or "none"
        raise ProviderConfigError(f"no router {name!r} is configured (routers: {known})", provider=name,
                                  hint=f"Add a [routers.{name}] table with members = [...] to config.toml")
    return entry


class Usage:
    DESCRIPTION = ("What this run's model calls have used and cost so far, from the usage ledger: link any output "
                   "of the last model node into 'after' so it runs once they are done.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (JSON, "FLOAT", "INT", "STRING")
    RETURN_NAMES = ("usage", "cost", "tokens", "summary")
    OUTPUT_TOOLTIPS = ("{calls, prompt_tokens, completion_tokens, cost, by_provider: {...}}",
                       "Total cost in the currency of the configured prices (0 when none are set).",
                       "Prompt plus completion tokens.", "One line for display.")
    FUNCTION = "usage"
    NOT_IDEMPOTENT = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"optional": {"after": (ANY, {"tooltip": "Any output of the model nodes to wait for."})}}

    @classmethod
    def IS_CHANGED(cls, after=None):
        return float("nan")  # what was spent changes with every run

    def usage(self, after=None):
        del after
        host = current_host_or_none()
        services = getattr(host, "usage", None) if host is not None else None
        scope = current_scope()
        if services is None or scope is None:
            raise RuntimeError("the Usage node needs a partyflow engine, which keeps the usage ledger")
        totals: dict[str, Any] = services.ledger().prompt_usage(scope.prompt_id)
        cost = float(totals["cost"] or 0.0)
        tokens = int(totals["prompt_tokens"]) + int(totals["completion_tokens"])
        summary = (f"{totals['calls']} model call(s), {tokens} tokens "
                   f"({totals['prompt_tokens']} prompt + {totals['completion_tokens']} completion), cost {cost:.6g}")
        return ({**totals, "cost": cost, "total_tokens": tokens}, cost, tokens, summary)


NODE_CLASS_MAPPINGS = {"LLMRouterLoader": RouterLoader, "LLMUsage": Usage}
NODE_DISPLAY_NAME_MAPPINGS = {"LLMRouterLoader": "Router Loader", "LLMUsage": "Usage"}
