"""The host a node pack runs in, passed through context variables instead of ComfyUI's global singletons.

ComfyUI packs reach the host through module-level names (`folder_paths`, `PromptServer.instance`,
`comfy.utils.ProgressBar`). Our compatible modules answer those calls from `current_host()` and
`current_scope()`, which the engine sets while it imports packs, builds object_info and calls nodes; two
engines in one process therefore never see each other's directories or events.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from partyflow.config import Home
from partyflow.nodes.registry import NodeRegistry

if TYPE_CHECKING:
    from partyflow.llm.models import ModelManager
    from partyflow.llm.usage.services import ModelServices

CustomEventSink = Callable[[str, Any, "str | None"], None]


class RouteTable:
    """Collects the HTTP routes packs declare (`@PromptServer.instance.routes.get(path)`); the server mounts them."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, str, Callable[..., Any]]] = []

    def route(self, method: str, path: str, **_: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
            self.routes.append((method.upper(), path, handler))
            return handler
        return decorate

    def get(self, path: str, **kw: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("DELETE", path, **kw)

    def __iter__(self) -> Iterator[tuple[str, str, Callable[..., Any]]]:
        return iter(self.routes)


def _drop_custom_event(event: str, data: Any, client_id: str | None) -> None:
    """Default sink: without a server nobody listens to packs' custom messages."""


@dataclass(frozen=True)
class PromptSource:
    """Who submits the prompts a host runs: the local user (CLI, Python API; the default) or a server's HTTP
    clients. Nodes that need a permission (code-running tools) ask the security policy with it."""

    over_http: bool = False
    loopback: bool = True               # the server listens on loopback only
    security_level: str | None = None   # the server's `--security-level`; None: environment, then config.toml


@dataclass
class HostContext:
    """What one engine offers to the packs it loads."""

    home: Home
    registry: NodeRegistry
    routes: RouteTable = field(default_factory=RouteTable)
    emit_custom: CustomEventSink = _drop_custom_event
    folder_names_and_paths: dict[str, tuple[list[str], set[str]]] = field(default_factory=dict)
    client_id: str | None = None
    loop: asyncio.AbstractEventLoop | None = None  # the engine's loop (`PromptServer.instance.loop`)
    prompt_handlers: list[Callable[[dict[str, Any]], dict[str, Any]]] = field(default_factory=list)
    # ^ `PromptServer.instance.add_on_prompt_handler`: each gets the request JSON before it is queued
    models: ModelManager | None = None  # issue 3, item 4: the engine's local models within its memory budget;
    # None where no engine made one (packs then load models themselves)
    run_workflow: Callable[..., Awaitable[Any]] | None = None  # issue 7: the engine's own `run_async`, so a node
    # that runs workflows (workflow tools) uses the engine it runs in (its packs, settings, models, cache) instead of
    # starting another per call; None where no engine set it (packs then start their own)
    source: PromptSource = field(default_factory=PromptSource)  # issue 10: set by the server for HTTP prompts
    usage: ModelServices | None = None  # issue 18: routers' member health and the usage ledger, kept between node
    # calls; None where no engine set it (calls then go unmetered and routers start with no history)
    local_models: Callable[[Any, Mapping[str, Any]], Any] | None = None  # issue 15: (ProviderConfig, options) ->
    # a ChatModel whose local model lives elsewhere (a Ray model actor); None: local models load in this process

    def __post_init__(self) -> None:
        if not self.folder_names_and_paths:
            models = self.home.models
            self.folder_names_and_paths = {
                name: ([str(models / name)], set()) for name in (
                    "checkpoints", "configs", "loras", "vae", "text_encoders", "clip", "unet",
                    "diffusion_models", "clip_vision", "style_models", "embeddings", "diffusers", "vae_approx",
                    "controlnet", "gligen", "upscale_models", "hypernetworks", "photomaker", "classifiers",
                    "llm", "gguf", "whisper")
            }
            self.folder_names_and_paths["custom_nodes"] = ([str(self.home.custom_nodes)], set())


@dataclass(slots=True)
class NodeScope:
    """The node call in progress: where its progress, interrupt checks and client messages go."""

    prompt_id: str
    node_id: str
    report_progress: Callable[[float, float, Any], None]
    interrupt: threading.Event
    client_id: str | None = None
    call_index: int = 0  # which call of a list-mapped node this is (GraphBuilder prefixes use it)
    user: str | None = None  # who queued the prompt (a signed-in server user), for usage labels and budgets
    workflow: str | None = None  # the editor's workflow id the prompt came from, for the same
    _graphs_made: int = 0

    def next_graph_index(self) -> int:
        """How many expansion graphs this call made before (GraphBuilder prefixes use it)."""
        index, self._graphs_made = self._graphs_made, self._graphs_made + 1
        return index


_HOST: ContextVar[HostContext | None] = ContextVar("partyflow_host", default=None)
_SCOPE: ContextVar[NodeScope | None] = ContextVar("partyflow_node_scope", default=None)


class NoHostError(RuntimeError):
    """A ComfyUI host function was called outside an engine (for example at import time of a stray module)."""


def current_host() -> HostContext:
    host = _HOST.get()
    if host is None:
        raise NoHostError("this ComfyUI host function needs a running partyflow engine; "
                          "call it from a node loaded by partyflow.Engine")
    return host


def current_host_or_none() -> HostContext | None:
    return _HOST.get()


def current_scope() -> NodeScope | None:
    return _SCOPE.get()


@contextlib.contextmanager
def host_context(host: HostContext) -> Iterator[HostContext]:
    token = _HOST.set(host)
    try:
        yield host
    finally:
        _HOST.reset(token)


def enter_scope(scope: NodeScope) -> Token[NodeScope | None]:
    """`node_scope` without a context manager, for the executor's hot path; pair with `leave_scope`."""
    return _SCOPE.set(scope)


def leave_scope(token: Token[NodeScope | None]) -> None:
    _SCOPE.reset(token)


@contextlib.contextmanager
def node_scope(scope: NodeScope) -> Iterator[NodeScope]:
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)
