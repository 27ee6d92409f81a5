"""A tiny GGUF file, converted offline from the tiny transformers Llama of `tiny_model`.

Converting (rather than writing random GGUF tensors) lets a test compare llama.cpp's logits with transformers' on
the same weights, which proves that the tensor names, shapes and the rotary layout below are what llama.cpp
expects. Everything comes from `tiny_model` and the `gguf` package; nothing is downloaded.

Two details of the format matter:
- transformers' Llama rotates the two halves of each attention head (rotate_half), llama.cpp's `llama`
  architecture rotates adjacent pairs; the rows of the query and key projections are reordered to match.
- the tokenizer is stored as llama.cpp's `gpt2` BPE: the byte-level token strings in id order, the merges as
  "left right" strings, and the special tokens marked as control tokens so they never appear in decoded text.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.tiny_model import CHAT_TEMPLATE, END, PAD, SPECIAL_TOKENS, TinyModelSpec, build_tiny_model

# Named templates next to the default one, as tool-using models ship them (`tokenizer.chat_template.NAME`):
# `plain` drops the system prompt, `broken` fails the way a template refuses messages it cannot render.
NAMED_TEMPLATES = {
    "plain": "{%- for m in messages if m.role != 'system' %}<|{{ m.role }}|>{{ m.content }}<|end|>{%- endfor %}"
             "{%- if add_generation_prompt %}<|assistant|>{%- endif %}",
    "broken": "{{ raise_exception('this template renders no conversation') }}",
}


@dataclass(frozen=True)
class TinyGGUF:
    """The files a conversion produced: the GGUF and the transformers folder it came from."""

    gguf: Path
    source: Path


def build_tiny_gguf(target: Path, spec: TinyModelSpec = TinyModelSpec(), *, source: Path | None = None,
                    named_templates: Mapping[str, str] = NAMED_TEMPLATES) -> TinyGGUF:
    """Build the tiny transformers model (in `source`, next to `target` by default) and write it as `target`."""
    source = source or target.with_suffix(".hf")
    build_tiny_model(source, spec)
    convert_to_gguf(source, target, named_templates)
    return TinyGGUF(gguf=target, source=source)


def convert_to_gguf(folder: Path, target: Path, named_templates: Mapping[str, str] = NAMED_TEMPLATES) -> Path:
    """Write the Llama saved in `folder` (by `save_pretrained`) as an all-float32 GGUF file at `target`,
    with the tokenizer's chat template as the default and `named_templates` beside it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer, LlamaForCausalLM

    import gguf

    model = LlamaForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(target), arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    try:
        _add_hyperparameters(writer, model.config, folder.name)
        _add_tokenizer(writer, tokenizer)
        writer.add_chat_template([{"name": "default", "template": CHAT_TEMPLATE},
                                  *({"name": name, "template": text} for name, text in named_templates.items())])
        for name, array in _gguf_tensors(model).items():
            writer.add_tensor(name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return target


def _add_hyperparameters(writer: Any, config: Any, name: str) -> None:
    import gguf

    heads = config.num_attention_heads
    writer.add_name(name)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_dimension_count(config.hidden_size // heads)
    writer.add_rope_freq_base(float(getattr(config, "rope_theta", None) or _rope_theta(config)))
    writer.add_vocab_size(config.vocab_size)


def _rope_theta(config: Any) -> float:
    """Newer transformers keep the rotary base in `rope_parameters`; older ones in `rope_theta`."""
    parameters = getattr(config, "rope_parameters", None) or {}
    return float(parameters.get("rope_theta", 10000.0))


def _add_tokenizer(writer: Any, tokenizer: Any) -> None:
    import gguf

    by_id = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    tokens = [token for token, _ in by_id]
    if [index for _, index in by_id] != list(range(len(tokens))):
        raise ValueError("the tokenizer's ids are not contiguous; a GGUF token list cannot represent them")
    special = set(SPECIAL_TOKENS)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")  # the byte-level pre-tokenizer's GPT-2 split pattern
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens])
    writer.add_token_merges(_merges(tokenizer))
    end, pad = tokenizer.convert_tokens_to_ids([END, PAD])
    writer.add_bos_token_id(end)  # the model has no BOS; never added, but llama.cpp wants an id
    writer.add_eos_token_id(end)
    writer.add_pad_token_id(pad)
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)


def _merges(tokenizer: Any) -> list[str]:
    """The BPE merges as "left right" strings (tokenizers saves them as pairs or as such strings)."""
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    return [merge if isinstance(merge, str) else " ".join(merge) for merge in merges]


def _gguf_tensors(model: Any) -> dict[str, Any]:
    """The model's weights under llama.cpp's tensor names, as float32 numpy arrays (the tied head is left out)."""
    import gguf

    config = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    tensors: dict[str, Any] = {}
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # llama.cpp falls back to token_embd when there is no output tensor
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ValueError(f"no GGUF name for tensor {hf_name!r}")
        array = tensor.detach().float().numpy()
        if hf_name.endswith("q_proj.weight"):
            array = _pairwise_rotary_rows(array, config.num_attention_heads)
        elif hf_name.endswith("k_proj.weight"):
            array = _pairwise_rotary_rows(array, config.num_key_value_heads)
        tensors[name] = array
    return tensors


def _pairwise_rotary_rows(weight: Any, heads: int) -> Any:
    """Reorder each head's output rows from halves (x0..x{d/2-1}, y0..) to interleaved pairs (x0, y0, x1, y1...).

    transformers rotates dimension i with dimension i + d/2; llama.cpp's normal rope rotates 2i with 2i + 1.
    Moving the rows this way makes the two computations identical.
    """
    rows, columns = weight.shape
    half = rows // heads // 2
    return weight.reshape(heads, 2, half, columns).transpose(0, 2, 1, 3).reshape(rows, columns)
