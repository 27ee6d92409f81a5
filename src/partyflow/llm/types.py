"""The vocabulary of model access: messages, tools, requests, responses, stream chunks and the model protocols.

Everything here is an immutable pydantic model, so a request can be hashed for the response cache, a history can
be saved as JSON and loaded back, and a value crossing a process boundary pickles. Provider-specific wire formats
live in the providers; these types are what agents, tools and node adapters see.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from partyflow.llm.schema import SchemaError, check_json_schema


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- content ---------------------------------------------------------------------------------------------------

class TextPart(_Frozen):
    type: Literal["text"] = "text"
    text: str


class ImagePart(_Frozen):
    """An image by URL: `https://...` for the provider to fetch, or a `data:image/...;base64,` URL inline."""

    type: Literal["image"] = "image"
    url: str
    detail: Literal["auto", "low", "high"] = "auto"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(("http://", "https://", "data:image/")):
            raise ValueError("an image URL must start with http://, https:// or data:image/")
        return url

    @classmethod
    def from_bytes(cls, data: bytes, media_type: str = "image/png", detail: Literal["auto", "low", "high"] = "auto",
                   ) -> ImagePart:
        encoded = base64.b64encode(data).decode("ascii")
        return cls(url=f"data:{media_type};base64,{encoded}", detail=detail)

    @classmethod
    def from_path(cls, path: str | Path, detail: Literal["auto", "low", "high"] = "auto") -> ImagePart:
        """Inline a local image file; its media type comes from the file name."""
        media_type = mimetypes.guess_type(str(path))[0] or "image/png"
        return cls.from_bytes(Path(path).read_bytes(), media_type, detail)


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


# --- tools -----------------------------------------------------------------------------------------------------

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Tool(_Frozen):
    """A function the model may call; `parameters` is a JSON Schema with `"type": "object"` at the top."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool = False

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if not _TOOL_NAME.match(name):
            raise ValueError(f"tool name {name!r} must be 1-64 letters, digits, '_' or '-'")
        return name

    @field_validator("parameters")
    @classmethod
    def _json_schema(cls, parameters: dict[str, Any]) -> dict[str, Any]:
        try:
            check_json_schema(parameters, require_object=True)
        except SchemaError as exc:
            raise ValueError(f"tool parameters are {exc}") from None
        return parameters


class ToolCall(_Frozen):
    """One call the model asked for; `arguments` is the JSON text exactly as the model wrote it."""

    id: str
    name: str
    arguments: str = "{}"

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as an object; `ValueError` says what the model got wrong, for feeding back to it."""
        try:
            value = json.loads(self.arguments or "{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"arguments of tool call {self.name!r} are not valid JSON ({exc})") from None
        if not isinstance(value, dict):
            raise ValueError(f"arguments of tool call {self.name!r} must be a JSON object, got {self.arguments!r}")
        return value


ToolChoice = Literal["auto", "none", "required"] | str  # a str other than the three names forces that tool


# --- messages --------------------------------------------------------------------------------------------------

class SystemMessage(_Frozen):
    role: Literal["system"] = "system"
    content: str


class UserMessage(_Frozen):
    role: Literal["user"] = "user"
    content: str | tuple[ContentPart, ...]
    name: str | None = None

    @property
    def text(self) -> str:
        return _text_of(self.content)


class AssistantMessage(_Frozen):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()

    @property
    def text(self) -> str:
        return self.content or ""


class ToolMessage(_Frozen):
    """The result of one tool call, sent back to the model."""

    role: Literal["tool"] = "tool"
    tool_call_id: str
    content: str | tuple[ContentPart, ...]

    @property
    def text(self) -> str:
        return _text_of(self.content)


Message = Annotated[SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")]
_MESSAGES = TypeAdapter(tuple[Message, ...])


def load_messages(data: str | bytes | Sequence[Any]) -> tuple[Message, ...]:
    """Messages from JSON text or from plain dicts (a saved history); raises pydantic's `ValidationError`."""
    if isinstance(data, str | bytes):
        return _MESSAGES.validate_json(data)
    return _MESSAGES.validate_python(data)


