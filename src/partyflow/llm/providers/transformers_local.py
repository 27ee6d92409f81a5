"""A `ChatModel` over a transformers causal LM saved in a folder under the home's `models/llm/` (extra `local`).

torch and transformers are imported when the model is first used, never at import time, so the CLI stays fast
and a missing extra is reported for the provider that needs it. Each loaded model carries its own lock: a model
on one device serves one generation at a time, even when several providers (or a `ModelManager`) share it.

A folder holding a vision-language model (its config has a `vision_config`: LLaVA, Idefics3/SmolVLM, Qwen2-VL,
Gemma 3, ...) is loaded with its processor, and requests with images go through the processor's chat template
(`vision_local` checks, decodes and scales the images); text-only models refuse images with a clear error.

Sampling with a temperature uses the Gumbel-max trick with a private `torch.Generator`, so a seeded request gives
the same reply whatever other threads do with torch's global random state.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import random
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from partyflow.config import Home
from partyflow.llm.config import ProviderConfig
from partyflow.llm.errors import BadResponseError, ContextOverflowError, ProviderConfigError
from partyflow.llm.providers.batching import DEFAULT_MAX_ROWS, BatchItem, BatchRunner
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
from partyflow.llm.providers.vision_local import has_images, vision_messages
from partyflow.llm.types import ChatChunk, ChatRequest, ChatResponse, FinishReason

if TYPE_CHECKING:
    from partyflow.llm.models import ModelManager

DTYPES = ("auto", "float32", "float16", "bfloat16")
# transformers' from_pretrained swaps process-wide state while it builds a model (weight-init functions, the default
# dtype) and puts it back after; two loads in different threads interleave those swaps and can leave them wrong
# for every later model in the process. Loads are therefore one at a time, whatever the model (generation is not
# affected: it runs under each model's own lock, in parallel across models).
_LOADING = threading.Lock()


# --- loading ---------------------------------------------------------------------------------------------------

@dataclass(eq=False)
class LocalModel:
    """A loaded tokenizer and model; `lock` makes the model serve one generation at a time. A vision-language
    model also has its `processor` (image preprocessing and the multimodal chat template)."""

    path: Path
    tokenizer: Any
    model: Any
    device: str
    dtype: str
    processor: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    batcher: BatchRunner | None = field(default=None, repr=False)  # created on the first batched request
    _batcher_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def batch_runner(self, max_rows: int) -> BatchRunner:
        """This model's batch queue (issue 18): concurrent requests generated together; see `batching`."""
        with self._batcher_lock:
            if self.batcher is None:
                end_ids = _as_set(self.model.generation_config.eos_token_id) | _as_set(self.tokenizer.eos_token_id)
                self.batcher = BatchRunner(model=self.model, tokenizer=self.tokenizer, device=self.device,
                                           lock=self.lock, end_ids=frozenset(end_ids),
                                           pad_id=_pad_id(self.tokenizer) or 0, max_rows=max_rows)
            return self.batcher

    @property
    def nbytes(self) -> int:
        """Memory held by the weights: parameter count times element size (buffers included)."""
        tensors = [*self.model.parameters(), *self.model.buffers()]
        return sum(t.numel() * t.element_size() for t in tensors)

    @property
    def max_positions(self) -> int | None:
        """The context window from the model's config, None when the architecture does not say."""
        config = self.model.config
        config = config.get_text_config() if hasattr(config, "get_text_config") else config  # a VLM's LM part
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            if isinstance(value := getattr(config, name, None), int):
                return value
        return None


