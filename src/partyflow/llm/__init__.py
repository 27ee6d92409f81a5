"""Model access: one chat interface over OpenAI-compatible APIs and local models. Knows nothing of nodes."""

from partyflow.llm.config import ProviderConfig, ProvidersConfig
from partyflow.llm.errors import (
    AuthError,
    BadResponseError,
    ContextOverflowError,
    InvalidRequestError,
    LLMError,
    MissingExtraError,
    ModelNotFoundError,
    ProviderConfigError,
    ProviderConnectionError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
)
from partyflow.llm.types import (
    AssistantMessage,
    ChatChunk,
    ChatModel,
    ChatRequest,
    ChatResponse,
    EmbeddingModel,
    EmbeddingResponse,
    FinishReason,
    ImagePart,
    Message,
    ResponseFormat,
    SystemMessage,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolMessage,
    Usage,
    UserMessage,
    dump_messages,
    load_messages,
)

__all__ = [
    "AssistantMessage", "AuthError", "BadResponseError", "ChatChunk", "ChatModel", "ChatRequest", "ChatResponse",
    "ContextOverflowError", "EmbeddingModel", "EmbeddingResponse", "FinishReason", "ImagePart", "InvalidRequestError",
    "LLMError", "Message", "MissingExtraError", "ModelNotFoundError", "ProviderConfig", "ProviderConfigError",
    "ProviderConnectionError", "ProvidersConfig", "RateLimitError", "RequestTimeoutError", "ResponseFormat",
    "ServerError", "SystemMessage", "TextPart", "Tool", "ToolCall", "ToolCallDelta", "ToolMessage", "Usage",
    "UserMessage", "dump_messages", "load_messages",
]