def dump_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages as plain JSON-ready dicts, the inverse of `load_messages`."""
    return _MESSAGES.dump_python(tuple(messages), mode="json")


def _text_of(content: str | tuple[ContentPart, ...]) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content if isinstance(part, TextPart))


# --- requests --------------------------------------------------------------------------------------------------

class ResponseFormat(_Frozen):
    """Structured output: any JSON object (`json_object`) or JSON matching `json_schema` (`json_schema`)."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str = "response"
    json_schema: dict[str, Any] | None = None
    strict: bool = True

    @classmethod
    def json_mode(cls) -> ResponseFormat:
        return cls(type="json_object")

    @classmethod
    def from_schema(cls, json_schema: dict[str, Any], name: str = "response", strict: bool = True) -> ResponseFormat:
        return cls(type="json_schema", json_schema=json_schema, name=name, strict=strict)

    @model_validator(mode="after")
    def _schema_matches_type(self) -> ResponseFormat:
        if self.type == "json_schema":
            if self.json_schema is None:
                raise ValueError("a json_schema response format needs a json_schema")
            try:
                check_json_schema(self.json_schema)
            except SchemaError as exc:
                raise ValueError(f"the response format's json_schema is {exc}") from None
        elif self.json_schema is not None:
            raise ValueError(f"a {self.type!r} response format takes no json_schema; use type='json_schema'")
        return self

    @property
    def wants_json(self) -> bool:
        return self.type != "text"


class ChatRequest(_Frozen):
    """Everything that determines a reply; `model=None` means the provider's configured default model.

    `extra` carries provider-specific body fields (for example `{"top_k": 20}` for vLLM) through unchanged.
    """

    messages: tuple[Message, ...]
    model: str | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, gt=0)
    seed: int | None = None
    stop: tuple[str, ...] = ()
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("messages")
    @classmethod
    def _not_empty(cls, messages: tuple[Message, ...]) -> tuple[Message, ...]:
        if not messages:
            raise ValueError("a chat request needs at least one message")
        return messages

    @property
    def is_deterministic(self) -> bool:
        """Whether the same request should give the same reply: temperature 0 or a fixed seed."""
        return self.temperature == 0 or self.seed is not None

    def fingerprint(self) -> str:
        """A stable hash of the whole request (the response cache's key, with the provider and model)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --- responses -------------------------------------------------------------------------------------------------

class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"
    OTHER = "other"

    @classmethod
    def parse(cls, value: str | None) -> FinishReason | None:
        """Map a provider's finish reason onto ours (`function_call` is the legacy name for tool calls)."""
        if value is None:
            return None
        if value == "function_call":
            return cls.TOOL_CALLS
        try:
            return cls(value)
        except ValueError:
            return cls.OTHER


class Usage(_Frozen):
    """Tokens used by one call; `cost` is in the currency of the configured prices, None when none are set."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        costs = [c for c in (self.cost, other.cost) if c is not None]
        return Usage(prompt_tokens=self.prompt_tokens + other.prompt_tokens,
                     completion_tokens=self.completion_tokens + other.completion_tokens,
                     cost=sum(costs) if costs else None)


class ChatResponse(_Frozen):
    message: AssistantMessage
    model: str
    provider: str
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    id: str | None = None

    @property
    def text(self) -> str:
        return self.message.text

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return self.message.tool_calls

    def parsed_json(self) -> Any:
        """The reply parsed as JSON; `ValueError` when it is not (for replies to JSON-mode requests)."""
        try:
            return json.loads(self.text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the reply of model {self.model!r} is not JSON ({exc})") from None


class ToolCallDelta(_Frozen):
    """A fragment of a streamed tool call; fragments with the same `index` concatenate into one call."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class ChatChunk(_Frozen):
    """One piece of a streamed reply. The last chunk has `response` set: the whole reply, assembled."""

    text: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()
    response: ChatResponse | None = None

    @property
    def done(self) -> bool:
        return self.response is not None


class EmbeddingResponse(_Frozen):
    vectors: tuple[tuple[float, ...], ...]
    model: str
    provider: str
    usage: Usage | None = None


# --- protocols -------------------------------------------------------------------------------------------------

@runtime_checkable
class ChatModel(Protocol):
    """A configured provider that answers chat requests. Errors are `partyflow.llm.errors.LLMError`s.

    The sync methods are for threads (node functions run in workers); the async ones for the event loop.
    `stream`/`astream` yield text as it comes and end with a chunk carrying the assembled `ChatResponse`.
    """

    name: str
    default_model: str | None

    def chat(self, request: ChatRequest) -> ChatResponse: ...

    async def achat(self, request: ChatRequest) -> ChatResponse: ...

    def stream(self, request: ChatRequest) -> Iterator[ChatChunk]: ...

    def astream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]: ...

    def close(self) -> None: ...


@runtime_checkable
class EmbeddingModel(Protocol):
    """A configured provider that turns texts into vectors, one per input, in order."""

    name: str

    def embed(self, texts: Sequence[str], *, model: str | None = None) -> EmbeddingResponse: ...

    async def aembed(self, texts: Sequence[str], *, model: str | None = None) -> EmbeddingResponse: ...
