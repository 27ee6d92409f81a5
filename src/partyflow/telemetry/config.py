"""The `[telemetry]` table of config.toml: where traces go and what they may contain.

    [telemetry]
    otlp_endpoint = "http://127.0.0.1:4318"     # an OTLP/HTTP receiver (collector, Jaeger, Tempo, Phoenix, Langfuse)
    service_name = "partyflow"                   # the `service.name` resource attribute
    headers = { Authorization = "LANGFUSE_OTLP_AUTH" }   # header -> NAME of the environment variable holding it
    capture_content = false                      # prompts and answers in spans (redacted of credentials)
    timeout = 10                                 # seconds per export request
    enabled = true                               # false keeps the table but sends nothing

Header values are read from the environment, never from the file, so a token for the tracing backend lives where
provider keys do. Without the table (or with `enabled = false`) nothing is imported and nothing is traced.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from partyflow.config import ConfigError

_FIELDS = ("otlp_endpoint", "service_name", "headers", "capture_content", "timeout", "enabled")


@dataclass(frozen=True)
class TelemetryConfig:
    otlp_endpoint: str
    service_name: str = "partyflow"
    headers: Mapping[str, str] = field(default_factory=dict)  # header name -> environment variable name
    capture_content: bool = False
    timeout: float = 10.0

    @property
    def traces_url(self) -> str:
        """The OTLP/HTTP traces URL: `<endpoint>/v1/traces`, unless the endpoint already names that path."""
        base = self.otlp_endpoint.rstrip("/")
        return base if base.endswith("/v1/traces") else f"{base}/v1/traces"

    def header_values(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The export headers, read from the environment; a variable that is not set is a `ConfigError` naming it."""
        env = os.environ if environ is None else environ
        values: dict[str, str] = {}
        for header, variable in self.headers.items():
            value = env.get(variable)
            if not value:
                raise ConfigError(f"[telemetry] headers.{header}: the environment variable {variable} is not set")
            values[header] = value
        return values


def parse_telemetry(raw: Mapping[str, object], source: str = "config.toml") -> TelemetryConfig | None:
    """The telemetry settings of a parsed config.toml; None when tracing is not configured (or disabled)."""
    table = raw.get("telemetry")
    if table is None:
        return None
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source}: 'telemetry' must be a table ([telemetry])")
    unknown = sorted(set(table) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{source}: [telemetry] {', '.join(unknown)}: not a known setting "
                          f"(known: {', '.join(_FIELDS)})")
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{source}: [telemetry] enabled must be true or false")
    if not enabled:
        return None
    endpoint = table.get("otlp_endpoint")
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise ConfigError(f"{source}: [telemetry] otlp_endpoint is required (for example "
                          "\"http://127.0.0.1:4318\"), or set enabled = false")
    parts = urlsplit(endpoint.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{source}: [telemetry] otlp_endpoint {endpoint!r} is not an http(s) URL")
    if parts.username or parts.password:
        raise ConfigError(f"{source}: [telemetry] otlp_endpoint must not carry credentials; put them in a header "
                          "read from the environment (headers = { Authorization = \"VARIABLE\" })")
    service = table.get("service_name", "partyflow")
    if not isinstance(service, str) or not service.strip():
        raise ConfigError(f"{source}: [telemetry] service_name must be a non-empty string")
    headers = table.get("headers", {})
    if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in headers.items()):
        raise ConfigError(f"{source}: [telemetry] headers must map header names to environment variable names, "
                          "for example { Authorization = \"OTLP_AUTH_HEADER\" }")
    capture = table.get("capture_content", False)
    if not isinstance(capture, bool):
        raise ConfigError(f"{source}: [telemetry] capture_content must be true or false")
    timeout = table.get("timeout", 10.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 300:
        raise ConfigError(f"{source}: [telemetry] timeout must be a number of seconds in (0, 300]")
    return TelemetryConfig(otlp_endpoint=endpoint.strip(), service_name=service.strip(), headers=dict(headers),
                           capture_content=capture, timeout=float(timeout))
