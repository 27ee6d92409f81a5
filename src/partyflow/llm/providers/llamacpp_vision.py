"""Images for llama.cpp models with a multimodal projector (`mmproj`), through llama.cpp's own `mtmd` library.

The prompt is rendered as for text (the GGUF's own chat template, or `chat_format`), with llama.cpp's media marker
written where each image goes; `mtmd` then splits the prompt at the markers, encodes each image with the
projector, and the text and image chunks are evaluated into the model's context in order. Generation continues
from there through `create_completion`, whose prompt is the evaluated token list, so llama.cpp reuses all of it.

Images pass the same checks and scaling as for transformers vision models (`vision_local`), and are handed to
`mtmd` as PNG, which every build decodes.
"""

from __future__ import annotations

import ctypes
import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from partyflow.llm.errors import ContextOverflowError, InvalidRequestError, ProviderConfigError
from partyflow.llm.providers.vision_local import DEFAULT_LIMITS, ImageLimits, decode_image
from partyflow.llm.types import ChatRequest, ImagePart, TextPart, ToolMessage, UserMessage


@dataclass(eq=False)
class Projector:
    """An `mtmd` context: the projector file loaded against one llama.cpp model (freed with that model)."""

    path: Path
    ctx: Any
    marker: str
    mtmd: Any = field(repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def load_projector(llama: Any, path: Path, *, provider: str | None = None) -> Projector:
    """Load `path` (an mmproj GGUF) for `llama`; errors name the file and what to check."""
    import llama_cpp
    import llama_cpp.mtmd_cpp as mtmd

    params = mtmd.mtmd_context_params_default()
    params.use_gpu = True  # only matters in a GPU build of llama.cpp; a CPU build ignores it
    params.print_timings = False
    params.n_threads = llama.n_threads
    params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    ctx = mtmd.mtmd_init_from_file(str(path).encode(), llama.model, params)
    if not ctx:
        raise ProviderConfigError(f"llama.cpp cannot load the projector {path} for this model", provider=provider,
                                  hint="Use the mmproj file made for this model (its projection must match the "
                                       "model's embedding size)")
    if not mtmd.mtmd_support_vision(ctx):
        mtmd.mtmd_free(ctx)
        raise ProviderConfigError(f"the projector {path} has no vision encoder", provider=provider,
                                  hint="Use a vision mmproj file")
    projector = Projector(path=path, ctx=ctx, marker=mtmd.mtmd_default_marker().decode("utf-8"), mtmd=mtmd)

    def free() -> None:
        with projector._lock:
            if projector.ctx is not None:
                mtmd.mtmd_free(projector.ctx)
                projector.ctx = None

    llama._stack.callback(free)  # freed with the model, before llama.cpp frees the model it points to
    return projector


def marked_request(request: ChatRequest, marker: str, *, provider: str, model: str,
                   limits: ImageLimits = DEFAULT_LIMITS) -> tuple[ChatRequest, list[bytes]]:
    """The request with each image replaced by `marker` text, and the images as PNG bytes, in order."""
    count = sum(isinstance(p, ImagePart) for m in request.messages if isinstance(m, UserMessage | ToolMessage)
                and not isinstance(m.content, str) for p in m.content)
    if count > limits.max_images:
        raise InvalidRequestError(f"the request has {count} images; this local model takes up to "
                                  f"{limits.max_images} per request", provider=provider, model=model,
                                  hint="Send fewer images per turn, or combine them into one picture")
    images: list[bytes] = []
    messages = []
    for message in request.messages:
        if isinstance(message, UserMessage | ToolMessage) and not isinstance(message.content, str):
            parts = []
            for part in message.content:
                if isinstance(part, ImagePart):
                    picture = decode_image(part, provider, model, limits, len(images) + 1)
                    out = io.BytesIO()
                    picture.save(out, format="PNG")
                    images.append(out.getvalue())
                    parts.append(TextPart(text=marker))
                else:
                    parts.append(part)
            message = message.model_copy(update={"content": tuple(parts)})
        messages.append(message)
    return request.model_copy(update={"messages": tuple(messages)}), images


def evaluate(projector: Projector, llama: Any, prompt: Sequence[int], images: Sequence[bytes], *,
             provider: str, model: str) -> list[int]:
    """Evaluate the rendered `prompt` (tokens holding one marker per image) with its images into `llama`'s
    context; returns the prompt as `create_completion` must be given it to continue from there."""
    mtmd = projector.mtmd
    text = llama.detokenize(list(prompt), special=True).decode("utf-8", errors="replace")
    found = text.count(projector.marker)
    if found != len(images):
        raise ProviderConfigError(f"the chat template wrote {found} image markers for {len(images)} images",
                                  provider=provider, model=model,
                                  hint="The chat template drops or repeats message text; use another chat_format")
    bitmaps = []
    chunks = None
    try:
        for data in images:
            buffer = (ctypes.c_uint8 * len(data)).from_buffer(bytearray(data))
            bitmap = mtmd.mtmd_helper_bitmap_init_from_buf(projector.ctx, buffer, len(data), False)
            if not bitmap:
                raise InvalidRequestError("llama.cpp cannot decode an image", provider=provider, model=model)
            bitmaps.append(bitmap)
        encoded = text.encode("utf-8")
        source = mtmd.mtmd_input_text()
        source.text = encoded
        source.text_len = len(encoded)
        source.add_special = False  # the template already wrote BOS where the model wants it
        source.parse_special = True
        chunks = mtmd.mtmd_input_chunks_init()
        array = (mtmd.mtmd_bitmap_p_ctypes * max(len(bitmaps), 1))(*bitmaps)
        if mtmd.mtmd_tokenize(projector.ctx, chunks, ctypes.byref(source), array, len(bitmaps)) != 0:
            raise ProviderConfigError("llama.cpp could not split the prompt at its images", provider=provider,
                                      model=model)
        pieces = [mtmd.mtmd_input_chunks_get(chunks, i) for i in range(mtmd.mtmd_input_chunks_size(chunks))]
        total = sum(int(mtmd.mtmd_input_chunk_get_n_tokens(piece)) for piece in pieces if piece)
        if total >= llama.n_ctx():
            raise ContextOverflowError(f"the prompt with its images has {total} tokens, but the context window is "
                                       f"{llama.n_ctx()}", provider=provider, model=model,
                                       hint="Send fewer or smaller images (detail low), or raise n_ctx")
        return _evaluate_chunks(mtmd, projector, llama, pieces, provider, model)
    finally:
        if chunks is not None:
            mtmd.mtmd_input_chunks_free(chunks)
        for bitmap in bitmaps:
            mtmd.mtmd_bitmap_free(bitmap)


def _evaluate_chunks(mtmd: Any, projector: Projector, llama: Any, pieces: list[Any], provider: str,
                     model: str) -> list[int]:
    import llama_cpp

    llama.reset()
    llama._ctx.kv_cache_clear()
    for piece in pieces:
        if not piece:
            continue
        if mtmd.mtmd_input_chunk_get_type(piece) == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
            count = ctypes.c_size_t()
            tokens = mtmd.mtmd_input_chunk_get_tokens_text(piece, ctypes.byref(count))
            if count.value:
                llama.eval([tokens[i] for i in range(count.value)])
            continue
        position = llama_cpp.llama_pos(0)
        status = mtmd.mtmd_helper_eval_chunk_single(projector.ctx, llama._ctx.ctx, piece,
                                                     llama_cpp.llama_pos(llama.n_tokens), llama_cpp.llama_seq_id(0),
                                                     llama.n_batch, False, ctypes.byref(position))
        if status != 0:
            raise ProviderConfigError(f"llama.cpp failed to encode an image (status {status})", provider=provider,
                                      model=model)
        llama.n_tokens = position.value
    return llama.input_ids[: llama.n_tokens].tolist()