def load_local_model(path: Path, *, device: str = "auto", dtype: str = "auto",
                     provider: str | None = None) -> LocalModel:
    """Load the tokenizer and model in `path`; errors name the provider and the folder."""
    if not (path / "config.json").is_file():
        raise ProviderConfigError(
            f"{path} is not a transformers model folder (no config.json)", provider=provider,
            hint="Point 'path' at a folder written by save_pretrained, under the home's models/llm/")
    torch = _import("torch", provider)
    transformers = _import("transformers", provider)
    device = pick_device(torch, device)
    dtype = pick_dtype(torch, device, dtype, provider)
    processor = None
    try:
        with _LOADING:
            if is_vision_folder(path):
                processor = transformers.AutoProcessor.from_pretrained(path)
                tokenizer = processor.tokenizer
                model = transformers.AutoModelForImageTextToText.from_pretrained(path, dtype=getattr(torch, dtype))
            else:
                tokenizer = transformers.AutoTokenizer.from_pretrained(path)
                model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    except Exception as exc:  # transformers raises many types for a broken folder; all mean the same to a user
        raise ProviderConfigError(f"cannot load the model in {path}: {exc}", provider=provider,
                                  hint="Check that the folder holds a complete model and tokenizer (and, for a "
                                       "vision model, its processor)") from None
    template = getattr(processor, "chat_template", None) or getattr(tokenizer, "chat_template", None)
    if template is None:
        raise ProviderConfigError(f"the {'processor' if processor else 'tokenizer'} in {path} has no chat template",
                                  provider=provider,
                                  hint="Use an instruct/chat model, or add a chat_template to its tokenizer")
    return LocalModel(path=path, tokenizer=tokenizer, model=model.to(device).eval(), device=device, dtype=dtype,
                      processor=processor)


def is_vision_folder(path: Path) -> bool:
    """Whether the model in `path` takes images: its config has a vision tower (`vision_config`)."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and isinstance(config.get("vision_config"), dict)


def pick_device(torch: Any, device: str = "auto") -> str:
    """`auto` is CUDA, then Apple's MPS, then the CPU; anything else is taken as given."""
    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


def pick_dtype(torch: Any, device: str, dtype: str = "auto", provider: str | None = None) -> str:
    """`auto` is half precision on CUDA (bfloat16 where supported) and float32 elsewhere, where half is slow."""
    if dtype not in DTYPES:
        raise ProviderConfigError(f"unknown dtype {dtype!r}", provider=provider, hint=f"Use one of: {', '.join(DTYPES)}")
    if dtype != "auto":
        return dtype
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def model_folder(path: Path) -> bool:
    """Whether `path` looks like a transformers model folder (for `partyflow models list`)."""
    return (path / "config.json").is_file()


# --- the provider ----------------------------------------------------------------------------------------------

