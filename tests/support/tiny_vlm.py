"""A tiny LLaVA vision-language model built offline: a random-weight CLIP vision tower and Llama, a byte-level
tokenizer with an `<image>` token, and a `LlavaProcessor` whose chat template places one `<image>` per image part.

The image processor resizes every image to 32x32 and the tower cuts it into 8x8 patches, so each image becomes
exactly `IMAGE_TOKENS` (16) tokens in the prompt: tests can count them. Nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

IMAGE_SIDE = 32
PATCH = 8
IMAGE_TOKENS = (IMAGE_SIDE // PATCH) ** 2  # the "default" feature strategy drops the CLS position
SPECIAL_TOKENS = ("<pad>", "</s>", "<image>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>", "<|end|>")

# Jinja for processors: every message's content is a list of parts (text, image).
CHAT_TEMPLATE = (
    "{%- for message in messages %}<|{{ message.role }}|>"
    "{%- if message.content is string %}{{ message.content }}{%- else %}"
    "{%- for part in message.content %}{%- if part.type == 'image' %}<image>"
    "{%- elif part.type == 'text' %}{{ part.text }}{%- endif %}{%- endfor %}{%- endif %}<|end|>\n"
    "{%- endfor %}{%- if add_generation_prompt %}<|assistant|>{%- endif %}"
)


def build_tiny_vlm(folder: Path, seed: int = 0) -> Path:
    """Write the processor (tokenizer, image processor, chat template) and a random LLaVA into `folder`."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        CLIPVisionConfig,
        GenerationConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )
    from transformers.models.clip import CLIPImageProcessorPil

    core = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))},
                                merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens([AddedToken(token, special=True) for token in SPECIAL_TOKENS])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>",
                                        extra_special_tokens={"image_token": "<image>"})
    tokenizer.chat_template = CHAT_TEMPLATE
    images = CLIPImageProcessorPil(size={"shortest_edge": IMAGE_SIDE},
                                   crop_size={"height": IMAGE_SIDE, "width": IMAGE_SIDE})
    processor = LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=PATCH,
                               vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE,
                               image_token="<image>", num_additional_image_tokens=1)
    end, pad, image = tokenizer.convert_tokens_to_ids(["</s>", "<pad>", "<image>"])
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, image_size=IMAGE_SIDE, patch_size=PATCH,
                                       projection_dim=16),
        text_config=LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                eos_token_id=end, pad_token_id=pad, bos_token_id=None),
        image_token_index=image, vision_feature_layer=-1, vision_feature_select_strategy="default")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration(config)
    model.generation_config = GenerationConfig(eos_token_id=end, pad_token_id=pad)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
