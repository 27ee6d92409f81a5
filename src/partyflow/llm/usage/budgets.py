"""Budgets: a limit on money or tokens per provider, router, workflow or user, per day or month (UTC).

    [budgets.openai-daily]
    provider = "openai_mini"     # exactly one of: provider, router, workflow, user
    period = "day"               # day | month
    max_cost = 2.0               # exactly one of: max_cost (currency of the prices), max_tokens

Budgets are checked before each call against the usage ledger; a spent budget refuses the call with a
`BudgetExceededError` that names the budget, what was spent and when the period ends (a router then tries its
next member). The check is not a reservation: calls that start together may overshoot by their own usage.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from partyflow.llm.errors import ProviderConfigError

Scope = Literal["provider", "router", "workflow", "user"]
SCOPES: tuple[Scope, ...] = ("provider", "router", "workflow", "user")
_FIELDS = {*SCOPES, "period", "max_cost", "max_tokens"}


@dataclass(frozen=True)
class Budget:
    name: str
    scope: Scope
    target: str
    period: Literal["day", "month"]
    max_cost: float | None = None
    max_tokens: int | None = None

    def describe(self) -> str:
        limit = f"{self.max_cost:g} in cost" if self.max_cost is not None else f"{self.max_tokens} tokens"
        return f"budget {self.name!r} ({self.scope} {self.target!r}: {limit} per {self.period})"


def period_start(period: str, now: float) -> float:
    """The Unix time the current day or month began, in UTC."""
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        start = start.replace(day=1)
    return start.timestamp()


def period_end(period: str, now: float) -> float:
    start = dt.datetime.fromtimestamp(period_start(period, now), dt.UTC)
    if period == "day":
        return (start + dt.timedelta(days=1)).timestamp()
    return (start.replace(year=start.year + 1, month=1) if start.month == 12
            else start.replace(month=start.month + 1)).timestamp()


def parse_budgets(raw: Mapping[str, Any], source: str = "config.toml") -> tuple[Budget, ...]:
    tables = raw.get("budgets", {})
    if not isinstance(tables, Mapping):
        raise ProviderConfigError(f"{source}: 'budgets' must be a table of [budgets.NAME] tables")
    budgets = []
    for name, table in tables.items():
        where = f"{source}: [budgets.{name}]"
        if not isinstance(table, Mapping):
            raise ProviderConfigError(f"{where} must be a table")
        unknown = sorted(set(table) - _FIELDS)
        if unknown:
            raise ProviderConfigError(f"{where} has unknown fields {', '.join(unknown)}",
                                      hint=f"Use one of {', '.join(SCOPES)}, period, and max_cost or max_tokens")
        scopes = [s for s in SCOPES if s in table]
        if len(scopes) != 1 or not isinstance(table[scopes[0]], str) or not table[scopes[0]]:
            raise ProviderConfigError(f"{where} needs exactly one of {', '.join(SCOPES)}, naming what it limits")
        period = table.get("period", "day")
        if period not in ("day", "month"):
            raise ProviderConfigError(f"{where} period must be 'day' or 'month', got {period!r}")
        limits = [k for k in ("max_cost", "max_tokens") if k in table]
        if len(limits) != 1:
            raise ProviderConfigError(f"{where} needs exactly one of max_cost and max_tokens")
        value = table[limits[0]]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or \
                (limits[0] == "max_tokens" and not isinstance(value, int)):
            raise ProviderConfigError(f"{where} {limits[0]} must be a number >= 0"
                                      f"{' (whole tokens)' if limits[0] == 'max_tokens' else ''}, got {value!r}")
        budgets.append(Budget(name=name, scope=scopes[0], target=table[scopes[0]], period=period,
                              max_cost=float(value) if limits[0] == "max_cost" else None,
                              max_tokens=int(value) if limits[0] == "max_tokens" else None))
    return tuple(budgets)