class TransformersProvider(LocalProvider[LocalModel]):
    """A local model, loaded on first use (or borrowed from a `ModelManager`, which may unload it between calls).

    `generate_options` are passed to every `generate` call (for example `repetition_penalty`, or a
    `logits_processor` list that constrains the output); request settings take precedence over them.
    """

    def __init__(self, config: ProviderConfig, *, home: Home | None = None, device: str = "auto",
                 dtype: str = "auto", manager: ModelManager | None = None,
                 generate_options: Mapping[str, Any] | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        del environ  # accepted for a uniform `create(...)` signature; local models need no key
        super().__init__(config, home=home, manager=manager)
        self.device = device
        self.dtype = dtype
        self._generate_options = dict(generate_options or {})

    def chat(self, request: ChatRequest) -> ChatResponse:
        local = self.model()
        if self._batchable(request, local):
            run, item = self._batch_item(local, request)
            output = local.batch_runner(self._max_batch).submit(item).result()
            return self._response(request, run, output)
        with local.lock:
            run = self._prepare(local, request)
            output = run.generate()
        return self._response(request, run, output)

    async def achat(self, request: ChatRequest) -> ChatResponse:
        """Batched requests wait for their batch without holding a thread, so 32 concurrent Chat nodes reach the
        batch queue together instead of a thread pool's few workers at a time."""
        if not self._batchable(request):
            return await asyncio.to_thread(self.chat, request)
        local = await asyncio.to_thread(self.model)
        if not self._batchable(request, local):
            return await asyncio.to_thread(self.chat, request)
        run, item = self._batch_item(local, request)
        output = await asyncio.wrap_future(local.batch_runner(self._max_batch).submit(item))
        return self._response(request, run, output)

    def stream(self, request: ChatRequest) -> Iterator[ChatChunk]:
        """Text as it is generated; with tools, text is held back until the end (it may turn out to be a call)."""
        local = self.model()
        with local.lock:
            run = self._prepare(local, request)
            streamer = _import("transformers", self.name).TextIteratorStreamer(
                local.tokenizer, skip_prompt=True, skip_special_tokens=True)
            worker = _Worker(run, streamer)
            try:
                worker.start()
                for piece in streamer:
                    if piece and not request.tools:
                        yield ChatChunk(text=piece)
            finally:
                worker.stop()  # a consumer that stops early must not leave the model generating
            output = worker.result(self.name, self.default_model)
        yield from final_chunks(self._response(request, run, output), bool(request.tools))

    # --- internals ---------------------------------------------------------------------------------------------

    @property
    def _max_batch(self) -> int:
        return self.config.max_batch or DEFAULT_MAX_ROWS

    def _batchable(self, request: ChatRequest, local: LocalModel | None = None) -> bool:
        """Whether a batch reproduces this request exactly: not with stop strings (they end a run mid-way) or
        extra generate options, not when batching is switched off (`max_batch = 1`), and not for a vision model
        (its inputs are more than token ids)."""
        if local is not None and local.processor is not None:
            return False
        return self._max_batch > 1 and not request.stop and not self._generate_options

    def _batch_item(self, local: LocalModel, request: ChatRequest) -> tuple[_Generation, BatchItem]:
        inputs = self._encode(local, request)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        max_new = self._max_new_tokens(local, request, prompt_tokens)
        samplers = _samplers(request)
        run = _Generation(local=local, inputs=inputs, options={}, prompt_tokens=prompt_tokens,
                          max_new_tokens=max_new, stop=request.stop)
        item = BatchItem(ids=inputs["input_ids"][0].tolist(), max_new_tokens=max_new,
                         temperature=request.temperature or None, top_p=request.top_p,
                         generator=samplers[0].generator if samplers else None)
        return run, item

    def _default_name(self, path: Path) -> str:
        return path.name

    def _from_manager(self, manager: ModelManager) -> LocalModel:
        """The manager's copy for the device and dtype this provider resolves to, sized by the weights' dtype."""
        from partyflow.llm.models import estimate_bytes

        torch = _import("torch", self.name)
        device = pick_device(torch, self.device)
        dtype = pick_dtype(torch, device, self.dtype, self.name)
        return manager.get(self.default_model, self.path, self._loader, variant=f"{device}/{dtype}",
                           estimate_bytes=estimate_bytes(self.path, dtype))

    def _loader(self, path: Path) -> LocalModel:
        return load_local_model(path, device=self.device, dtype=self.dtype, provider=self.name)

    def _prepare(self, local: LocalModel, request: ChatRequest) -> _Generation:
        inputs = self._encode(local, request)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        max_new = self._max_new_tokens(local, request, prompt_tokens)
        processors = [*(self._generate_options.get("logits_processor") or ()), *_samplers(request)]
        options = {**self._generate_options, **_options(local, request, max_new),
                   "logits_processor": _import("transformers", self.name).LogitsProcessorList(processors)}
        return _Generation(local=local, inputs=inputs, options=options, prompt_tokens=prompt_tokens,
                           max_new_tokens=max_new, stop=request.stop)

    def _encode(self, local: LocalModel, request: ChatRequest) -> Any:
        tools = template_tools(request.tools)
        if local.processor is not None:
            return self._encode_vision(local, request, tools)
        if has_images(request):
            raise ProviderConfigError(f"the model in {local.path} takes text only; the request has images",
                                      provider=self.name, model=self.default_model,
                                      hint="Use a vision-language model folder (its config has a vision_config), "
                                           "or a vision model through an openai_compat provider")
        messages = text_messages(request, self.name, self.default_model)
        try:
            encoded = local.tokenizer.apply_chat_template(messages, tools=tools or None, add_generation_prompt=True,
                                                          return_tensors="pt", return_dict=True)
        except Exception as exc:  # a Jinja error in the model's own template
            raise self._template_failed(local, exc) from None
        return encoded.to(local.device)

    def _encode_vision(self, local: LocalModel, request: ChatRequest, tools: list[dict[str, Any]]) -> Any:
        """Text and images through the processor: its chat template places the image tokens, its image
        processor makes the pixel values (cast to the model's dtype, on its device)."""
        messages = vision_messages(request, provider=self.name, model=self.default_model)
        try:
            encoded = local.processor.apply_chat_template(messages, tools=tools or None, add_generation_prompt=True,
                                                          tokenize=True, return_dict=True, return_tensors="pt")
        except Exception as exc:  # a Jinja error, or images the processor cannot take
            raise self._template_failed(local, exc) from None
        torch = _import("torch", self.name)
        return encoded.to(device=local.device, dtype=getattr(torch, local.dtype))

    def _template_failed(self, local: LocalModel, exc: Exception) -> BadResponseError:
        return BadResponseError(f"the chat template of {local.path} failed: {exc}", provider=self.name,
                                model=self.default_model,
                                hint="The model's chat template does not accept these messages")

    def _max_new_tokens(self, local: LocalModel, request: ChatRequest, prompt_tokens: int) -> int:
        """The completion budget; an unset max_tokens shrinks to what is left of the context window."""
        window = local.max_positions
        budget = completion_budget(request.max_tokens, prompt_tokens, window)
        if budget is None:
            raise ContextOverflowError(
                f"the prompt has {prompt_tokens} tokens and {request.max_tokens or DEFAULT_MAX_NEW_TOKENS} more "
                f"were asked for, but the context window is {window}", provider=self.name,
                model=request.model or self.default_model)
        return budget

    def _response(self, request: ChatRequest, run: _Generation, output: Any) -> ChatResponse:
        """The reply read from `run`'s generated tokens."""
        return self._reply(model=request.model or self.default_model, text=run.decode(output),
                           finish=run.finish(output), tool_names=(tool.name for tool in request.tools),
                           prompt_tokens=run.prompt_tokens, completion_tokens=run.completion_tokens(output))


@dataclass
class _Generation:
    """One prepared `generate` call and how to read its output."""

    local: LocalModel
    inputs: Any
    options: dict[str, Any]
    prompt_tokens: int
    max_new_tokens: int
    stop: tuple[str, ...]

    def generate(self, **more: Any) -> Any:
        torch = importlib.import_module("torch")
        with torch.inference_mode():
            return self.local.model.generate(**self.inputs, **self.options, **more)[0, self.prompt_tokens:]

    def completion_tokens(self, new_tokens: Any) -> int:
        return int(new_tokens.shape[0])

    def decode(self, new_tokens: Any) -> str:
        text = self.local.tokenizer.decode(new_tokens, skip_special_tokens=True)
        return _cut_at_stop(text, self.stop)

    def finish(self, new_tokens: Any) -> FinishReason:
        """LENGTH only when the budget ran out; an end token or a stop string on the last step is STOP."""
        count = int(new_tokens.shape[0])
        if count < self.max_new_tokens or int(new_tokens[-1]) in self._end_ids():
            return FinishReason.STOP
        raw = self.local.tokenizer.decode(new_tokens, skip_special_tokens=True)
        return FinishReason.STOP if _cut_at_stop(raw, self.stop) != raw else FinishReason.LENGTH

    def _end_ids(self) -> set[int]:
        return _as_set(self.local.model.generation_config.eos_token_id) | _as_set(self.local.tokenizer.eos_token_id)


class _Worker:
    """Runs a generation in a thread feeding a streamer; `stop` cancels it between tokens and waits for it."""

    def __init__(self, run: _Generation, streamer: Any) -> None:
        self._run = run
        self._streamer = streamer
        self._cancel = _Cancel()
        self._output: Any = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="partyflow-generate", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._cancel.event.set()
        self._thread.join()

    def result(self, provider: str, model: str) -> Any:
        if self._failure is not None:
            raise generation_failed(self._failure, provider, model) from self._failure
        return self._output

    def _main(self) -> None:
        try:
            self._output = self._run.generate(streamer=self._streamer, stopping_criteria=[self._cancel])
        except BaseException as exc:  # reported by `result`, in the caller's thread
            self._failure = exc
            self._streamer.end()


@dataclass(eq=False)
class _Cancel:
    """A stopping criterion that ends generation once `event` is set."""

    event: threading.Event = field(default_factory=threading.Event)

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        torch = importlib.import_module("torch")
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)

    def __deepcopy__(self, memo: dict[int, Any]) -> _Cancel:
        return self  # generate deep-copies its criteria; the copy must still see our event


