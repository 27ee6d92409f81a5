"""A `ChatModel` over a GGUF file under the home's `models/gguf/`, run in-process by llama-cpp-python (extra `gguf`).

    [providers.qwen-local]
    type = "llamacpp"
    path = "qwen2.5-0.5b-instruct-q4_k_m.gguf"   # under models/gguf/, or absolute
    n_ctx = 8192          # context window (default 4096; 0 = the length the model was trained for)
    n_threads = 8         # CPU threads (default: llama-cpp-python's, half the cores)
    n_gpu_layers = -1     # layers offloaded to a GPU build of llama.cpp (default 0; -1 = all)
    chat_format = "chatml"   # default: the chat template embedded in the GGUF
    mmproj = "qwen2.5-vl-3b-mmproj-f16.gguf"   # optional: a multimodal projector, so requests may carry images

llama_cpp is imported when the model is first used, so the CLI stays fast and a missing extra is reported for the
provider that needs it. A loaded model carries its own lock: one llama.cpp context serves one generation at a time.

llama-cpp-python's chat handlers both render the prompt and run the completion. We need the prompt first, to check
it against the context window, count its tokens and attach a tool-call grammar, so the handler is run against a
stand-in whose `create_completion` records its arguments instead of generating (`_render`); we then generate
ourselves. Tool calls come from the model's text through the shared parser, as with the transformers provider;
a forced tool choice ("required" or a tool's name) constrains that text with a grammar so the call is well formed.
With an `mmproj`, images are encoded by llama.cpp's `mtmd` library into the context before generating
(`llamacpp_vision`); without one, a request with images is refused.
"""

from __future__ import annotations

import importlib
import json
import random
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from partyflow.config import Home, resolve_home
from partyflow.llm.config import ProviderConfig
from partyflow.llm.errors import (
    BadResponseError,
    ContextOverflowError,
    InvalidRequestError,
    ProviderConfigError,
)
from partyflow.llm.providers.llamacpp_io import tame_llama_cpp
from partyflow.llm.providers.local_common import (
    DEFAULT_MAX_NEW_TOKENS,
    LocalProvider,
    completion_budget,
    final_chunks,
    generation_failed,
    import_extra,
    template_tools,
    text_messages,
)
from partyflow.llm.providers.vision_local import has_images
from partyflow.llm.types import ChatChunk, ChatRequest, ChatResponse, FinishReason, Tool

if TYPE_CHECKING:
    from partyflow.llm.models import ModelManager

DEFAULT_N_CTX = 4096
GGUF_MAGIC = b"GGUF"
# request.extra keys passed to llama.cpp's sampler as they are; anything else is refused, not silently dropped
SAMPLER_OPTIONS = frozenset({"top_k", "min_p", "typical_p", "repeat_penalty", "presence_penalty",
                             "frequency_penalty", "mirostat_mode", "mirostat_tau", "mirostat_eta", "logit_bias"})
_EMBEDDED_TEMPLATE = "tokenizer.chat_template"


# --- loading ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LlamaSettings:
    """How a GGUF is loaded; two providers with equal settings can share one loaded model."""

    n_ctx: int = DEFAULT_N_CTX
    n_threads: int | None = None
    n_gpu_layers: int = 0
    mmproj: Path | None = None  # the multimodal projector loaded with the model

    @classmethod
    def from_config(cls, config: ProviderConfig, projector: Path | None = None) -> LlamaSettings:
        return cls(n_ctx=DEFAULT_N_CTX if config.n_ctx is None else config.n_ctx, n_threads=config.n_threads,
                   n_gpu_layers=config.n_gpu_layers or 0, mmproj=projector)

    @property
    def variant(self) -> str:
        """The model manager's key suffix: loads of one file with different settings are different models."""
        base = f"n_ctx={self.n_ctx}/threads={self.n_threads}/gpu_layers={self.n_gpu_layers}"
        return base + (f"/mmproj={self.mmproj}" if self.mmproj else "")


