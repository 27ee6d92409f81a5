"""Multimodal nodes: draw and edit images, speak and transcribe, read text from images.

API nodes take a model from the API Model Loader (the provider of config.toml and the model name, e.g.
`gpt-image-1`, `tts-1`, `whisper-1`), so keys stay in the environment. Offline nodes need no model: espeak-ng
speaks, Tesseract reads. Values are ComfyUI's IMAGE and AUDIO, so these nodes connect to LoadImage, SaveImage,
PreviewAudio and any pack's media nodes.
"""

from __future__ import annotations

from typing import Any

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

from ..agents.common import model_name, open_model
from ..llm.access import current_meter, provider_config
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
    "OCRImage": OCRImage, "VisionOCR": VisionOCR,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "GenerateImage": "Generate Image", "EditImage": "Edit Image", "ImageVariations": "Image Variations",
    "TextToSpeech": "Text to Speech", "SpeakOffline": "Speak (offline)", "TranscribeAudio": "Transcribe Audio",
    "OCRImage": "Read Text (OCR)", "VisionOCR": "Read Text (vision model)",
}

