"""Providers configuration: the `[providers.NAME]` tables of the home's config.toml, with environment overrides.

    [providers.deepseek]
    type = "openai_compat"
    base_url = "https://api.deepseek.com/v1"
    api_key_env = "DEEPSEEK_API_KEY"      # the NAME of the variable holding the key; keys never go in this file
    model = "deepseek-chat"
    price_input_per_1k = 0.00027
    price_output_per_1k = 0.0011
    cache = true                          # answer repeated deterministic requests from the response cache

Any field of any provider can be set or overridden from the environment as
`PARTYFLOW_PROVIDERS__<NAME>__<FIELD>=value`, for example `PARTYFLOW_PROVIDERS__DEEPSEEK__TIMEOUT=30`. NAME matches
a configured provider case-insensitively with `-` written as `_`; a NAME that matches none defines a new provider
(named in lower case), which then needs at least `__TYPE`. `extra_headers` takes a JSON object. Workflows name a
provider; they never hold its key.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from partyflow.config import Home
from partyflow.llm.errors import ProviderConfigError
from partyflow.llm.routing.config import RouterConfig, parse_routers

ENV_PREFIX = "PARTYFLOW_PROVIDERS__"
ProviderType = Literal["openai_compat", "transformers", "llamacpp"]
_LOCAL_TYPES = ("transformers", "llamacpp")
_REMOTE_ONLY_FIELDS = ("base_url", "api_key_env", "extra_headers")
_LLAMACPP_ONLY_FIELDS = ("n_ctx", "n_threads", "n_gpu_layers", "chat_format", "mmproj")
_SECRET_FIELDS = ("api_key", "key", "token", "secret", "password")


class ProviderConfig(BaseModel):
    """One provider, as configured; holds the name of its key variable, never the key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: ProviderType
    base_url: str | None = None
    api_key_env: str | None = None
    model: str | None = None
    embedding_model: str | None = None
    path: str | None = None
    price_input_per_1k: float | None = Field(default=None, ge=0)
    price_output_per_1k: float | None = Field(default=None, ge=0)
    timeout: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=20)
    cache: bool = False  # opt-in: deterministic requests answered from the home's response cache (llm/cache.py)
    extra_headers: dict[str, str] = Field(default_factory=dict, repr=False)  # may carry credentials
    # llamacpp only (None: the provider's default; see partyflow.llm.providers.llamacpp)
    n_ctx: int | None = Field(default=None, ge=0)  # context window in tokens; 0: the model's trained length
    n_threads: int | None = Field(default=None, ge=1)  # CPU threads for generation and prompt processing
    n_gpu_layers: int | None = Field(default=None, ge=-1)  # layers offloaded to a GPU; -1: all
    chat_format: str | None = None  # a template embedded in the GGUF, or a llama-cpp-python format name
    mmproj: str | None = None  # a multimodal projector GGUF (images in), under models/gguf/ or absolute
    # issue 18: client-side limits (token buckets, enforced by routers) and the window a context fallback compares
    rpm: int | None = Field(default=None, ge=1)  # requests per minute this client may send
    tpm: int | None = Field(default=None, ge=1)  # tokens (prompt + completion) per minute
    context_window: int | None = Field(default=None, ge=1)  # the model's context in tokens, when known
    max_batch: int | None = Field(default=None, ge=1, le=1024)  # transformers: most requests generated together
    # (dynamic batching, default 32; 1 switches it off)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return url

    @model_validator(mode="after")
    def _fields_fit_type(self) -> ProviderConfig:
        if self.type in _LOCAL_TYPES:
            if not self.path:
                raise ValueError(f"a {self.type!r} provider needs 'path' (a model under the home's models/)")
            for name in _REMOTE_ONLY_FIELDS:
                if getattr(self, name):
                    raise ValueError(f"'{name}' does not apply to a {self.type!r} provider")
        elif self.path:
            raise ValueError("'path' applies only to local providers (transformers, llamacpp)")
        if self.type != "transformers" and self.max_batch is not None:
            raise ValueError("'max_batch' applies only to a 'transformers' provider")
        if self.type != "llamacpp":
            for name in _LLAMACPP_ONLY_FIELDS:
                if getattr(self, name) is not None:
                    raise ValueError(f"'{name}' applies only to a 'llamacpp' provider")
        return self

    def api_key(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The key from the variable named by `api_key_env`; None when the provider needs none."""
        if not self.api_key_env:
            return None
        key = (os.environ if environ is None else environ).get(self.api_key_env, "").strip()
        if not key:
            raise ProviderConfigError(
                f"the API key variable ${self.api_key_env} is not set", provider=self.name, model=self.model,
                hint=f"Set it in the environment (export {self.api_key_env}=...) or change api_key_env")
        return key

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """The price of a call from the configured per-1k prices; None when no price is configured."""
        if self.price_input_per_1k is None and self.price_output_per_1k is None:
            return None
        return (prompt_tokens * (self.price_input_per_1k or 0.0)
                + completion_tokens * (self.price_output_per_1k or 0.0)) / 1000

    def model_path(self, home: Home) -> Path:
        """A local provider's model location: relative paths live under `models/llm/` (or `models/gguf/`)."""
        if not self.path:
            raise ProviderConfigError("no 'path' is configured", provider=self.name)
        if Path(self.path).is_absolute():
            return Path(self.path)
        base = home.models / ("gguf" if self.type == "llamacpp" else "llm")
        try:
            return home.confine(base, self.path)
        except PermissionError:
            raise ProviderConfigError(f"'path' {self.path!r} leaves {base}", provider=self.name,
                                      hint="Use a path inside the home's models directory") from None

    def projector_path(self, home: Home) -> Path | None:
        """A llamacpp provider's multimodal projector (`mmproj`), resolved like `path`; None when not set."""
        if not self.mmproj:
            return None
        if Path(self.mmproj).is_absolute():
            return Path(self.mmproj)
        base = home.models / "gguf"
        try:
            return home.confine(base, self.mmproj)
        except PermissionError:
            raise ProviderConfigError(f"'mmproj' {self.mmproj!r} leaves {base}", provider=self.name,
                                      hint="Use a path inside the home's models directory") from None


@dataclass(frozen=True)
class ProvidersConfig:
    """All configured providers and routers by name; `source` names where they came from, for error messages.

    A router (`[routers.NAME]`, see partyflow.llm.routing) is usable wherever a provider name is: `entry(name)`
    answers either, and `partyflow.llm.providers.create` builds either.
    """

    providers: Mapping[str, ProviderConfig]
    source: str = "config.toml"
    routers: Mapping[str, RouterConfig] = dataclass_field(default_factory=dict)

    @classmethod
    def load(cls, home: Home, environ: Mapping[str, str] | None = None) -> ProvidersConfig:
        """Read the home's config.toml (absent is fine: no providers) and apply environment overrides."""
        path = home.config_file
        raw: Mapping[str, Any] = {}
        if path.exists():
            try:
                raw = tomllib.loads(path.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ProviderConfigError(f"{path} is not valid TOML ({exc})",
                                          hint="Fix or remove the file") from None
        return cls.from_mapping(raw, environ=environ, source=str(path))

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, environ: Mapping[str, str] | None = None,
                     source: str = "config.toml") -> ProvidersConfig:
        """Providers from a parsed config.toml (the whole document; its `providers` table is used)."""
        tables = raw.get("providers", {})
        if not isinstance(tables, Mapping):
            raise ProviderConfigError(f"{source}: 'providers' must be a table of [providers.NAME] tables")
        merged = _apply_env_overrides(tables, os.environ if environ is None else environ, source)
        providers = {name: _parse_provider(name, table, source) for name, table in merged.items()}
        routers = parse_routers(raw.get("routers", {}), providers, source)
        return cls(providers, source, routers)

    def get(self, name: str) -> ProviderConfig:
        """The provider called `name` (not a router: use `entry` where either will do)."""
        try:
            return self.providers[name]
        except KeyError:
            if name in self.routers:
                raise ProviderConfigError(f"{name!r} is a router, not a provider", provider=name,
                                          hint="Use it where a model is chosen (loader nodes, agents)") from None
            raise self._unknown(name) from None

    def entry(self, name: str) -> ProviderConfig | RouterConfig:
        """The provider or the router called `name`."""
        found = self.providers.get(name) or self.routers.get(name)
        if found is None:
            raise self._unknown(name)
        return found

    def _unknown(self, name: str) -> ProviderConfigError:
        known = ", ".join(sorted(self.names())) or "none"
        return ProviderConfigError(
            f"unknown provider {name!r} (configured: {known})", provider=name,
            hint=f"Add a [providers.{name}] table (or a [routers.{name}] one) to {self.source} or use a "
                 "configured name")

    def names(self) -> list[str]:
        """Provider and router names, sorted: what a loader node offers."""
        return sorted({*self.providers, *self.routers})

    def __iter__(self) -> Iterator[str]:
        return iter(self.providers)

    def __contains__(self, name: object) -> bool:
        return name in self.providers

    def __len__(self) -> int:
        return len(self.providers)


def _parse_provider(name: str, table: object, source: str) -> ProviderConfig:
    if not isinstance(table, Mapping):
        raise ProviderConfigError(f"{source}: [providers.{name}] must be a table", provider=name)
    for field in _SECRET_FIELDS:
        if field in table:  # the value is a secret: refuse it without ever echoing it
            raise ProviderConfigError(
                f"{source}: [providers.{name}] has {field!r}, but keys do not belong in config files",
                provider=name, hint="Put the key in an environment variable and name that variable in api_key_env")
    try:
        return ProviderConfig(name=name, **table)
    except ValidationError as exc:
        raise ProviderConfigError(f"{source}: [providers.{name}] {_describe(exc)}", provider=name) from None


def _describe(exc: ValidationError) -> str:
    """Pydantic's errors without the input values, which may be secrets."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "is not a known field (see partyflow.llm.config for the fields)"
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


def _apply_env_overrides(tables: Mapping[str, Any], environ: Mapping[str, str],
                         source: str) -> dict[str, dict[str, Any]]:
    merged = {name: dict(table) if isinstance(table, Mapping) else table for name, table in tables.items()}
    by_env_name = {_env_name(name): name for name in merged}
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX):
            continue
        env_name, _, field = variable.removeprefix(ENV_PREFIX).partition("__")
        if not env_name or not field:
            raise ProviderConfigError(f"environment variable {variable} must look like "
                                      f"{ENV_PREFIX}<NAME>__<FIELD>")
        name = by_env_name.setdefault(env_name.upper(), env_name.lower())
        table = merged.setdefault(name, {})
        if not isinstance(table, dict):
            continue  # reported by _parse_provider
        table[field.lower()] = _env_value(field.lower(), environ[variable], variable)
    return merged


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def _env_value(field: str, value: str, variable: str) -> Any:
    if field != "extra_headers":
        return value  # pydantic converts numbers from text
    try:
        headers = json.loads(value)
    except json.JSONDecodeError:
        headers = None
    if not isinstance(headers, dict):
        raise ProviderConfigError(f"{variable} must be a JSON object of header names to values",
                                  hint='For example {"X-Title": "partyflow"}')
    return headers
