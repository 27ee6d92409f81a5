"""Corpus sample: the pack's __init__ calls helpers from another file that run apt-get and pip install every time the
pack is imported (the pattern measured in a popular real pack). Inert: written for the scanner tests, never run."""

from .deps import ensure_audio_library, ensure_client_library, platform_name

try:
    ensure_audio_library(platform_name())
except Exception as exc:  # noqa: BLE001
    print(f"audio setup failed: {exc}")
try:
    ensure_client_library()
except Exception as exc:  # noqa: BLE001
    print(f"client setup failed: {exc}")


class SpeakNode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "corpus"

    def run(self, text):
        return (text,)


NODE_CLASS_MAPPINGS = {"SpeakNode": SpeakNode}
