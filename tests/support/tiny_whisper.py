"""A tiny multilingual Whisper built offline and converted for faster-whisper (CTranslate2), like a real one.

The tokenizer has Whisper's layout of ids — 50,257 text tokens (byte-level, the rest unused fillers, one of them
the empty token CTranslate2 takes as the multilingual mark), then `<|endoftext|>`, `<|startoftranscript|>`, the
language tokens, the task tokens and `<|notimestamps|>` — so faster-whisper's language, task and timestamp logic
runs as it does on a real model. The weights are random (d_model 16, one layer each side): what it writes is
meaningless, but segments, timestamps and languages come out through the real code. Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

TEXT_TOKENS = 50_257
MEL_BINS = 80


def build_tiny_whisper(target: Path, work: Path, seed: int = 0) -> Path:
    """Build the Hugging Face model in `work`, convert it into `target` (a faster-whisper model folder)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from ctranslate2.converters import TransformersConverter
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperForConditionalGeneration,
        WhisperTokenizerFast,
    )
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    languages = list(LANGUAGES)  # 100 codes, large-v3's layout
    vocab = {char: i for i, char in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    while len(vocab) < TEXT_TOKENS - 1:
        vocab[f"<unused{len(vocab)}>"] = len(vocab)
    vocab[""] = TEXT_TOKENS - 1
    specials = ["<|endoftext|>", "<|startoftranscript|>", *(f"<|{code}|>" for code in languages), "<|translate|>",
                "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens([AddedToken(token, special=True) for token in specials])
    end, start = TEXT_TOKENS, TEXT_TOKENS + 1
    no_timestamps = core.token_to_id("<|notimestamps|>")
    tokenizer = WhisperTokenizerFast(tokenizer_object=core, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                     unk_token="<|endoftext|>", pad_token="<|endoftext|>",
                                     additional_special_tokens=specials[1:])
    config = WhisperConfig(vocab_size=no_timestamps + 1 + 1501, num_mel_bins=MEL_BINS, d_model=16, encoder_layers=1,
                           decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                           encoder_ffn_dim=32, decoder_ffn_dim=32, max_source_positions=1500,
                           max_target_positions=448, decoder_start_token_id=start, eos_token_id=end,
                           pad_token_id=end, bos_token_id=end)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=start, eos_token_id=end, pad_token_id=end, suppress_tokens=[],
        begin_suppress_tokens=[220, end], no_timestamps_token_id=no_timestamps,
        lang_to_id={f"<|{code}|>": start + 1 + i for i, code in enumerate(languages)})
    work.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(work)
    tokenizer.save_pretrained(work)
    (work / "preprocessor_config.json").write_text(json.dumps(
        {"feature_size": MEL_BINS, "sampling_rate": 16000, "hop_length": 160, "chunk_length": 30, "n_fft": 400}))
    TransformersConverter(str(work), copy_files=["tokenizer.json", "preprocessor_config.json"]).convert(
        str(target), force=True)
    return target
