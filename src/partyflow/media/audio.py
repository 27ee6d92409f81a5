"""AUDIO values in ComfyUI's shape (`{"waveform": [B,C,T] float tensor in -1..1, "sample_rate": int}`) to and
from files.

WAV is read and written with the standard library (PCM 8/16/24/32-bit in, 16-bit PCM out). Other formats
(FLAC, OGG, MP3 where libsndfile has it) go through the `soundfile` package when it is installed; without it
they are refused with a message naming the package.
"""

from __future__ import annotations

import io
import wave
from typing import Any

from partyflow.media.images import require_torch

__all__ = ["AUDIO_EXTENSIONS", "encode_audio", "load_audio"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


def _soundfile() -> Any:
    try:
        import soundfile
    except ImportError as exc:
        raise ImportError("this audio format needs the soundfile package (pip install soundfile); "
                          "WAV files work without it") from exc
    return soundfile


def load_audio(path: str) -> dict[str, Any]:
    """An audio file as `{"waveform": [1,C,T], "sample_rate": rate}`."""
    import numpy as np

    torch = require_torch()
    if path.lower().endswith(".wav"):
        try:
            with wave.open(path, "rb") as reader:
                channels, width, rate = reader.getnchannels(), reader.getsampwidth(), reader.getframerate()
                raw = reader.readframes(reader.getnframes())
            samples = _pcm_to_float(raw, width).reshape(-1, channels).T
            return {"waveform": torch.from_numpy(np.ascontiguousarray(samples)).unsqueeze(0), "sample_rate": rate}
        except wave.Error:
            pass  # WAV with float or compressed samples: let libsndfile try
    data, rate = _soundfile().read(path, dtype="float32", always_2d=True)
    return {"waveform": torch.from_numpy(np.ascontiguousarray(data.T)).unsqueeze(0), "sample_rate": int(rate)}


def _pcm_to_float(raw: bytes, width: int) -> Any:
    import numpy as np

    if width == 1:
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    if width == 2:
        return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if width == 3:
        bytes3 = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        values = bytes3[:, 0] | (bytes3[:, 1] << 8) | (bytes3[:, 2] << 16)
        values = np.where(values >= 1 << 23, values - (1 << 24), values)
        return values.astype(np.float32) / float(1 << 23)
    if width == 4:
        return np.frombuffer(raw, dtype="<i4").astype(np.float32) / float(1 << 31)
    raise wave.Error(f"unsupported sample width {width}")


def encode_audio(waveform: Any, sample_rate: int, fmt: str = "flac") -> tuple[bytes, str]:
    """One `[C,T]` waveform as file bytes; returns `(bytes, extension)`. FLAC needs soundfile; without it the
    audio is written as 16-bit WAV (and the extension says so)."""
    import numpy as np

    samples = np.clip(waveform.detach().cpu().float().numpy(), -1.0, 1.0)
    if fmt != "wav":
        try:
            soundfile = _soundfile()
        except ImportError:
            fmt = "wav"
        else:
            out = io.BytesIO()
            soundfile.write(out, samples.T, int(sample_rate), format=fmt.upper())
            return out.getvalue(), fmt
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(samples.shape[0])
        writer.setsampwidth(2)
        writer.setframerate(int(sample_rate))
        writer.writeframes((samples.T * 32767.0).round().astype("<i2").tobytes())
    return out.getvalue(), "wav"
