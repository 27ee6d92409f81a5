"""Request checks that run before any handler: API token, cross-site requests, and unexpected errors.

* **Token**: when the server has one, every request must carry it, as `Authorization: Bearer <token>`, a `token`
  query parameter (WebSockets and the first page load cannot set headers) or the cookie set after such a page load.
  Compared in constant time; never logged.
* **Origin/Host** (ComfyUI's rule against cross-site requests to a local server): when the Host header names a
  loopback address and an Origin header is present, their host:port must match. On a loopback-only server without a
  token the Host itself must also be loopback (or a configured trusted name): that stops DNS-rebinding pages.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from partyflow.server.config import ServerConfig
from partyflow.server.errors import json_error

logger = logging.getLogger("partyflow.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOKEN_COOKIE = "partyflow_token"
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def token_middleware(token: str) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    expected = token.encode()

    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        offered, from_query = _offered_token(request)
        if offered is None or not hmac.compare_digest(offered.encode(), expected):
            return json_error(401, "unauthorized", "Missing or wrong API token",
                              "send 'Authorization: Bearer <token>' (or ?token=<token> on the WebSocket URL)")
        response = await handler(request)
        if from_query and request.method == "GET" and not response.prepared:
            # A browser opened a page with ?token=: let the page's own fetches through without the query.
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict", path="/")
        return response

    return check_token


def _offered_token(request: web.Request) -> tuple[str | None, bool]:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip(), False
    if "token" in request.query:
        return request.query["token"], True
    cookie = request.cookies.get(TOKEN_COOKIE)
    return cookie, False


def origin_middleware(config: ServerConfig) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    trusted = {h.lower() for h in config.trusted_hosts}
    check_host = config.loopback and not config.token

    @web.middleware
    async def check_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        host_name, host_port, host_loopback = _host_facts(host, request.scheme)
        if check_host and host and not (host_loopback or host_name in trusted):
            logger.warning("refused a request for Host %r on a loopback-only server", host)
            return json_error(403, "forbidden", "Host not allowed",
                              "this server only answers requests addressed to localhost; add the name to "
                              "trusted_hosts or listen on another address with a token")
        origin = request.headers.get("Origin")
        if origin and host and host_loopback:
            parts = urlsplit(origin)
            origin_port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
            if (parts.hostname or "").lower() != host_name or origin_port != host_port:
                logger.warning("refused a cross-site request from Origin %r to Host %r", origin, host)
                return json_error(403, "forbidden", "Cross-origin request refused",
                                  "the Origin header does not match the Host this server answers on")
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


@functools.lru_cache(maxsize=256)
def _host_facts(host: str, scheme: str) -> tuple[str, int, bool]:
    """Name, port and loopback-ness of a Host header; remembered, since every request asks (bounded: a client
    sending ever new Host values only evicts older answers)."""
    name, port = _split_host(host, scheme)
    return name, port, is_loopback_name(name)


def _split_host(host: str, scheme: str) -> tuple[str, int]:
    parts = urlsplit(f"//{host}")
    try:
        port = parts.port
    except ValueError:
        port = None
    return (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme, 80)


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
