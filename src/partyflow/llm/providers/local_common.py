"""What the in-process providers (transformers, llama.cpp) do alike, kept in one place so they stay alike.

Both run a model inside this process rather than behind an HTTP API, and that, not the engine, decides most of
their shape: the model is loaded on first use and kept (or borrowed from a `ModelManager`), it serves one
generation at a time, the async API runs the blocking one in a thread, chat templates want plain-text messages,
tool calls have to be found in the generated text, and streamed text is held back while it may turn out to be a
call. `LocalProvider` and the functions here are that common part; each provider module keeps what its engine
makes different (rendering the prompt, sampling, generating, stop handling, its own error wording).
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from partyflow.config import Home, resolve_home
from partyflow.llm.config import ProviderConfig
from partyflow.llm.errors import BadResponseError, MissingExtraError, ProviderConfigError
from partyflow.llm.providers.openai_wire import message_dict
from partyflow.llm.toolcall_parse import parse_tool_calls
from partyflow.llm.types import (
    AssistantMessage,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    FinishReason,
    ImagePart,
    Tool,
    Usage,
    UserMessage,
)

if TYPE_CHECKING:
    from partyflow.llm.models import ModelManager

DEFAULT_MAX_NEW_TOKENS = 512
Loaded = TypeVar("Loaded")
Item = TypeVar("Item")


# --- the provider skeleton -------------------------------------------------------------------------------------

class LocalProvider(ABC, Generic[Loaded]):
    """Loading, sharing and the async API of a provider whose model lives in this process.

    A subclass implements `chat` and `stream`, `_loader` (load the model at a path) and `_from_manager` (borrow it
    from a `ModelManager`, under the key and variant its engine needs), and `_default_name` (the model name a path
    gives when the config names none).
    """

    def __init__(self, config: ProviderConfig, *, home: Home | None, manager: ModelManager | None) -> None:
        self.config = config
        self.name = config.name
        self.path = config.model_path(home or Home(resolve_home()))
        self.default_model = config.model or self._default_name(self.path)
        self._manager = manager
        self._load_lock = threading.Lock()
        self._own: Loaded | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, path={str(self.path)!r})"

    @abstractmethod
    def chat(self, request: ChatRequest) -> ChatResponse:
        """Each engine's own."""

    @abstractmethod
    def stream(self, request: ChatRequest) -> Iterator[ChatChunk]:
        """Each engine's own."""

    async def achat(self, request: ChatRequest) -> ChatResponse:
        return await asyncio.to_thread(self.chat, request)

    async def astream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        async for chunk in iterate_in_thread(self.stream(request)):
            yield chunk

    def close(self) -> None:
        """Drop this provider's own model so its memory can be reclaimed (a manager's models stay its business)."""
        with self._load_lock:
            self._own = None

    def model(self) -> Loaded:
        """The loaded model: from the manager when there is one, else loaded once and kept."""
        if self._manager is not None:
            return self._from_manager(self._manager)
        with self._load_lock:
            if self._own is None:
                self._own = self._loader(self.path)
            return self._own

    @abstractmethod
    def _default_name(self, path: Path) -> str:
        """Each engine's own."""

    @abstractmethod
    def _loader(self, path: Path) -> Loaded:
        """Each engine's own."""

    @abstractmethod
    def _from_manager(self, manager: ModelManager) -> Loaded:
        """Each engine's own."""

    def _reply(self, *, model: str, text: str, finish: FinishReason, tool_names: Iterable[str],
               prompt_tokens: int, completion_tokens: int) -> ChatResponse:
        """The response for generated `text`: the calls it makes to `tool_names` split out, usage priced."""
        prose, calls = parse_tool_calls(text, tool_names)
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                      cost=self.config.cost(prompt_tokens, completion_tokens))
        return ChatResponse(message=AssistantMessage(content=prose if prose or not calls else None,
                                                     tool_calls=calls),
                            model=model, provider=self.name,
                            finish_reason=FinishReason.TOOL_CALLS if calls else finish, usage=usage)


# --- requests --------------------------------------------------------------------------------------------------

def text_messages(request: ChatRequest, provider: str, model: str) -> list[dict[str, Any]]:
    """OpenAI-shaped message dicts with text content: chat templates expect text, so parts are flattened and a
    request with images is refused (these providers run text-only models)."""
    if any(isinstance(part, ImagePart) for m in request.messages if isinstance(m, UserMessage)
           and not isinstance(m.content, str) for part in m.content):
        raise ProviderConfigError("this local provider takes text only; the request has images", provider=provider,
                                  model=model, hint="Use a vision model through an openai_compat provider")
    messages = [message_dict(m) for m in request.messages]
    for message in messages:
        if isinstance(message.get("content"), list):
            message["content"] = "".join(part.get("text", "") for part in message["content"])
    return messages


def template_tools(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    """Tools as chat templates take them: OpenAI's function entries, always with a description (templates
    index it), unlike the wire format, which leaves an empty one out."""
    return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                              "parameters": t.parameters}} for t in tools]


def completion_budget(max_tokens: int | None, prompt_tokens: int, window: int | None) -> int | None:
    """How many tokens to generate: `max_tokens` (or the default) shrunk to what the context `window` leaves after
    the prompt. None when it does not fit: no room at all, or an explicit `max_tokens` larger than the room (the
    caller raises its `ContextOverflowError`). An unknown window leaves the budget as asked."""
    wanted = max_tokens or DEFAULT_MAX_NEW_TOKENS
    if window is None:
        return wanted
    room = window - prompt_tokens
    if room <= 0 or (max_tokens is not None and wanted > room):
        return None
    return min(wanted, room)


# --- generation and replies ------------------------------------------------------------------------------------

def import_extra(module: str, extra: str, provider: str | None) -> Any:
    """`module`, imported on first use; missing (or blocked with None in sys.modules) it names the extra to
    install, for the provider that needs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(extra, module, provider=provider) from None


def generation_failed(exc: BaseException, provider: str, model: str) -> BadResponseError:
    """An engine's failure during generation as our error; the engine's traceback goes to the log."""
    return BadResponseError(f"generation failed: {exc}", provider=provider, model=model,
                            hint="See the log for the traceback")


def final_chunks(response: ChatResponse, held_back: bool) -> Iterator[ChatChunk]:
    """The end of a stream: the text held back while it might have been a tool call (what is left of it once the
    calls are parsed out), then the response."""
    if held_back and response.text:
        yield ChatChunk(text=response.text)
    yield ChatChunk(response=response)


async def iterate_in_thread(iterator: Iterator[Item]) -> AsyncIterator[Item]:
    """`iterator`'s items, each fetched in a worker thread so a blocking generation never stalls the event loop;
    the iterator is closed (in a thread too) however the consumer stops, so the model stops generating."""
    done = object()
    try:
        while (item := await asyncio.to_thread(next, iterator, done)) is not done:
            yield item  # type: ignore[misc]
    finally:
        await asyncio.to_thread(iterator.close)  # type: ignore[attr-defined]
