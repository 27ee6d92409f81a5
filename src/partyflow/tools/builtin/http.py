"""HTTP fetch with an allow-list of hosts and limits on size, time and redirects.

The model chooses URLs, so the host list is the boundary: every hop of a redirect is checked against it (a
redirect to an internal address is the classic way around a naive check), only http and https are spoken, and
the body is read as a stream and cut at `max_bytes` so a huge download cannot fill memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urljoin, urlsplit

import httpx

from partyflow.tools.base import Tool, ToolError
from partyflow.tools.functions import function_tool

MAX_BYTES = 512 * 1024
MAX_REDIRECTS = 5


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    """Exact host names, or `*.example.com` for its subdomains (not example.com itself); `*` allows any."""
    host = host.lower().rstrip(".")
    for pattern in allowed:
        pattern = pattern.lower().rstrip(".")
        if pattern == "*" or host == pattern:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


def http_fetch_tool(allowed_hosts: Sequence[str], *, max_bytes: int = MAX_BYTES, timeout: float = 10.0,
                    transport: httpx.AsyncBaseTransport | None = None) -> Tool:
    """An `http_fetch` tool (GET) limited to `allowed_hosts`; `transport` is for tests."""
    hosts = tuple(allowed_hosts)

    async def http_fetch(url: str) -> dict[str, object]:
        """Fetch a web page or API response by HTTP GET and return its status, type and text.

        Args:
            url: An http:// or https:// URL on one of the allowed hosts.
        """
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, transport=transport) as client:
            for _ in range(MAX_REDIRECTS + 1):
                _check(url, hosts)
                try:
                    async with client.stream("GET", url) as response:
                        if response.is_redirect and "location" in response.headers:
                            url = urljoin(url, response.headers["location"])
                            continue
                        body, truncated = await _read_limited(response, max_bytes)
                        return {"url": url, "status": response.status_code,
                                "content_type": response.headers.get("content-type", ""),
                                "text": body.decode(response.encoding or "utf-8", errors="replace"),
                                "truncated": truncated}
                except httpx.TimeoutException:
                    raise ToolError(f"no answer from {url} within {timeout} s") from None
                except httpx.HTTPError as exc:
                    raise ToolError(f"fetching {url} failed: {exc}") from None
        raise ToolError(f"more than {MAX_REDIRECTS} redirects")

    return function_tool(http_fetch, timeout=timeout + 1)


def _check(url: str, hosts: tuple[str, ...]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ToolError(f"only http and https URLs can be fetched, not {parts.scheme or 'a relative URL'!r}")
    if not parts.hostname or not host_allowed(parts.hostname, hosts):
        raise ToolError(f"host {parts.hostname!r} is not on the allow-list ({', '.join(hosts) or 'empty'})")


async def _read_limited(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            return b"".join(chunks)[:max_bytes], True
    return b"".join(chunks), False
