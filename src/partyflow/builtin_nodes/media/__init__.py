"""Multimodal nodes: draw and edit images, speak and transcribe, read text from images.

API nodes take a model from the API Model Loader (the provider of config.toml and the model name, e.g.
`gpt-image-1`, `tts-1`, `whisper-1`), so keys stay in the environment. Offline nodes need no model: espeak-ng
speaks, Tesseract reads. Values are ComfyUI's IMAGE and AUDIO, so these nodes connect to LoadImage, SaveImage,
PreviewAudio and any pack's media nodes.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import folder_paths

from partyflow.media.ocr import ocr_async, vision_ocr
from partyflow.media.services import (
    Endpoint,
    edit_images,
    generate_images,
    image_variations,
    speak_api,
    speak_offline,
    transcribe,
)
from partyflow.media.whisper_local import LocalSpeechError, is_whisper_folder, load_whisper, transcribe_local

from ..agents.common import model_name, open_model
from ..llm.access import current_meter, model_manager, provider_config
from ..llm.sockets import LLM_MODEL

CATEGORY = "partyflow/media"
SIZES = ["1024x1024", "1536x1024", "1024x1536", "1792x1024", "1024x1792", "512x512", "256x256", "auto"]
VOICES = ["alloy", "ash", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer"]
_MODEL_TIP = "From an API Model Loader: the provider and the media model (e.g. gpt-image-1, tts-1, whisper-1)."


def _endpoint(handle: Any) -> tuple[Endpoint, str]:
    provider = getattr(handle, "provider", None)
    if not isinstance(provider, str):
        raise TypeError(f"expected a model from an API Model Loader, got {type(handle).__name__}")
    config = provider_config(provider)
    chosen = model_name(handle) or config.model
    if not chosen:
        raise ValueError(f"provider {provider!r} has no default model: name the media model in the loader")
    return Endpoint.of(config, current_meter()), chosen  # metered: budgets apply, the ledger records the cost


class GenerateImage:
    DESCRIPTION = "Draw images from a text prompt with an OpenAI-compatible Images API."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    FUNCTION = "generate"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (LLM_MODEL, {"tooltip": _MODEL_TIP}),
            "prompt": ("STRING", {"multiline": True, "default": ""}),
            "size": (SIZES, {"default": "1024x1024"}),
            "n": ("INT", {"default": 1, "min": 1, "max": 10, "tooltip": "How many images."}),
        }, "optional": {
            "quality": (["auto", "low", "medium", "high", "standard", "hd"], {"default": "auto"}),
            "seed": ("INT", {"default": -1, "min": -1, "max": 2**31 - 1,
                             "tooltip": "-1: none; providers that support seeds repeat an image for a seed."}),
        }}

    async def generate(self, model, prompt, size="1024x1024", n=1, quality="auto", seed=-1):
        endpoint, name = _endpoint(model)
        images = await generate_images(endpoint, prompt, model=name, size=size, n=n,
                                       quality=None if quality == "auto" else quality, seed=None if seed < 0 else seed)
        return (images,)


class EditImage:
    DESCRIPTION = "Change an image as the prompt says, optionally only where the mask is 1 (Images API edit)."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    FUNCTION = "edit"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": (LLM_MODEL, {"tooltip": _MODEL_TIP}), "image": ("IMAGE",),
                             "prompt": ("STRING", {"multiline": True, "default": ""}),
                             "size": (SIZES, {"default": "1024x1024"}),
                             "n": ("INT", {"default": 1, "min": 1, "max": 10})},
                "optional": {"mask": ("MASK", {"tooltip": "1 where the image may change."})}}

    async def edit(self, model, image, prompt, size="1024x1024", n=1, mask=None):
        endpoint, name = _endpoint(model)
        return (await edit_images(endpoint, image, prompt, model=name, mask=mask, size=size, n=n),)


class ImageVariations:
    DESCRIPTION = "Variations of an image (Images API)."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    FUNCTION = "vary"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": (LLM_MODEL, {"tooltip": _MODEL_TIP}), "image": ("IMAGE",),
                             "size": (SIZES, {"default": "1024x1024"}),
                             "n": ("INT", {"default": 1, "min": 1, "max": 10})}}

    async def vary(self, model, image, size="1024x1024", n=1):
        endpoint, name = _endpoint(model)
        return (await image_variations(endpoint, image, model=name, size=size, n=n),)


class TextToSpeech:
    DESCRIPTION = "Read text aloud with an OpenAI-compatible speech API (audio/speech)."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("AUDIO",)
    RETURN_NAMES = ("audio",)
    FUNCTION = "speak"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": (LLM_MODEL, {"tooltip": _MODEL_TIP}),
                             "text": ("STRING", {"multiline": True, "default": ""}),
                             "voice": (VOICES, {"default": "alloy"}),
                             "speed": ("FLOAT", {"default": 1.0, "min": 0.25, "max": 4.0, "step": 0.05})}}

    async def speak(self, model, text, voice="alloy", speed=1.0):
        endpoint, name = _endpoint(model)
        return (await speak_api(endpoint, text, model=name, voice=voice, speed=speed),)


class SpeakOffline:
    DESCRIPTION = "Read text aloud on this machine with espeak-ng: no model, no network."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("AUDIO",)
    RETURN_NAMES = ("audio",)
    FUNCTION = "speak"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"multiline": True, "default": ""}),
                             "voice": ("STRING", {"default": "en", "tooltip": "An espeak-ng voice (en, de, fr, "
                                                                              "en-us, zh, ...)."}),
                             "words_per_minute": ("INT", {"default": 160, "min": 80, "max": 450})}}

    async def speak(self, text, voice="en", words_per_minute=160):
        return (await speak_offline(text, voice=voice, words_per_minute=words_per_minute),)


class TranscribeAudio:
    DESCRIPTION = ("Speech to text with an OpenAI-compatible transcription API: the text, its language and "
                   "timed segments; or a translation into English.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING", "JSON")
    RETURN_NAMES = ("text", "segments")
    FUNCTION = "transcribe"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": (LLM_MODEL, {"tooltip": _MODEL_TIP}), "audio": ("AUDIO",)},
                "optional": {"language": ("STRING", {"default": "", "tooltip": "ISO-639-1 code; empty: detect."}),
                             "translate": ("BOOLEAN", {"default": False, "tooltip": "Translate into English."}),
                             "prompt": ("STRING", {"default": "", "tooltip": "Words to expect (names, terms)."})}}

    async def transcribe(self, model, audio, language="", translate=False, prompt=""):
        endpoint, name = _endpoint(model)
        result = await transcribe(endpoint, audio, model=name, language=language.strip() or None,
                                  translate=translate, prompt=prompt.strip() or None)
        return (result["text"], result)


def whisper_dirs() -> list[Path]:
    """Where local speech models live: models/whisper/ (plus paths a ComfyUI install registered for it)."""
    try:
        return [Path(p) for p in folder_paths.get_folder_paths("whisper")]
    except KeyError:  # a host that does not know the folder kind
        return [Path(folder_paths.models_dir) / "whisper"]


def whisper_folders() -> list[str]:
    """Converted Whisper models (folders with model.bin, config.json and tokenizer.json), by name."""
    return sorted({entry.name for base in whisper_dirs() if base.is_dir() for entry in base.iterdir()
                   if not entry.name.startswith(".") and is_whisper_folder(entry)})


def _whisper_path(name: str) -> Path | None:
    for base in whisper_dirs():
        joined = folder_paths.confined_join(base, name)  # a name from a workflow never leaves the folder
        if joined is not None and is_whisper_folder(Path(joined)):
            return Path(joined)
    return None


def _missing_whisper(name: str) -> str:
    found = ", ".join(whisper_folders()[:10]) or "none"
    return (f"no Whisper model {name!r} under models/whisper/ (found: {found}); convert one with "
            "ct2-transformers-converter --model openai/whisper-small --output_dir models/whisper/small "
            "--copy_files tokenizer.json preprocessor_config.json")


class TranscribeAudioLocal:
    DESCRIPTION = ("Speech to text on this machine with faster-whisper: the text, its language and timed segments, "
                   "or a translation into English. The model is a converted Whisper folder in models/whisper/.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING", "JSON")
    RETURN_NAMES = ("text", "segments")
    FUNCTION = "transcribe"

    def __init__(self) -> None:
        self._own: dict[tuple[str, str, str], Any] = {}  # outside a partyflow engine: this node keeps its model

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"audio": ("AUDIO", {"tooltip": "Speech, e.g. from Load Audio or a speech node."}),
                             "model": (whisper_folders(), {"tooltip": "A converted Whisper model under "
                                                                      "models/whisper/."})},
                "optional": {"language": ("STRING", {"default": "", "tooltip": "ISO-639-1 code; empty: detect."}),
                             "translate": ("BOOLEAN", {"default": False, "tooltip": "Translate into English."}),
                             "prompt": ("STRING", {"default": "", "tooltip": "Words to expect (names, terms)."}),
                             "beam_size": ("INT", {"default": 5, "min": 1, "max": 10,
                                                   "tooltip": "Hypotheses kept while decoding; 1: greedy."}),
                             "vad": ("BOOLEAN", {"default": False, "tooltip": "Skip silent stretches (Silero VAD, "
                                                                               "bundled with faster-whisper)."}),
                             "fallback": ("BOOLEAN", {"default": True, "tooltip": "Decode a doubtful window again at "
                                                                                  "higher temperatures; off: "
                                                                                  "repeatable output."}),
                             "device": (["auto", "cpu", "cuda"], {"default": "auto", "tooltip": "auto: CUDA when "
                                                                                                 "present."}),
                             "compute_type": (["default", "float32", "float16", "int8", "int8_float16"],
                                              {"default": "default", "tooltip": "default: the type the model was "
                                                                                "converted with."})}}

    @classmethod
    def VALIDATE_INPUTS(cls, model):
        return True if _whisper_path(model) is not None else _missing_whisper(model)

    async def transcribe(self, audio, model, language="", translate=False, prompt="", beam_size=5, vad=False,
                         fallback=True, device="auto", compute_type="default"):
        path = _whisper_path(model)
        if path is None:
            raise ValueError(_missing_whisper(model))
        meter = current_meter()  # like a local chat model's calls: a ledger row, priced when [prices] has the model
        if meter is not None:
            meter.check(provider=f"whisper:{model}")  # a budget on this provider name applies, as for chat models
        call = meter.ledger.begin(f"whisper:{model}", model, meter.labels) if meter is not None else None
        started = time.perf_counter()
        try:
            whisper = await asyncio.to_thread(self._load, path, device, compute_type)
            result = await asyncio.to_thread(transcribe_local, whisper, audio, language=language.strip() or None,
                                             translate=translate, prompt=prompt.strip() or None,
                                             beam_size=beam_size, vad=vad, fallback=fallback)
        except BaseException as exc:
            if meter is not None and call is not None:
                meter.ledger.finish(call, "error" if isinstance(exc, Exception) else "unfinished",
                                    latency=time.perf_counter() - started, error=f"transcription: {exc}"[:500])
            if isinstance(exc, LocalSpeechError):
                raise ValueError(f"Transcribe Audio (local): {exc}") from None
            raise
        if meter is not None and call is not None:
            price = meter.prices.get(model)
            meter.ledger.finish(call, "ok", latency=time.perf_counter() - started,
                                cost=price.transcription_cost(result["duration"]) if price else None,
                                note=f"transcription (local): {result['duration']:.1f} s of audio")
        return (result["text"], result)

    def _load(self, path: Path, device: str, compute_type: str) -> Any:
        def loader(folder: Path) -> Any:
            return load_whisper(folder, device=device, compute_type=compute_type)

        manager = model_manager()
        if manager is not None:  # the engine's manager keeps it within the memory budget, shared by every node
            return manager.get(f"whisper:{path.name}", path, loader, variant=f"{device}/{compute_type}",
                               estimate_bytes=(path / "model.bin").stat().st_size)
        key = (str(path), device, compute_type)
        if key not in self._own:
            self._own[key] = loader(path)
        return self._own[key]


class OCRImage:
    DESCRIPTION = ("Read the text in an image with Tesseract, offline: plain text, or words with their boxes, or "
                   "hOCR. Languages are Tesseract codes joined with + (eng, deu+eng).")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING", "JSON")
    RETURN_NAMES = ("text", "words")
    OUTPUT_IS_LIST = (True, True)
    FUNCTION = "read"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "languages": ("STRING", {"default": "eng"}),
                             "layout": (["text", "hocr"], {"default": "text",
                                                           "tooltip": "text, or hOCR (HTML with boxes)."})}}

    async def read(self, image, languages="eng", layout="text"):
        texts, words = [], []
        for frame in image:  # one result per image of the batch
            texts.append(await ocr_async(frame, languages=languages, layout=layout))
            words.append(await ocr_async(frame, languages=languages, layout="words"))
        return (texts, words)


class VisionOCR:
    DESCRIPTION = "Read the text in an image with a vision model (any provider whose model takes images)."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    FUNCTION = "read"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": (LLM_MODEL, {"tooltip": "From a model loader: a vision model."}),
                             "image": ("IMAGE",)},
                "optional": {"instruction": ("STRING", {"multiline": True, "default": "", "tooltip": "Empty: "
                                                        "transcribe everything, keeping line breaks."})}}

    async def read(self, model, image, instruction=""):
        async with open_model(model) as chat:
            options = {"instruction": instruction} if instruction.strip() else {}
            return (await vision_ocr(chat, image, model_name=model_name(model), **options),)


NODE_CLASS_MAPPINGS = {
    "GenerateImage": GenerateImage, "EditImage": EditImage, "ImageVariations": ImageVariations,
    "TextToSpeech": TextToSpeech, "SpeakOffline": SpeakOffline, "TranscribeAudio": TranscribeAudio,
    "TranscribeAudioLocal": TranscribeAudioLocal, "OCRImage": OCRImage, "VisionOCR": VisionOCR,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "GenerateImage": "Generate Image", "EditImage": "Edit Image", "ImageVariations": "Image Variations",
    "TextToSpeech": "Text to Speech", "SpeakOffline": "Speak (offline)", "TranscribeAudio": "Transcribe Audio",
    "TranscribeAudioLocal": "Transcribe Audio (local)", "OCRImage": "Read Text (OCR)", "VisionOCR": "Read Text (vision model)",
}