@dataclass(eq=False)
class LoadedGGUF:
    """A loaded llama.cpp model and context; `lock` makes it serve one generation at a time."""

    path: Path
    llama: Any
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    handlers: dict[str | None, Any] = field(default_factory=dict, repr=False)  # chat_format -> handler, under lock
    projector: Any = None  # a llamacpp_vision.Projector when an mmproj was loaded
    images_in_context: bool = False  # the context holds image embeddings: text requests must not reuse it

    @property
    def nbytes(self) -> int:
        """Memory held by the weights: the file size (llama.cpp maps the tensors as they are stored), with the
        projector's."""
        extra = self.projector.path.stat().st_size if self.projector is not None else 0
        return self.path.stat().st_size + extra

    @property
    def n_ctx(self) -> int:
        return int(self.llama.n_ctx())

    @property
    def metadata(self) -> Mapping[str, str]:
        return getattr(self.llama, "metadata", None) or {}


def load_gguf(path: Path, settings: LlamaSettings = LlamaSettings(), *, provider: str | None = None) -> LoadedGGUF:
    """Load the GGUF file at `path`; a missing, foreign or corrupt file is a `ProviderConfigError` naming it."""
    check_gguf_file(path, provider)
    llama_cpp = import_llama_cpp(provider)
    options: dict[str, Any] = {"model_path": str(path), "n_ctx": settings.n_ctx,
                               "n_gpu_layers": settings.n_gpu_layers, "verbose": False}
    if settings.n_threads is not None:
        options.update(n_threads=settings.n_threads, n_threads_batch=settings.n_threads)
    try:
        llama = llama_cpp.Llama(**options)
    except Exception:  # llama-cpp-python raises ValueError or RuntimeError, and llama.cpp says why only in its log
        reason, hint = _load_failure(path)
        raise ProviderConfigError(f"llama.cpp cannot load the GGUF file {path}: {reason}", provider=provider,
                                  hint=hint) from None
    loaded = LoadedGGUF(path=path, llama=llama)
    if settings.mmproj is not None:
        from partyflow.llm.providers.llamacpp_vision import load_projector

        check_gguf_file(settings.mmproj, provider)
        try:
            loaded.projector = load_projector(llama, settings.mmproj, provider=provider)
        except BaseException:
            llama.close()
            raise
    return loaded


def check_gguf_file(path: Path, provider: str | None = None) -> None:
    """Refuse what is plainly not a GGUF file before llama.cpp sees it, with a message that says which problem."""
    if not path.is_file():
        what = "is a folder, not a GGUF file" if path.is_dir() else "does not exist"
        raise ProviderConfigError(f"{path} {what}", provider=provider,
                                  hint="Point 'path' at a .gguf file under the home's models/gguf/")
    with path.open("rb") as stream:
        magic = stream.read(len(GGUF_MAGIC))
    if magic != GGUF_MAGIC:
        raise ProviderConfigError(f"{path} is not a GGUF file (it does not start with {GGUF_MAGIC!r})",
                                  provider=provider,
                                  hint="Use a .gguf file; convert other formats with llama.cpp's convert_hf_to_gguf")


def _load_failure(path: Path) -> tuple[str, str]:
    """Why llama.cpp refused a file that starts like a GGUF, told apart with the `gguf` package's own reader:
    a header that does not parse means a damaged file; one that does, a model this llama.cpp does not support."""
    try:
        reader = importlib.import_module("gguf").GGUFReader(path)
    except ImportError:
        return "the file is corrupt or not supported", "Download it again, or upgrade llama-cpp-python"
    except Exception:  # the reader fails in many ways on a damaged file; all mean the same to a user
        return ("its header or tensor table is damaged (a truncated or corrupt file)",
                "Download or convert the file again")
    architecture = reader.fields.get("general.architecture")
    contents = getattr(architecture, "contents", None)  # older gguf packages lack it
    name = contents() if callable(contents) else "unknown"
    return (f"its header is intact (architecture {name!r}) but this llama.cpp build does not accept it",
            "Upgrade llama-cpp-python (pip install -U 'partyflow[gguf]'), or check the file's architecture")