@dataclass(eq=False)
class _GumbelSampler:
    """Samples from softmax(logits / temperature), top-p filtered, by making greedy search pick the sample.

    Adding Gumbel noise to log-probabilities and taking the argmax draws exactly from the distribution; the noise
    comes from our own generator, so a seed reproduces a reply without touching torch's global random state.
    """

    temperature: float
    top_p: float | None
    generator: Any

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        torch = importlib.import_module("torch")
        logits = scores.float() / self.temperature
        if self.top_p is not None and self.top_p < 1:
            logits = _top_p(torch, logits, self.top_p)
        uniform = torch.rand(logits.shape, generator=self.generator, device="cpu").to(logits.device)
        gumbel = -torch.log(-torch.log(uniform.clamp(1e-10, 1.0 - 1e-7)))
        return torch.log_softmax(logits, dim=-1) + gumbel


def _top_p(torch: Any, logits: Any, top_p: float) -> Any:
    """Keep the smallest set of most likely tokens whose probability reaches `top_p`."""
    ordered, order = torch.sort(logits, descending=True, dim=-1)
    probs = torch.softmax(ordered, dim=-1)
    drop = (torch.cumsum(probs, dim=-1) - probs) >= top_p
    return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


def _options(local: LocalModel, request: ChatRequest, max_new_tokens: int) -> dict[str, Any]:
    """generate's settings for a request; sampling is done by `_samplers`, so generate itself is greedy."""
    options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False,
                               "pad_token_id": _pad_id(local.tokenizer)}
    if request.stop:
        options.update(stop_strings=list(request.stop), tokenizer=local.tokenizer)
    return options


def _samplers(request: ChatRequest) -> list[_GumbelSampler]:
    """A sampler for requests with a temperature, seeded by the request's seed (or at random)."""
    if not request.temperature:
        return []
    torch = importlib.import_module("torch")
    seed = request.seed if request.seed is not None else random.SystemRandom().randrange(2**63)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return [_GumbelSampler(request.temperature, request.top_p, generator)]


def _pad_id(tokenizer: Any) -> int | None:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _as_set(value: int | list[int] | None) -> set[int]:
    if value is None:
        return set()
    return set(value) if isinstance(value, list | tuple) else {value}


def _cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """The text before the first stop string (generate keeps the stop string; the OpenAI protocol does not)."""
    cuts = [i for s in stop if (i := text.find(s)) >= 0]
    return text[:min(cuts)] if cuts else text


def _import(module: str, provider: str | None) -> Any:
    """torch or transformers, imported on first use; missing, it is the `local` extra that `provider` needs."""
    return import_extra(module, "local", provider)

