"""Local speech recognition (issue 13): faster-whisper on a tiny random Whisper converted with CTranslate2's own
converter, hearing real espeak-ng speech. The weights are random, so the words it writes are meaningless and are
not checked; what is checked is what the pipeline promises: it runs end to end, timed segments within the audio,
the requested (or a detected) language, repeatable greedy output, and clear errors for bad audio."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tests.support.tiny_whisper import build_tiny_whisper

from partyflow import Engine, Workflow
from partyflow.builder.workflow import BuilderError
from partyflow.config import Home
from partyflow.media.services import speak_offline
from partyflow.media.whisper_local import LocalSpeechError, WhisperLocal, load_whisper, transcribe_local


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    home = Home(tmp_path_factory.mktemp("whisper-home")).ensure()
    build_tiny_whisper(home.models / "whisper" / "tiny", tmp_path_factory.mktemp("whisper-hf"))
    return home


@pytest.fixture(scope="module")
def whisper(home: Home) -> WhisperLocal:
    return load_whisper(home.models / "whisper" / "tiny", device="cpu", compute_type="float32", cpu_threads=1)


@pytest.fixture(scope="module")
def speech() -> dict:
    return asyncio.run(speak_offline("The robot paints the sea every morning."))


def check_segments(result: dict, duration: float) -> None:
    assert result["segments"], "a random model still writes something for two seconds of speech"
    for segment in result["segments"]:
        assert 0.0 <= segment["start"] <= segment["end"] <= duration
        assert isinstance(segment["text"], str)
    starts = [s["start"] for s in result["segments"]]
    assert starts == sorted(starts)
    assert result["duration"] == pytest.approx(duration, abs=1e-3)


def test_real_speech_gives_timed_segments_in_the_requested_language(whisper: WhisperLocal, speech: dict) -> None:
    duration = speech["waveform"].shape[-1] / speech["sample_rate"]
    assert speech["sample_rate"] == 22050 and duration > 1.0  # resampled to 16 kHz on the way in
    result = transcribe_local(whisper, speech, language="de", beam_size=1, fallback=False)
    assert result["language"] == "de" and result["language_probability"] == 1.0
    check_segments(result, duration)
    again = transcribe_local(whisper, speech, language="de", beam_size=1, fallback=False)
    assert again == result  # greedy decoding repeats


def test_the_language_is_detected_when_not_given(whisper: WhisperLocal, speech: dict) -> None:
    result = transcribe_local(whisper, speech, beam_size=1, fallback=False)
    assert result["language"] in whisper.languages and 0.0 < result["language_probability"] <= 1.0
    translated = transcribe_local(whisper, speech, language="fr", translate=True, beam_size=1, fallback=False)
    assert translated["language"] == "fr"


def test_bad_audio_and_bad_settings_are_named(whisper: WhisperLocal, home: Home, tmp_path: Path) -> None:
    with pytest.raises(LocalSpeechError, match="the audio is silent"):
        transcribe_local(whisper, {"waveform": torch.zeros(1, 1, 16000), "sample_rate": 16000})
    corrupt = torch.full((1, 1, 16000), float("nan"))
    with pytest.raises(LocalSpeechError, match="the audio is corrupt: it has samples that are not numbers"):
        transcribe_local(whisper, {"waveform": corrupt, "sample_rate": 16000})
    with pytest.raises(LocalSpeechError, match="the audio has no samples"):
        transcribe_local(whisper, {"waveform": torch.zeros(1, 1, 0), "sample_rate": 16000})
    with pytest.raises(LocalSpeechError, match="the input is not AUDIO"):
        transcribe_local(whisper, "hello.wav")
    with pytest.raises(LocalSpeechError, match="language 'klingon' is not one this model knows"):
        transcribe_local(whisper, {"waveform": torch.ones(1, 1, 1600) * 0.1, "sample_rate": 16000},
                         language="klingon")
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(LocalSpeechError, match="is not a faster-whisper model folder .missing config.json, "
                                               "tokenizer.json"):
        load_whisper(tmp_path)


def _silent_wav(path: Path) -> None:
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(16000)
        writer.writeframes(bytes(32000))


@pytest.fixture(scope="module")
def engine(home: Home) -> Iterator[Engine]:
    with Engine(home=home.root, load_custom_nodes=False) as engine:
        yield engine


def test_the_node_speaks_then_hears_and_names_itself_on_bad_audio(engine: Engine, home: Home) -> None:
    wf = Workflow(engine)
    voice = wf.SpeakOffline(text="Partyflow hears what espeak says.", voice="en")
    heard = wf.TranscribeAudioLocal(audio=voice.audio, model="tiny", language="en", beam_size=1, fallback=False,
                                    device="cpu", compute_type="float32")
    wf.DisplayText(text=heard.text)
    result = engine.run(wf)
    assert result.ok, result.error
    segments = result[heard].segments
    assert segments["language"] == "en" and segments["segments"]
    assert all(s["end"] <= segments["duration"] for s in segments["segments"])
    assert [m.path for m in engine.loaded_models()] == [home.models / "whisper" / "tiny"]  # the manager holds it
    from partyflow.llm.usage.ledger import UsageLedger

    with UsageLedger(home.state_db) as ledger:
        row = next(r for r in ledger.rows() if r["prompt_id"] == result.prompt_id)
    assert (row["provider"], row["model"], row["outcome"], row["node_id"]) == ("whisper:tiny", "tiny", "ok", heard.id)
    assert row["note"] == f"transcription (local): {segments['duration']:.1f} s of audio" and row["cost"] is None

    _silent_wav(home.input / "silence.wav")
    quiet = Workflow(engine)
    heard = quiet.TranscribeAudioLocal(audio=quiet.LoadAudio(audio="silence.wav").AUDIO, model="tiny",
                                       device="cpu", compute_type="float32")
    quiet.DisplayText(text=heard.text)
    failed = engine.run(quiet)
    assert not failed.ok and failed.error.node_id == heard.id
    assert "Transcribe Audio (local): the audio is silent: there is nothing to transcribe" in failed.error.message

    missing = Workflow(engine)
    with pytest.raises(BuilderError, match="no Whisper model 'large-v3' under models/whisper/ .found: tiny."):
        missing.TranscribeAudioLocal(audio=missing.LoadAudio(audio="silence.wav").AUDIO, model="large-v3")


def test_wav_bytes_decode_for_whisper(whisper: WhisperLocal) -> None:
    """A 44.1 kHz stereo recording is mixed to mono and resampled; its duration is kept."""
    import numpy as np

    rate = 44100
    tone = (0.2 * np.sin(2 * np.pi * 220 * np.arange(rate) / rate)).astype(np.float32)
    stereo = torch.from_numpy(np.stack([tone, tone])).unsqueeze(0)
    from partyflow.media.whisper_local import prepared_audio

    samples, duration = prepared_audio({"waveform": stereo, "sample_rate": rate})
    assert samples.dtype == np.float32 and samples.ndim == 1 and abs(samples.shape[0] - 16000) <= 1
    assert duration == pytest.approx(1.0)
