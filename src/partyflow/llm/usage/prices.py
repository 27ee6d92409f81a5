"""Prices per model, for calls whose provider table sets none: config.toml's `[prices]` and a price table file.

    [pricing]
    table = "prices.toml"        # under the home (or absolute); TOML or JSON, same shape as [prices]

    [prices."gpt-4o-mini"]
    input_per_1k = 0.00015
    output_per_1k = 0.0006

    [prices."gpt-image-1"]       # media models (issue 13): per image, by size and quality or flat
    per_image = { "1024x1024/high" = 0.167, "1024x1024" = 0.042, "default" = 0.063 }
    [prices."tts-1"]
    per_1k_characters = 0.015    # speech: per 1000 characters read
    [prices."whisper-1"]
    per_minute = 0.006           # transcription: per minute of audio

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

_KEYS = ("input_per_1k", "output_per_1k", "per_image", "per_1k_characters", "per_minute")
_NUMBER_KEYS = ("input_per_1k", "output_per_1k", "per_1k_characters", "per_minute")


@dataclass(frozen=True)
class Price:
    """A model's prices: tokens for chat, and (issue 13) images, characters read aloud, minutes transcribed.

    `per_image` maps `SIZE/QUALITY`, `SIZE`, `QUALITY` or `default` to a price per image (a flat price is
    stored as `default`); a media price that is not set makes that call's cost unknown (None), as for chat
    models without a price.
    """

    input_per_1k: float = 0.0
    output_per_1k: float = 0.0
    per_image: Mapping[str, float] = field(default_factory=dict)
    per_1k_characters: float | None = None
    per_minute: float | None = None

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_1k + completion_tokens * self.output_per_1k) / 1000

    def image_cost(self, count: int, size: str | None = None, quality: str | None = None) -> float | None:
        """`count` images of `size` and `quality`: the most specific price that is set, else None."""
        keys = [f"{size}/{quality}", size, quality, "default"] if size and quality else [size, quality, "default"]
        each = next((self.per_image[k] for k in keys if k and k in self.per_image), None)
        return None if each is None else each * count

    def speech_cost(self, characters: int) -> float | None:
        return None if self.per_1k_characters is None else characters * self.per_1k_characters / 1000

    def transcription_cost(self, seconds: float) -> float | None:
        return None if self.per_minute is None else seconds / 60 * self.per_minute


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
            raise ProviderConfigError(f"{source}: the price of {model!r} must be a table with price keys ({', '.join(_KEYS)})")
        unknown = sorted(set(entry) - set(_KEYS))
        if unknown:
            raise ProviderConfigError(f"{source}: the price of {model!r} has unknown keys {', '.join(unknown)}",
                                      hint=f"Use {', '.join(_KEYS)}")
        values: dict[str, Any] = {}
        for key in _NUMBER_KEYS:
            if key in entry or key in ("input_per_1k", "output_per_1k"):
                values[key] = _amount(entry.get(key, 0.0), f"{source}: {model!r} {key}")
        if "per_image" in entry:
            values["per_image"] = _image_prices(entry["per_image"], f"{source}: {model!r} per_image")
        prices[model] = Price(**values)
    return prices


def _amount(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ProviderConfigError(f"{where} must be a number >= 0, got {value!r}",
                                  hint="Prices are in currency: per 1000 tokens, per image, per 1000 characters "
                                       "or per minute")
    return float(value)


def _image_prices(value: Any, where: str) -> dict[str, float]:
    """A flat price per image, or a table from `SIZE/QUALITY`, `SIZE`, `QUALITY` or `default` to one."""
    if not isinstance(value, Mapping):
        return {"default": _amount(value, where)}
    return {str(key): _amount(price, f"{where}.{key}") for key, price in value.items()}
