"""Speech to text on this machine: faster-whisper (CTranslate2) with a converted Whisper model in a folder.

A model folder is what `ct2-transformers-converter --model openai/whisper-small --copy_files tokenizer.json
preprocessor_config.json` writes (or a ready-converted `Systran/faster-whisper-*` repository): `model.bin`,
`config.json`, the vocabulary, and `tokenizer.json` — the tokenizer must be in the folder, because faster-whisper
would otherwise fetch one from the Hugging Face Hub, and nothing here goes online.

The result has the shape of the transcription API's verbose JSON (`text`, `language`, `duration`, `segments` with
`start`/`end` in seconds), so the API node and the local node are interchangeable downstream. The package is the
`media` extra's `faster-whisper`; without it the error names the extra.
"""

from __future__ import annotations

import io
import math
import numbers
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SAMPLE_RATE = 16_000  # what Whisper models hear
SILENCE = 1e-4  # peak amplitude below which audio counts as silent
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


class LocalSpeechError(RuntimeError):
    """Local transcription that cannot run: no package, a folder that is not a model, audio it cannot use."""


@dataclass(eq=False)
class WhisperLocal:
    """A loaded faster-whisper model; `lock` runs one transcription at a time (CTranslate2 workers are sized for
    it, and a model on one device gains nothing from overlapping calls)."""

    path: Path
    model: Any
    device: str
    compute_type: str
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def nbytes(self) -> int:
        """Memory the weights take, about the size of `model.bin` (for a model manager's budget)."""
        return (self.path / "model.bin").stat().st_size

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.model.supported_languages)


def is_whisper_folder(path: Path) -> bool:
    return path.is_dir() and all((path / name).is_file() for name in REQUIRED_FILES)


def load_whisper(path: Path, *, device: str = "auto", compute_type: str = "default",
                 cpu_threads: int | None = None) -> WhisperLocal:
    """Load the converted model in `path`; errors say what the folder lacks or which package to install."""
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise LocalSpeechError(
            f"{path} is not a faster-whisper model folder (missing {', '.join(missing)}); convert a Whisper model "
            "with ct2-transformers-converter --copy_files tokenizer.json preprocessor_config.json")
    faster_whisper = _faster_whisper()
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    threads = cpu_threads if cpu_threads is not None else min(4, os.cpu_count() or 1)
    try:
        model = faster_whisper.WhisperModel(str(path), device=device, compute_type=compute_type,
                                            cpu_threads=threads, local_files_only=True)
    except (RuntimeError, ValueError, OSError) as exc:
        raise LocalSpeechError(f"cannot load the Whisper model in {path} on {device} ({compute_type}): {exc}") from None
    return WhisperLocal(path=path, model=model, device=device, compute_type=compute_type)


def _faster_whisper() -> Any:
    try:
        import faster_whisper
    except ImportError as exc:
        raise LocalSpeechError("local speech recognition needs faster-whisper: pip install 'partyflow[media]'") from exc
    return faster_whisper


def prepared_audio(audio: Any) -> tuple[Any, float]:
    """An AUDIO value as Whisper's input: mono float32 at 16 kHz, and its duration in seconds.

    Refused with a reason: anything that is not AUDIO, no samples, samples that are not finite, silence.
    Resampling goes through faster-whisper's own decoder (PyAV), so the audio is heard as its models expect.
    """
    import numpy as np

    waveform = audio.get("waveform") if isinstance(audio, dict) else None
    rate = audio.get("sample_rate") if isinstance(audio, dict) else None
    rate = int(rate) if isinstance(rate, numbers.Integral) and not isinstance(rate, bool) else None  # numpy ints too
    if waveform is None or not hasattr(waveform, "shape") or rate is None or rate <= 0:
        raise LocalSpeechError("the input is not AUDIO ({\"waveform\": [B,C,T] tensor, \"sample_rate\": int})")
    if waveform.ndim != 3 or waveform.shape[-1] == 0:
        raise LocalSpeechError(f"the audio has no samples (waveform shape {tuple(waveform.shape)})")
    samples = waveform[0].detach().cpu().float().numpy()
    if not np.isfinite(samples).all():
        raise LocalSpeechError("the audio is corrupt: it has samples that are not numbers (NaN or infinite)")
    if float(np.abs(samples).max()) < SILENCE:
        raise LocalSpeechError("the audio is silent: there is nothing to transcribe")
    mono = samples.mean(axis=0)
    duration = mono.shape[0] / rate
    if rate == SAMPLE_RATE:
        return np.ascontiguousarray(mono, dtype=np.float32), duration
    import torch

    from partyflow.media.audio import encode_audio

    decode_audio = _faster_whisper().audio.decode_audio

    data, _ = encode_audio(torch.from_numpy(mono).unsqueeze(0), rate, "wav")
    return decode_audio(io.BytesIO(data), sampling_rate=SAMPLE_RATE), duration


def transcribe_local(whisper: WhisperLocal, audio: Any, *, language: str | None = None, translate: bool = False,
                     prompt: str | None = None, beam_size: int = 5, vad: bool = False,
                     fallback: bool = True) -> dict[str, Any]:
    """Transcribe (or translate into English) an AUDIO value -> {"text", "language", "language_probability",
    "duration", "segments": [{"start", "end", "text"}]}, timestamps in seconds within the audio.

    With `fallback` a window whose text looks wrong (repetitive, improbable) is decoded again at rising
    temperatures, as Whisper does by default; without it decoding is greedy/beam only, and repeatable."""
    samples, duration = prepared_audio(audio)
    if language and language not in whisper.languages:
        raise LocalSpeechError(f"language {language!r} is not one this model knows; use an ISO-639-1 code "
                               f"({', '.join(whisper.languages[:12])}, ...) or leave it empty to detect")
    with whisper.lock:
        segments, info = whisper.model.transcribe(
            samples, language=language or None, task="translate" if translate else "transcribe",
            initial_prompt=prompt or None, beam_size=max(1, int(beam_size)), vad_filter=vad,
            condition_on_previous_text=False, temperature=FALLBACK_TEMPERATURES if fallback else 0.0)
        segments = list(segments)  # a generator: the decoding happens here, under the lock
    duration = math.floor(duration * 1000) / 1000  # milliseconds, rounded down: timestamps stay within the audio
    timed = []
    for segment in segments:
        start = _clamp(segment.start, duration)
        end = max(start, _clamp(segment.end, duration))
        timed.append({"id": len(timed), "start": start, "end": end, "text": segment.text.strip(),
                      "avg_logprob": float(segment.avg_logprob), "no_speech_prob": float(segment.no_speech_prob)})
    return {"text": " ".join(s["text"] for s in timed if s["text"]).strip(), "language": info.language,
            "language_probability": float(info.language_probability), "duration": duration,
            "segments": timed}


def _clamp(seconds: float, duration: float) -> float:
    """Whisper pads to 30-second windows and may time text into the padding; a timestamp stays in the audio."""
    value = float(seconds)
    return round(min(max(value, 0.0), duration), 3) if math.isfinite(value) else 0.0
