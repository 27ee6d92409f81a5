"""A real MCP server for the tests, written with the official SDK: tools add/echo/slow/crash/fail/env and a
fetch-like `fetch` (canned pages, no network), a resource, a prompt.

    python echo_server.py                 # stdio
    python echo_server.py --http          # streamable HTTP on 127.0.0.1, a free port printed as "PORT <n>"
    python echo_server.py --hang          # reads stdin and never answers: a hung server
    python echo_server.py --die           # exits before answering anything: a crashed server

The HTTP mode binds its socket before printing the port, so a test that reads the line can connect at once.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("echo-server", instructions="Test server of partyflow's MCP tests.")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def echo(text: str, shout: bool = False) -> str:
    """Return the text as it was sent (upper-cased when shout is true)."""
    return text.upper() if shout else text


@server.tool()
async def slow(seconds: float) -> str:
    """Wait, then answer: for timeouts."""
    await anyio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def crash() -> str:
    """Kill the server process in the middle of the call."""
    sys.stderr.flush()
    os._exit(3)


@server.tool()
def fail(reason: str) -> str:
    """Raise an error the client receives as an error result."""
    raise ToolError(f"failed on purpose: {reason}")


@server.tool()
def env(name: str) -> str:
    """The value of an environment variable of the server process (empty when unset)."""
    return os.environ.get(name, "")


PAGES = {
    "https://modelcontextprotocol.io/": "The Model Context Protocol (MCP) is an open protocol that connects AI "
                                        "applications to tools and data through servers.",
}


@server.tool()
def fetch(url: str, max_length: int = 5000) -> str:
    """Fetch a URL and return its text (this test server knows a few pages and has no network)."""
    if url not in PAGES:
        raise ToolError(f"cannot fetch {url}: not found (404)")
    return PAGES[url][:max_length]


@server.resource("notes://readme", name="readme", description="A short text", mime_type="text/plain")
def readme() -> str:
    return "partyflow test notes: MCP works."


@server.prompt()
def summarize(topic: str) -> str:
    """Ask for a summary of a topic."""
    return f"Summarize what is known about {topic} in three sentences."


def serve_http() -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    app = server.streamable_http_app()
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser()
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--http", action="store_true")
    mode.add_argument("--hang", action="store_true")
    mode.add_argument("--die", action="store_true")
    args = parser.parse_args()
    if args.die:
        token = os.environ.get("ECHO_TOKEN", "")
        print(f"echo-server: cannot start, the test asked it to die (token={token})", file=sys.stderr, flush=True)
        sys.exit(4)
    if args.hang:
        while sys.stdin.readline():  # swallow requests, answer none
            pass
        time.sleep(3600)
    if args.http:
        serve_http()
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
