"""A tiny multimodal projector (mmproj) GGUF for the tiny GGUF Llama, built offline as llama.cpp's converter would.

A random-weight CLIP vision tower (32x32 images, 8x8 patches: `IMAGE_TOKENS` = 16 embeddings per image) and a
LLaVA-1.5 MLP projector (`mm.0`, GELU, `mm.2`) into the Llama's embedding width, written with the `gguf`
package: tensor names from its own name map, the `clip.*` keys llama.cpp's `mtmd` reads. llama.cpp loads it as
it loads a real mmproj and encodes images with it; the weights are random, so what the model says is not checked.
"""

from __future__ import annotations

from pathlib import Path

IMAGE_SIDE = 32
PATCH = 8
IMAGE_TOKENS = (IMAGE_SIDE // PATCH) ** 2
VISION_WIDTH = 16
LAYERS = 2


def build_tiny_mmproj(target: Path, text_width: int, seed: int = 0) -> Path:
    """Write the projector to `target`; `text_width` is the Llama's embedding size (the projection's output)."""
    import numpy as np
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel

    import gguf

    config = CLIPVisionConfig(hidden_size=VISION_WIDTH, intermediate_size=2 * VISION_WIDTH, num_hidden_layers=LAYERS,
                              num_attention_heads=2, image_size=IMAGE_SIDE, patch_size=PATCH)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        tower = CLIPVisionModel(config).eval()
        projector = [torch.randn(text_width, VISION_WIDTH) * 0.1, torch.randn(text_width, text_width) * 0.1]
    writer = gguf.GGUFWriter(str(target), "clip")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_llava_projector", True)
    writer.add_string("clip.projector_type", "mlp")
    for key, value in (("image_size", IMAGE_SIDE), ("patch_size", PATCH), ("embedding_length", VISION_WIDTH),
                       ("feed_forward_length", 2 * VISION_WIDTH), ("projection_dim", text_width),
                       ("block_count", LAYERS), ("attention.head_count", 2)):
        writer.add_uint32(f"clip.vision.{key}", value)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", config.layer_norm_eps)
    writer.add_array("clip.vision.image_mean", [0.48145466, 0.4578275, 0.40821073])
    writer.add_array("clip.vision.image_std", [0.26862954, 0.26130258, 0.27577711])
    writer.add_bool("clip.use_gelu", False)  # CLIP's quick GELU
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.MMPROJ, LAYERS)
    for name, tensor in tower.state_dict().items():
        if name.endswith("position_ids"):
            continue
        full = "vision_tower." + (name if name.startswith("vision_model.") else f"vision_model.{name}")
        stem, _, suffix = full.rpartition(".")
        if suffix == "class_embedding":
            gguf_name = "v.class_embd"
        else:
            mapped = names.get_name(stem)
            if mapped is None:
                raise ValueError(f"no GGUF name for {full}")
            gguf_name = f"{mapped}.{suffix}"
        writer.add_tensor(gguf_name, tensor.detach().float().numpy())
    for index, weight in zip((0, 2), projector, strict=True):
        writer.add_tensor(f"mm.{index}.weight", weight.numpy())
        writer.add_tensor(f"mm.{index}.bias", np.zeros(weight.shape[0], dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return target
