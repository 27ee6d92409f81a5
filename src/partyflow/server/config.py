"""`ServerConfig`: how one server listens, authenticates and limits what clients may send."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Literal

DEFAULT_PORT = 8188
DEFAULT_MAX_UPLOAD_BYTES = 100 * 1024 * 1024  # ComfyUI's default --max-upload-size is 100 MB


class ServerConfigError(ValueError):
    """A server setting that would be unsafe or cannot work; the message says which flag fixes it."""


@dataclass(frozen=True)
class ServerConfig:
    """Listening address, auth and limits. `check()` refuses combinations that would expose an open server."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str | None = None            # required on every request when set (Bearer header, ?token=, cookie)
    insecure: bool = False              # allow a non-loopback address without a token
    security_level: str | None = None   # the manager routes' level; None: PARTYFLOW_SECURITY_LEVEL, then config.toml
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    multi_user: bool = False            # the `comfy-user` header selects a user's data
    log_format: Literal["text", "json"] = "text"
    shutdown_grace_s: float = 8.0       # how long SIGTERM waits for the running prompt before re-queuing it
    ws_max_pending_bytes: int = 8 * 1024 * 1024  # per WebSocket client; a client further behind is dropped
    ws_max_pending_messages: int = 10_000
    trusted_hosts: tuple[str, ...] = field(default_factory=tuple)  # extra Host names accepted on loopback
    health_interval_s: float | None = None  # pack health checks (server/health.py); None: config.toml, else off

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def check(self) -> ServerConfig:
        if not self.loopback and not self.token and not self.insecure:
            raise ServerConfigError(
                f"listening on {self.host} exposes the server beyond this machine: set a token with --token or "
                "PARTYFLOW_API_TOKEN (clients send 'Authorization: Bearer <token>'), or pass --insecure")
        if not 0 <= self.port <= 65535:
            raise ServerConfigError(f"port {self.port} is not a TCP port: give 0 to 65535 (0 picks a free one)")
        if self.max_upload_bytes <= 0:
            raise ServerConfigError("max_upload_bytes must be positive")
        if self.token is not None and len(self.token) < 8:
            raise ServerConfigError("the API token must be at least 8 characters long")
        return self


def is_loopback(host: str) -> bool:
    """True for loopback addresses and for 'localhost'; a name is resolved, so 'myhost' is judged by its IPs."""
    name = host.strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)
