"""Prices per model, for calls whose provider table sets none: config.toml's `[prices]` and a price table file.

    [pricing]
    table = "prices.toml"        # under the home (or absolute); TOML or JSON, same shape as [prices]

    [prices."gpt-4o-mini"]
    input_per_1k = 0.00015
    output_per_1k = 0.0006

A provider's own `price_input_per_1k` / `price_output_per_1k` win over both; `[prices]` entries win over the
file's. Bad values (negative, not numbers, unknown keys) are `ProviderConfigError`s naming the entry and file.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from partyflow.llm.errors import ProviderConfigError

_KEYS = ("input_per_1k", "output_per_1k")


@dataclass(frozen=True)
class Price:
    input_per_1k: float = 0.0
    output_per_1k: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_1k + completion_tokens * self.output_per_1k) / 1000


@dataclass(frozen=True)
class PriceTable:
    """Model name -> price. Lookups try the exact name, then the part after a `vendor/` prefix."""

    prices: Mapping[str, Price] = field(default_factory=dict)

    def get(self, model: str | None) -> Price | None:
        if not model:
            return None
        return self.prices.get(model) or self.prices.get(model.rsplit("/", 1)[-1])

    def cost(self, model: str | None, prompt_tokens: int, completion_tokens: int) -> float | None:
        price = self.get(model)
        return None if price is None else price.cost(prompt_tokens, completion_tokens)

    @classmethod
    def from_config(cls, raw: Mapping[str, Any], root: Path, source: str = "config.toml") -> PriceTable:
        """The file named by `[pricing] table` (relative to `root`), overlaid with `[prices]`."""
        pricing = raw.get("pricing", {})
        if not isinstance(pricing, Mapping):
            raise ProviderConfigError(f"{source}: [pricing] must be a table")
        prices: dict[str, Price] = {}
        if (table := pricing.get("table")) is not None:
            if not isinstance(table, str):
                raise ProviderConfigError(f"{source}: [pricing] table must be a file name")
            prices.update(load_price_file(root / table))
        inline = raw.get("prices", {})
        if not isinstance(inline, Mapping):
            raise ProviderConfigError(f"{source}: 'prices' must be a table of [prices.\"MODEL\"] tables")
        prices.update(parse_prices(inline, source))
        return cls(prices)


def load_price_file(path: Path) -> dict[str, Price]:
    """Prices from a TOML or JSON file (by its suffix; other suffixes are tried as TOML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProviderConfigError(f"the price table {path} cannot be read ({exc.strerror or exc})",
                                  hint="Fix [pricing] table in config.toml") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProviderConfigError(f"the price table {path} is not valid {path.suffix.lstrip('.') or 'TOML'} "
                                  f"({exc})", hint="Fix the file") from None
    if not isinstance(data, Mapping):
        raise ProviderConfigError(f"the price table {path} must map model names to prices")
    return parse_prices(data, str(path))


def parse_prices(entries: Mapping[str, Any], source: str) -> dict[str, Price]:
    prices = {}
    for model, entry in entries.items():
        if not isinstance(entry, Mapping):
            raise ProviderConfigError(f"{source}: the price of {model!r} must be a table with {' and '.join(_KEYS)}")
        unknown = sorted(set(entry) - set(_KEYS))
        if unknown:
            raise ProviderConfigError(f"{source}: the price of {model!r} has unknown keys {', '.join(unknown)}",
                                      hint=f"Use {' and '.join(_KEYS)} (currency per 1000 tokens)")
        values = {}
        for key in _KEYS:
            value = entry.get(key, 0.0)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                    or value < 0:
                raise ProviderConfigError(f"{source}: {model!r} {key} must be a number >= 0, got {value!r}",
                                          hint="Prices are in currency per 1000 tokens")
            values[key] = float(value)
        prices[model] = Price(**values)
    return prices
