"""A `ChatModel` over a transformers causal LM saved in a folder under the home's `models/llm/` (extra `local`).

torch and transformers are imported when the model is first used, never at import time, so the CLI stays fast
and a missing extra is reported for the provider that needs it. One lock per provider serialises generation:
a model on one device serves one request at a time.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

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
    Usage,
    UserMessage,
)

DEFAULT_MAX_NEW_TOKENS = 512


class TransformersProvider:
    """A local model, loaded on first use; `device` is `auto` (CUDA, then MPS, then CPU) unless given."""

    def __init__(self, config: ProviderConfig, *, home: Home | None = None, device: str = "auto",
                 environ: Mapping[str, str] | None = None) -> None:
        del environ  # accepted for a uniform `create(...)` signature; local models need no key
        self.config = config
        self.name = config.name
        self.path = config.model_path(home or Home(resolve_home()))
        self.default_model = config.model or self.path.name
        self._device = device
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any, Any] | None = None  # (torch, tokenizer, model)

    def __repr__(self) -> str:
        return f"TransformersProvider(name={self.name!r}, path={str(self.path)!r})"

    def chat(self, request: ChatRequest) -> ChatResponse:
        torch, tokenizer, model = self._load()
        with self._lock:
            inputs = self._encode(tokenizer, model, request)
            with torch.inference_mode():
                output = model.generate(**inputs, **self._sampling(tokenizer, request))
        prompt_length = inputs["input_ids"].shape[1]
        new_tokens = output[0, prompt_length:]
        text = tokenizer.decode(new_tokens, skip_special_tokens=True)
        finish = self._finish(len(new_tokens), request)
        return self._response(request, text, finish, prompt_length, len(new_tokens))

    async def achat(self, request: ChatRequest) -> ChatResponse:
        return await asyncio.to_thread(self.chat, request)

    def stream(self, request: ChatRequest) -> Iterator[ChatChunk]:
        torch, tokenizer, model = self._load()
        streamer_class = importlib.import_module("transformers").TextIteratorStreamer
        streamer = streamer_class(tokenizer, skip_prompt=True, skip_special_tokens=True)
        with self._lock:
            inputs = self._encode(tokenizer, model, request)
            failure: list[BaseException] = []

            def generate() -> None:
                try:
                    with torch.inference_mode():
                        model.generate(**inputs, **self._sampling(tokenizer, request), streamer=streamer)
                except BaseException as exc:  # reported to the caller below, after the stream ends
                    failure.append(exc)
                    streamer.end()

            worker = threading.Thread(target=generate, name=f"generate-{self.name}", daemon=True)
            worker.start()
            pieces = []
            for piece in streamer:
                pieces.append(piece)
                if piece and not request.tools:  # with tools, text may turn out to be a call: hold it back
                    yield ChatChunk(text=piece)
            worker.join()
        if failure:
            raise BadResponseError(f"generation failed: {failure[0]}", provider=self.name, model=self.default_model)
        text = "".join(pieces)
        completion_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        response = self._response(request, text, self._finish(completion_tokens, request),
                                  inputs["input_ids"].shape[1], completion_tokens)
        if request.tools and response.text:
            yield ChatChunk(text=response.text)
        yield ChatChunk(response=response)

    async def astream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        iterator = self.stream(request)
        done = object()
        while (piece := await asyncio.to_thread(next, iterator, done)) is not done:
            yield piece  # type: ignore[misc]

    def close(self) -> None:
        """Drop the model so its memory can be reclaimed."""
        with self._lock:
            self._loaded = None

    # --- internals ---------------------------------------------------------------------------------------------

    def _load(self) -> tuple[Any, Any, Any]:
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load_now()
            return self._loaded

    def _load_now(self) -> tuple[Any, Any, Any]:
        if not (self.path / "config.json").is_file():
            raise ProviderConfigError(
                f"{self.path} is not a transformers model folder (no config.json)", provider=self.name,
                hint="Point 'path' at a folder written by save_pretrained, under the home's models/llm/")
        torch = _import("torch", self.name)
        transformers = _import("transformers", self.name)
        device = self._pick_device(torch)
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(self.path)
            model = transformers.AutoModelForCausalLM.from_pretrained(
                self.path, torch_dtype=torch.float16 if device == "cuda" else torch.float32)
        except (OSError, ValueError) as exc:
            raise ProviderConfigError(f"cannot load the model in {self.path}: {exc}", provider=self.name,
                                      hint="Check that the folder holds a complete model and tokenizer") from None
        if getattr(tokenizer, "chat_template", None) is None:
            raise ProviderConfigError(f"the tokenizer in {self.path} has no chat template", provider=self.name,
                                      hint="Use an instruct/chat model, or add a chat_template to its tokenizer")
        return torch, tokenizer, model.to(device).eval()

    def _pick_device(self, torch: Any) -> str:
        if self._device != "auto":
            return self._device
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"

    def _encode(self, tokenizer: Any, model: Any, request: ChatRequest) -> Any:
        if any(isinstance(part, ImagePart) for m in request.messages if isinstance(m, UserMessage)
               and not isinstance(m.content, str) for part in m.content):
            raise ProviderConfigError("this local provider takes text only; the request has images",
                                      provider=self.name, model=self.default_model,
                                      hint="Use a vision model through an openai_compat provider")
        messages = [message_dict(m) for m in request.messages]
        for message in messages:  # templates expect text; tool results and user parts are flattened
            if isinstance(message.get("content"), list):
                message["content"] = "".join(p.get("text", "") for p in message["content"])
        tools = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                   "parameters": t.parameters}} for t in request.tools]
        encoded = tokenizer.apply_chat_template(messages, tools=tools or None, add_generation_prompt=True,
                                                return_tensors="pt", return_dict=True)
        return encoded.to(model.device)

    def _sampling(self, tokenizer: Any, request: ChatRequest) -> dict[str, Any]:
        options: dict[str, Any] = {"max_new_tokens": request.max_tokens or DEFAULT_MAX_NEW_TOKENS,
                                   "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id}
        if request.temperature:
            options.update(do_sample=True, temperature=request.temperature)
            if request.top_p is not None:
                options["top_p"] = request.top_p
        else:
            options["do_sample"] = False
        if request.stop:
            options.update(stop_strings=list(request.stop), tokenizer=tokenizer)
        if request.seed is not None:
            importlib.import_module("torch").manual_seed(request.seed)
        return options

    def _finish(self, completion_tokens: int, request: ChatRequest) -> FinishReason:
        limit = request.max_tokens or DEFAULT_MAX_NEW_TOKENS
        return FinishReason.LENGTH if completion_tokens >= limit else FinishReason.STOP

    def _response(self, request: ChatRequest, text: str, finish: FinishReason, prompt_tokens: int,
                  completion_tokens: int) -> ChatResponse:
        prose, calls = parse_tool_calls(text, (tool.name for tool in request.tools))
        if calls:
            finish = FinishReason.TOOL_CALLS
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                      cost=self.config.cost(prompt_tokens, completion_tokens))
        return ChatResponse(message=AssistantMessage(content=prose if prose or not calls else None,
                                                     tool_calls=calls),
                            model=request.model or self.default_model, provider=self.name, finish_reason=finish,
                            usage=usage)


def _import(module: str, provider: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError("local", module, provider=provider) from None


def model_folder(path: Path) -> bool:
    """Whether `path` looks like a transformers model folder (for `partyflow models list`)."""
    return (path / "config.json").is_file()
