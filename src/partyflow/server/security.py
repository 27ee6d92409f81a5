"""Request checks that run before any handler: cross-site requests and unexpected errors.

* **Who may call what** (tokens, users, roles, sessions) is decided in one place: server/access.py.
* **Origin/Host** (ComfyUI's rule against cross-site requests to a local server): when the Host header names a
  loopback address and an Origin header is present, the Origin's scheme, host and port must be exactly the
  request's (an https page cannot drive an http server, a malformed Origin is refused). On a loopback-only server
  without a token the Host itself must also be loopback (or a configured trusted name): that stops DNS-rebinding
  pages, and a Host that is not exactly one host and port (`127.0.0.1:8188, evil.example`) is not loopback.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from partyflow.server.config import ServerConfig
from partyflow.server.errors import json_error

logger = logging.getLogger("partyflow.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def origin_middleware(config: ServerConfig) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    trusted = {h.lower() for h in config.trusted_hosts}
    check_host = config.loopback and not config.token

    @web.middleware
    async def check_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        parsed = split_host(host, request.scheme) if host else None
        host_name = parsed[0] if parsed else ""
        if check_host and host and not (parsed and (is_loopback_name(host_name) or host_name in trusted)):
            logger.warning("refused a request for Host %r on a loopback-only server", host)
            return json_error(403, "forbidden", "Host not allowed",
                              "this server only answers requests addressed to localhost; add the name to "
                              "trusted_hosts or listen on another address with a token")
        origin = request.headers.get("Origin")
        if origin and parsed and is_loopback_name(host_name):
            if split_origin(origin) != (request.scheme, *parsed):
                logger.warning("refused a cross-site request from Origin %r to Host %r", origin, host)
                return json_error(403, "forbidden", "Cross-origin request refused",
                                  "the Origin header does not match the scheme, host and port this server "
                                  "answers on")
        return await handler(request)

    return check_origin


def is_loopback_name(name: str) -> bool:
    """Loopback without DNS: literal loopback addresses and localhost (a request must never trigger lookups)."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


# One host name or address and an optional port, nothing else: a Host such as "127.0.0.1:8188, evil.example"
# (two values joined by a proxy or a client) or "localhost:8188.evil.example" is not a loopback host.
_HOST = re.compile(r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9_.-]+))(?::(?P<port>[0-9]{1,5}))?")


@functools.lru_cache(maxsize=256)  # every request asks; bounded, so ever new Host values only evict older answers
def split_host(host: str, scheme: str) -> tuple[str, int] | None:
    """`(lower-case host, port)` of a Host header value, the scheme's default port when none is given; None when
    the value is not exactly one host and port."""
    match = _HOST.fullmatch(host)
    if match is None:
        return None
    name = match["ipv6"] or match["name"]
    if match["ipv6"]:
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return None
    port = int(match["port"]) if match["port"] else _DEFAULT_PORTS.get(scheme, 80)
    if not 0 < port < 65536:
        return None
    return name.lower(), port


def split_origin(origin: str) -> tuple[str, str, int] | None:
    """`(scheme, host, port)` of an Origin header (`scheme://host[:port]`, nothing more), or None when it is
    malformed (`null`, a bad port, an unclosed IPv6 bracket, a path)."""
    scheme, sep, rest = origin.partition("://")
    if not sep or scheme.lower() not in _DEFAULT_PORTS:
        return None
    parsed = split_host(rest, scheme.lower())
    if parsed is None:
        return None
    return (scheme.lower(), *parsed)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """An unexpected exception becomes a logged 500 with a JSON body, never a stack trace sent to the client."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json" and not exc.headers.get("Location"):
            return json_error(exc.status, "http_error", exc.reason, exc.text or "")
        raise
    except Exception:
        logger.exception("request %s %s failed", request.method, request.path)
        return json_error(500, "server_error", "Internal server error", "the server log has the details")
