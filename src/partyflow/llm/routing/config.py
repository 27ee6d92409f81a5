"""Routers in config.toml: `[routers.NAME]` tables naming providers (or other routers) to spread calls over.

    [routers.smart]
    members = ["openai_mini", "deepseek", "local_qwen"]   # providers, or other routers
    strategy = "score"       # priority | round_robin | weighted | least_latency | least_cost | score
    weights = { cost = 0.4, latency = 0.3, reliability = 0.3 }   # score: how much each criterion counts
    cooldown = 30            # seconds a member rests after `failures_to_cooldown` failures in a row (or a 429)
    failures_to_cooldown = 3
    timeout = 20             # per-attempt limit in seconds (a member's own timeout applies when lower)

With `strategy = "weighted"`, `weights` maps members to their share instead (`{ openai_mini = 3, deepseek = 1 }`).
Every mistake (a router that contains itself, directly or through others, an unknown member, a weight for a
non-member) is a `ProviderConfigError` naming the router and the member or setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from partyflow.llm.errors import ProviderConfigError

if TYPE_CHECKING:
    from partyflow.llm.config import ProviderConfig

Strategy = Literal["priority", "round_robin", "weighted", "least_latency", "least_cost", "score"]
SCORE_CRITERIA = ("cost", "latency", "reliability")
DEFAULT_SCORE_WEIGHTS = {"cost": 1 / 3, "latency": 1 / 3, "reliability": 1 / 3}


class RouterConfig(BaseModel):
    """One router, as configured. `type` is always "router" so callers can tell it from a `ProviderConfig`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    members: tuple[str, ...] = Field(min_length=1)
    strategy: Strategy = "priority"
    weights: dict[str, float] = Field(default_factory=dict)
    cooldown: float = Field(default=30.0, gt=0, le=3600)
    failures_to_cooldown: int = Field(default=3, ge=1, le=100)
    timeout: float | None = Field(default=None, gt=0)
    max_attempts: int | None = Field(default=None, ge=1)  # default: every member once
    model: str | None = None  # always None: each member calls its own model

    @property
    def type(self) -> str:
        return "router"

    @property
    def cache(self) -> bool:
        return False

    def api_key(self, environ: Mapping[str, str] | None = None) -> None:
        """Routers hold no key; each member checks its own when it is tried (a member without one is skipped)."""
        del environ

    @field_validator("members")
    @classmethod
    def _unique(cls, members: tuple[str, ...]) -> tuple[str, ...]:
        seen: set[str] = set()
        for member in members:
            if member in seen:
                raise ValueError(f"member {member!r} is listed twice")
            seen.add(member)
        return members

    @model_validator(mode="after")
    def _weights_fit_strategy(self) -> RouterConfig:
        for key, value in self.weights.items():
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(f"weights.{key} must be a number >= 0")
        if self.strategy == "weighted":
            unknown = sorted(set(self.weights) - set(self.members))
            if unknown:
                raise ValueError(f"weights name {', '.join(map(repr, unknown))}, which are not members")
            if self.weights and not any(self.weights.get(m, 0) > 0 for m in self.members):
                raise ValueError("weights give every member 0: nothing could be chosen")
        elif self.strategy == "score":
            unknown = sorted(set(self.weights) - set(SCORE_CRITERIA))
            if unknown:
                raise ValueError(f"weights for strategy 'score' take {', '.join(SCORE_CRITERIA)}; "
                                 f"not {', '.join(map(repr, unknown))}")
            if self.weights and sum(self.weights.values()) <= 0:
                raise ValueError("weights for strategy 'score' must not all be 0")
        elif self.weights:
            raise ValueError(f"'weights' applies to strategies 'weighted' and 'score', not {self.strategy!r}")
        return self

    def member_weight(self, member: str) -> float:
        """A member's share under `weighted` (1 for members the table leaves out; all 1 without a table)."""
        return float(self.weights.get(member, 1.0 if not self.weights else 0.0))

    def score_weights(self) -> dict[str, float]:
        """The `score` criteria's weights, normalised to sum to 1 (missing criteria count 0)."""
        if not self.weights:
            return dict(DEFAULT_SCORE_WEIGHTS)
        total = sum(self.weights.values())
        return {c: self.weights.get(c, 0.0) / total for c in SCORE_CRITERIA}


def parse_routers(tables: object, providers: Mapping[str, ProviderConfig], source: str) -> dict[str, RouterConfig]:
    """The `[routers.NAME]` tables, checked against the providers and each other (unknown members, cycles)."""
    if not isinstance(tables, Mapping):
        raise ProviderConfigError(f"{source}: 'routers' must be a table of [routers.NAME] tables")
    routers: dict[str, RouterConfig] = {}
    for name, table in tables.items():
        if not isinstance(table, Mapping):
            raise ProviderConfigError(f"{source}: [routers.{name}] must be a table", provider=name,
                                      hint=_HINT)
        if name in providers:
            raise ProviderConfigError(f"{source}: {name!r} is both a provider and a router", provider=name,
                                      hint="Give the router another name")
        try:
            routers[name] = RouterConfig(name=name, **table)
        except ValidationError as exc:
            raise ProviderConfigError(f"{source}: [routers.{name}] {_describe(exc)}", provider=name,
                                      hint=_HINT) from None
    for router in routers.values():
        for member in router.members:
            if member not in providers and member not in routers:
                known = ", ".join(sorted({*providers, *routers} - {router.name})) or "none"
                raise ProviderConfigError(f"{source}: [routers.{router.name}] member {member!r} is neither a "
                                          f"provider nor a router (configured: {known})", provider=router.name,
                                          hint=_HINT)
    for router in routers.values():
        cycle = _cycle_from(router.name, routers, ())
        if cycle:
            path = " -> ".join(cycle)
            raise ProviderConfigError(f"{source}: router {router.name!r} contains itself ({path})",
                                      provider=router.name, hint="Remove the member that leads back to it")
    return routers


_HINT = "Fix the [routers.NAME] table in config.toml (see partyflow.llm.routing.config for the fields)"


def _cycle_from(name: str, routers: Mapping[str, RouterConfig], path: tuple[str, ...]) -> tuple[str, ...]:
    """The path back to `path[0]` through router members, or () when there is none."""
    if path and name == path[0]:
        return (*path, name)
    if name in path or name not in routers:
        return ()
    for member in routers[name].members:
        found = _cycle_from(member, routers, (*path, name))
        if found:
            return found
    return ()


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "is not a known field (see partyflow.llm.routing.config for the fields)"
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