def gguf_file(path: Path) -> bool:
    """Whether `path` looks like a GGUF file (for listings): a file that starts with the GGUF magic."""
    try:
        check_gguf_file(path)
    except ProviderConfigError:
        return False
    return True


def import_llama_cpp(provider: str | None = None) -> Any:
    """llama_cpp, imported on first use; missing, it is the `gguf` extra that `provider` needs. It is tamed before
    first use: it never swaps the process's stdout and stderr, and its log goes to `logging` (see llamacpp_io)."""
    return tame_llama_cpp(import_extra("llama_cpp", "gguf", provider))


# --- the provider ----------------------------------------------------------------------------------------------

class LlamaCppProvider(LocalProvider[LoadedGGUF]):
    """A GGUF model, loaded on first use (or borrowed from a `ModelManager`, which may unload it between calls).

    Without a temperature (or with 0) decoding is greedy, like the transformers provider; with one, llama.cpp
    samples from the temperature-scaled distribution (top-p filtered when `top_p` is set), seeded by the request's
    seed or a fresh random one. `request.extra` may set llama.cpp's other sampler options (`SAMPLER_OPTIONS`).
    """

    def __init__(self, config: ProviderConfig, *, home: Home | None = None, manager: ModelManager | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        del environ  # accepted for a uniform `create(...)` signature; local models need no key
        super().__init__(config, home=home, manager=manager)
        self.settings = LlamaSettings.from_config(config, config.projector_path(home or Home(resolve_home())))

    def chat(self, request: ChatRequest) -> ChatResponse:
        loaded = self.model()
        with loaded.lock:
            run = self._prepare(loaded, request)
            completion = self._generate(loaded, run, stream=False)
        choice = completion["choices"][0]
        return self._response(run, choice.get("text") or "", choice.get("finish_reason"),
                              int(completion.get("usage", {}).get("completion_tokens", 0)))

    def stream(self, request: ChatRequest) -> Iterator[ChatChunk]:
        """Text as it is generated; with tools, text is held back until the end (it may turn out to be a call)."""
        loaded = self.model()
        pieces: list[str] = []
        finish: str | None = None
        with loaded.lock:
            run = self._prepare(loaded, request)
            chunks = self._generate(loaded, run, stream=True)
            try:
                for chunk in chunks:
                    choice = chunk["choices"][0]
                    finish = choice.get("finish_reason") or finish
                    if choice.get("finish_reason") is None:
                        pieces.append(choice.get("text") or "")
                        if pieces[-1] and not run.tool_names:
                            yield ChatChunk(text=pieces[-1])
            except Exception as exc:
                raise self._generation_error(exc, run.model) from exc
            finally:
                chunks.close()  # a consumer that stops early must not leave the model generating
        # llama-cpp-python streams one chunk per generated token (stop strings and end tokens excluded)
        yield from final_chunks(self._response(run, "".join(pieces), finish, len(pieces)), bool(run.tool_names))

    # --- internals ---------------------------------------------------------------------------------------------

    def _default_name(self, path: Path) -> str:
        return path.stem

    def _loader(self, path: Path) -> LoadedGGUF:
        return load_gguf(path, self.settings, provider=self.name)

    def _from_manager(self, manager: ModelManager) -> LoadedGGUF:
        """The manager's copy, keyed by the load settings too; its size estimate is the file's."""
        size = self.path.stat().st_size if self.path.is_file() else None
        if size is not None and self.settings.mmproj is not None and self.settings.mmproj.is_file():
            size += self.settings.mmproj.stat().st_size
        return manager.get(self.default_model, self.path, self._loader, variant=self.settings.variant,
                           estimate_bytes=size)

    def _prepare(self, loaded: LoadedGGUF, request: ChatRequest) -> _Run:
        model = request.model or self.default_model
        extra = self._extra(request, model)
        tools = () if request.tool_choice == "none" else request.tools
        rendered = self._render(loaded, request, tools)
        prompt_tokens = len(rendered.prompt)
        max_new = self._max_new_tokens(loaded, request, prompt_tokens)
        grammar = _tool_grammar(import_llama_cpp(self.name), tools, request.tool_choice, self.name, model)
        arguments = {"prompt": rendered.prompt, "max_tokens": max_new, "stop": rendered.stop,
                     "stopping_criteria": rendered.stopping_criteria, "grammar": grammar or rendered.grammar,
                     **_sampling(request), **extra}
        return _Run(arguments=arguments, prompt_tokens=prompt_tokens, max_new_tokens=max_new,
                    tool_names=tuple(tool.name for tool in tools), model=model)

    def _render(self, loaded: LoadedGGUF, request: ChatRequest, tools: Sequence[Tool]) -> _Rendered:
        """The prompt tokens, stop strings and format grammar, as the chat handler would pass them to llama.cpp;
        with images, the prompt is evaluated with them into the context here (the caller holds the lock)."""
        if not has_images(request):
            if loaded.images_in_context:  # the cached prefix holds image embeddings: start the context afresh
                loaded.llama.reset()
                loaded.images_in_context = False
            return self._render_text(loaded, request, tools)
        if loaded.projector is None:
            raise ProviderConfigError(f"the model {loaded.path.name} takes text only; the request has images",
                                      provider=self.name, model=request.model or self.default_model,
                                      hint="Set 'mmproj' to the model's multimodal projector GGUF (or pick one in "
                                           "the GGUF Model Loader)")
        from partyflow.llm.providers import llamacpp_vision

        model = request.model or self.default_model
        marked, images = llamacpp_vision.marked_request(request, loaded.projector.marker, provider=self.name,
                                                        model=model)
        rendered = self._render_text(loaded, marked, tools)
        loaded.images_in_context = True
        prompt = llamacpp_vision.evaluate(loaded.projector, loaded.llama, rendered.prompt, images,
                                          provider=self.name, model=model)
        return _Rendered(prompt=prompt, stop=rendered.stop, stopping_criteria=rendered.stopping_criteria,
                         grammar=rendered.grammar)

    def _render_text(self, loaded: LoadedGGUF, request: ChatRequest, tools: Sequence[Tool]) -> _Rendered:
        handler = self._handler(loaded)
        capture = _CompletionCapture(loaded.llama)
        options: dict[str, Any] = {"messages": text_messages(request, self.name, self.default_model),
                                   "stop": list(request.stop)}
        if tools:
            options["tools"] = template_tools(tools)
        if (response_format := _response_format(request)) is not None:
            options["response_format"] = response_format
        try:
            handler(llama=capture, **options)
        except _Captured as captured:
            return _Rendered.from_arguments(captured.arguments)
        except Exception as exc:  # a Jinja error in the model's own template, or a format's own refusal
            raise BadResponseError(f"the chat format of {loaded.path} failed: {exc}", provider=self.name,
                                   model=request.model or self.default_model,
                                   hint="The chat template does not accept these messages; try another "
                                   "chat_format") from None
        raise ProviderConfigError(f"chat_format {self.config.chat_format!r} does not render a prompt",
                                  provider=self.name, hint="Use a plain chat format (chatml, llama-3, ...) or the "
                                  "GGUF's own template (leave chat_format unset)")

    def _handler(self, loaded: LoadedGGUF) -> Any:
        """The chat handler for this provider's format, compiled once per loaded model (callers hold its lock)."""
        chat_format = self.config.chat_format
        if chat_format not in loaded.handlers:
            loaded.handlers[chat_format] = self._new_handler(loaded, chat_format)
        return loaded.handlers[chat_format]

    def _new_handler(self, loaded: LoadedGGUF, chat_format: str | None) -> Any:
        """A template embedded in the GGUF (the default one, or the one `chat_format` names), else a format
        llama-cpp-python knows by name."""
        key = _EMBEDDED_TEMPLATE if chat_format is None else f"{_EMBEDDED_TEMPLATE}.{chat_format}"
        import_llama_cpp(self.name)
        formats = importlib.import_module("llama_cpp.llama_chat_format")
        if (template := loaded.metadata.get(key)) is not None:
            return formats.Jinja2ChatFormatter(template=template, eos_token=_token_text(loaded, "eos"),
                                               bos_token=_token_text(loaded, "bos"),
                                               stop_token_ids=[loaded.llama.token_eos()]).to_chat_handler()
        if chat_format is None:
            raise ProviderConfigError(f"{loaded.path} has no chat template", provider=self.name,
                                      hint="Set chat_format to one llama-cpp-python knows (chatml, llama-2, "
                                      "llama-3, mistral-instruct, gemma, ...)")
        try:
            return formats.get_chat_completion_handler(chat_format)
        except Exception:  # llama-cpp-python's "not found" exception type is not part of its public API
            raise ProviderConfigError(f"unknown chat_format {chat_format!r}", provider=self.name,
                                      hint="Use a template name embedded in the GGUF or a llama-cpp-python "
                                      "format such as chatml, llama-2, llama-3, mistral-instruct or gemma") from None

    def _max_new_tokens(self, loaded: LoadedGGUF, request: ChatRequest, prompt_tokens: int) -> int:
        """The completion budget; an unset max_tokens shrinks to what is left of the context window."""
        window = loaded.n_ctx
        budget = completion_budget(request.max_tokens, prompt_tokens, window)
        if budget is not None:
            return budget
        wanted = request.max_tokens or DEFAULT_MAX_NEW_TOKENS
        asked = f" and {wanted} more were asked for" if window > prompt_tokens else ""
        raise ContextOverflowError(f"the prompt has {prompt_tokens} tokens{asked}, but the context window is {window}",
                                   provider=self.name, model=request.model or self.default_model,
                                   hint="Shorten the conversation, lower max_tokens, or raise n_ctx in the "
                                   "provider's config")

    def _extra(self, request: ChatRequest, model: str) -> dict[str, Any]:
        unknown = sorted(set(request.extra) - SAMPLER_OPTIONS)
        if unknown:
            raise InvalidRequestError(f"unknown extra options {', '.join(map(repr, unknown))}", provider=self.name,
                                      model=model, hint=f"llamacpp takes: {', '.join(sorted(SAMPLER_OPTIONS))}")
        return dict(request.extra)

    def _generate(self, loaded: LoadedGGUF, run: _Run, *, stream: bool) -> Any:
        try:
            return loaded.llama.create_completion(**run.arguments, stream=stream)
        except Exception as exc:
            raise self._generation_error(exc, run.model) from exc

    def _generation_error(self, exc: Exception, model: str) -> Exception:
        """llama.cpp's failures as our errors (the context check in `_prepare` should leave none for overflow)."""
        if "exceed context window" in str(exc):
            return ContextOverflowError(str(exc), provider=self.name, model=model)
        return generation_failed(exc, self.name, model)

    def _response(self, run: _Run, text: str, finish: str | None, completion_tokens: int) -> ChatResponse:
        """The reply to `run`; llama.cpp names its finish reason in OpenAI's words (none means it stopped)."""
        return self._reply(model=run.model, text=text, finish=FinishReason.parse(finish) or FinishReason.STOP,
                           tool_names=run.tool_names, prompt_tokens=run.prompt_tokens,
                           completion_tokens=completion_tokens)


# --- prompt rendering ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Run:
    """One prepared completion: `create_completion`'s arguments and what the reply is read against."""

    arguments: dict[str, Any]
    prompt_tokens: int
    max_new_tokens: int
    tool_names: tuple[str, ...]
    model: str


@dataclass(frozen=True)
class _Rendered:
    prompt: list[int]
    stop: list[str]
    stopping_criteria: Any
    grammar: Any

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, Any]) -> _Rendered:
        stop = arguments.get("stop") or []
        return cls(prompt=list(arguments["prompt"]), stop=[stop] if isinstance(stop, str) else list(stop),
                   stopping_criteria=arguments.get("stopping_criteria"), grammar=arguments.get("grammar"))


