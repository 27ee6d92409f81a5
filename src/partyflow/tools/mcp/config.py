"""MCP servers as configured: the `[mcp.servers.NAME]` tables of the home's config.toml, or one given inline.

    [mcp.servers.files]                      # stdio: partyflow starts the server and talks over its stdin/stdout
    command = "npx"
    args = ["-y", "@modelcontextprotocol/server-filesystem", "/srv/docs"]
    env = { GITHUB_TOKEN = "${GITHUB_TOKEN}" }   # ${NAME} is read from partyflow's environment when connecting

    [mcp.servers.search]                     # streamable HTTP
    url = "https://mcp.example.com/mcp"
    headers = { Authorization = "Bearer ${SEARCH_TOKEN}" }
    timeout = 30                             # seconds one request may take (default 60)

A stdio server with `sandbox = true` (and every command given inline in a workflow) is started in the OS sandbox:
with network, but without the home directory or partyflow's home, writing only in a throwaway folder.

Secrets stay in the environment: the file names them as `${NAME}`, they are substituted only when a connection
opens, and every substituted value is redacted from the errors we raise. A config object therefore holds no
secret and can travel along node links, be cached and be shown.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from partyflow.config import Home, Settings

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class MCPConfigError(ValueError):
    """An MCP server configuration that cannot be used; the message names the server and the field."""


class MCPServerConfig(BaseModel):
    """How to reach one MCP server: `command` (stdio) or `url` (streamable HTTP), never both."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict, repr=False)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    timeout: float = Field(default=60.0, gt=0)
    connect_timeout: float = Field(default=30.0, gt=0)
    sandbox: bool = False  # start the stdio server in the OS sandbox (always so for commands given inline)

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerConfig:
        if bool(self.command) == bool(self.url):
            raise ValueError("give either 'command' (a stdio server) or 'url' (a streamable HTTP server)")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError("'url' must start with http:// or https://")
        if self.command and self.headers:
            raise ValueError("'headers' only apply to a 'url' server; a stdio server takes 'env'")
        if self.url and (self.env or self.args):
            raise ValueError("'env' and 'args' only apply to a 'command' server")
        if self.url and self.sandbox:
            raise ValueError("'sandbox' only applies to a 'command' server")
        return self

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "stdio" if self.command else "http"

    @property
    def target(self) -> str:
        """Where the server is, for messages: the URL, or the command line (values of ${...} not substituted)."""
        return self.url or shlex.join([self.command or "", *self.args])

    def resolve(self, environ: Mapping[str, str] | None = None) -> ResolvedServer:
        """The env and headers with `${NAME}` substituted; `MCPConfigError` names a variable that is not set."""
        source = os.environ if environ is None else environ
        secrets: list[str] = []

        def substitute(field: str, key: str, value: str) -> str:
            def one(match: re.Match[str]) -> str:
                variable = match.group(1)
                found = source.get(variable)
                if found is None:
                    raise MCPConfigError(
                        f"MCP server {self.name!r}: {field}.{key} needs the environment variable ${variable}, "
                        f"which is not set; export it before starting partyflow")
                secrets.append(found)
                return found
            return _VARIABLE.sub(one, value)

        env = {key: substitute("env", key, value) for key, value in self.env.items()}
        headers = {key: substitute("headers", key, value) for key, value in self.headers.items()}
        return ResolvedServer(self, env, headers, tuple(s for s in secrets if s))


@dataclass(frozen=True)
class ResolvedServer:
    """A config with its secrets filled in: lives only while a connection opens, never stored or shown."""

    config: MCPServerConfig
    env: dict[str, str]
    headers: dict[str, str]
    secrets: tuple[str, ...]

    def __repr__(self) -> str:  # the env and headers may hold secrets
        return f"ResolvedServer({self.config.name!r})"


def parse_server(name: str, table: Any, source: str = "config.toml") -> MCPServerConfig:
    """One `[mcp.servers.NAME]` table as a config; `MCPConfigError` says what is wrong without echoing values."""
    where = f"{source}: [mcp.servers.{name}]"
    if not _NAME.match(name):
        raise MCPConfigError(f"{where}: a server name uses letters, digits, '_', '-' and '.' only")
    if not isinstance(table, Mapping):
        raise MCPConfigError(f"{where} must be a table")
    values = dict(table)
    if isinstance(values.get("args"), list):
        values["args"] = tuple(values["args"])
    try:
        return MCPServerConfig(name=name, **values)
    except TypeError:
        raise MCPConfigError(f"{where}: 'name' is taken from the table's name; remove the field") from None
    except ValidationError as exc:
        raise MCPConfigError(f"{where}: {_describe(exc)}") from None


def load_servers(home: Home) -> dict[str, MCPServerConfig]:
    """Every server configured in the home's config.toml, by name (an empty dict when there is none)."""
    raw = Settings.load(home).raw.get("mcp", {})
    servers = raw.get("servers", {}) if isinstance(raw, Mapping) else {}
    if not isinstance(servers, Mapping):
        raise MCPConfigError(f"{home.config_file}: [mcp.servers] must be a table of tables")
    return {name: parse_server(name, table, str(home.config_file)) for name, table in servers.items()}


def configured_server(home: Home, name: str) -> MCPServerConfig:
    """The server `name` of the home's config.toml; `MCPConfigError` lists the configured ones otherwise."""
    servers = load_servers(home)
    if name not in servers:
        known = ", ".join(sorted(servers)) or "none"
        raise MCPConfigError(f"no MCP server {name!r} in {home.config_file} (configured: {known}); add a "
                             f"[mcp.servers.{name}] table with a 'command' or a 'url'")
    return servers[name]


def inline_server(spec: str, *, name: str = "inline", timeout: float = 60.0) -> MCPServerConfig:
    """A server from one line: a URL (streamable HTTP) or a command line (stdio, split like a shell would).

    A command given inline comes from a workflow, not from the administrator's config.toml, so it runs in the OS
    sandbox (`partyflow.security.sandbox`): network, but no home, nothing writable but a throwaway folder."""
    text = spec.strip()
    if not text:
        raise MCPConfigError("give an MCP server: a configured name, a URL or a command line")
    if text.startswith(("http://", "https://")):
        return MCPServerConfig(name=name, url=text, timeout=timeout)
    try:
        parts = shlex.split(text)
    except ValueError as exc:
        raise MCPConfigError(f"the MCP server command {text!r} cannot be split into words ({exc})") from None
    return MCPServerConfig(name=name, command=parts[0], args=tuple(parts[1:]), timeout=timeout, sandbox=True)


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = ("is not a known field (command, args, env, cwd, url, headers, timeout, connect_timeout, "
                       "sandbox)")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)
