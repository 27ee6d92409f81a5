"""A tiny transformers causal LM built offline, for tests and benchmarks that need a real model folder.

The tokenizer is a byte-level BPE trained on a few sentences, so any text (JSON tool calls included) encodes and
decodes losslessly; the model is a random-weight Llama small enough to build and run in well under a second.
Nothing is downloaded: every file comes from `tokenizers`, `transformers` and `save_pretrained`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROLES = ("system", "user", "assistant", "tool")
END = "<|end|>"
PAD = "<pad>"
SPECIAL_TOKENS = (PAD, END, *(f"<|{role}|>" for role in ROLES))
MAX_POSITIONS = 256

SENTENCES = (
    "Hello, how are you today? I am fine, thank you.",
    "The weather in Paris is sunny and warm.",
    "Call the tool with a JSON object of arguments.",
    '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
    "Workflows are graphs of nodes; each node runs when its inputs are ready.",
    "You are a helpful assistant. Answer briefly.",
)

# Jinja, in the shape transformers' apply_chat_template renders: messages, tools, add_generation_prompt.
CHAT_TEMPLATE = (
    "{%- if tools %}<|system|>You may call these tools by replying "
    "<tool_call>{\"name\": NAME, \"arguments\": {...}}</tool_call>.\n"
    "{%- for tool in tools %}\n{{ tool | tojson }}{%- endfor %}<|end|>\n{%- endif %}"
    "{%- for message in messages %}<|{{ message.role }}|>"
    "{%- if message.content %}{{ message.content }}{%- endif %}"
    "{%- for call in message.tool_calls or [] %}<tool_call>{\"name\": \"{{ call.function.name }}\", "
    "\"arguments\": {{ call.function.arguments }}}</tool_call>{%- endfor %}<|end|>\n{%- endfor %}"
    "{%- if add_generation_prompt %}<|assistant|>{%- endif %}"
)


@dataclass(frozen=True)
class TinyModelSpec:
    """What varies between tiny models: the seed of the random weights and the width (for differing sizes)."""

    seed: int = 0
    hidden_size: int = 32
    layers: int = 2
    vocab_size: int = 400


def build_tokenizer(vocab_size: int = 400):  # -> transformers.PreTrainedTokenizerFast
    """A byte-level BPE trained on `SENTENCES`, wrapped for transformers with the chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(SENTENCES, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token=END, pad_token=PAD,
                                        model_max_length=MAX_POSITIONS)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_model(folder: Path, spec: TinyModelSpec = TinyModelSpec()) -> Path:
    """Write a tokenizer and a random-weight Llama into `folder` with `save_pretrained`; returns `folder`."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(spec.vocab_size)
    end, pad = tokenizer.convert_tokens_to_ids([END, PAD])
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=spec.hidden_size,
                         intermediate_size=spec.hidden_size * 2, num_hidden_layers=spec.layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=MAX_POSITIONS,
                         bos_token_id=None, eos_token_id=end, pad_token_id=pad, tie_word_embeddings=True)
    with torch.random.fork_rng():  # seeded weights without disturbing the caller's random state
        torch.manual_seed(spec.seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=end, pad_token_id=pad)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