class _Captured(Exception):
    """Raised by `_CompletionCapture` to carry the handler's completion arguments out of the handler."""

    def __init__(self, arguments: dict[str, Any]) -> None:
        super().__init__("completion captured")
        self.arguments = arguments


class _CompletionCapture:
    """Stands in for `Llama` inside a chat handler: everything is the real model's but `create_completion`."""

    def __init__(self, llama: Any) -> None:
        self._llama = llama
        self.verbose = False

    def create_completion(self, **arguments: Any) -> Any:
        raise _Captured(arguments)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llama, name)


def _response_format(request: ChatRequest) -> dict[str, Any] | None:
    """llama-cpp-python's spelling: JSON mode is `json_object`, with an optional `schema` that the grammar follows."""
    rf = request.response_format
    if rf is None or not rf.wants_json:
        return None
    return {"type": "json_object", **({"schema": rf.json_schema} if rf.json_schema is not None else {})}


def _token_text(loaded: LoadedGGUF, which: str) -> str:
    """The text of the model's BOS or EOS token, for templates that write it ('' when the model has none)."""
    token = loaded.llama.token_eos() if which == "eos" else loaded.llama.token_bos()
    if token is None or token < 0:
        return ""
    return loaded.llama.detokenize([token], special=True).decode("utf-8", errors="replace")


# --- sampling and tool grammars --------------------------------------------------------------------------------

def _sampling(request: ChatRequest) -> dict[str, Any]:
    """Plain temperature (and top-p) sampling, or greedy decoding; llama.cpp's other samplers start disabled."""
    temperature = request.temperature or 0.0
    seed = request.seed
    if seed is None:
        seed = random.SystemRandom().randrange(2**31) if temperature else 0
    return {"temperature": temperature, "top_p": request.top_p or 1.0, "top_k": 0, "min_p": 0.0,
            "typical_p": 1.0, "repeat_penalty": 1.0, "seed": seed}


def _tool_grammar(llama_cpp: Any, tools: Sequence[Tool], choice: str | None, provider: str, model: str) -> Any:
    """For a forced tool choice, a grammar admitting only `{"name": ..., "arguments": {...}}` for allowed tools."""
    if not tools or choice in (None, "auto", "none"):
        return None
    allowed = [tool for tool in tools if choice == "required" or tool.name == choice]
    if not allowed:
        raise InvalidRequestError(f"tool_choice {choice!r} names no tool of the request", provider=provider,
                                  model=model, hint=f"Use one of: {', '.join(t.name for t in tools)}")
    grammars = importlib.import_module("llama_cpp.llama_grammar")
    try:
        return llama_cpp.LlamaGrammar.from_string(_call_gbnf(grammars, allowed), verbose=False)
    except Exception:  # a schema feature the converter lacks: keep the name forced, let the arguments be any object
        loose = [tool.model_copy(update={"parameters": {"type": "object"}}) for tool in allowed]
        return llama_cpp.LlamaGrammar.from_string(_call_gbnf(grammars, loose), verbose=False)


def _call_gbnf(grammars: Any, tools: Sequence[Tool]) -> str:
    """GBNF for one call to one of `tools`, from a JSON schema whose `name` comes first and is a constant."""
    variants = [{"type": "object", "properties": {"name": {"const": tool.name}, "arguments": tool.parameters},
                 "required": ["name", "arguments"], "additionalProperties": False} for tool in tools]
    schema = variants[0] if len(variants) == 1 else {"oneOf": variants}
    return grammars.json_schema_to_gbnf(json.dumps(schema), prop_order=["name", "arguments"])
