"""ComfyUI's core audio nodes: LoadAudio, SaveAudio, PreviewAudio (AUDIO = `{"waveform", "sample_rate"}`)."""

from __future__ import annotations

import hashlib
import os
import random
from typing import Any

import folder_paths

from partyflow.media.audio import AUDIO_EXTENSIONS, encode_audio, load_audio


def _input_audio() -> list[str]:
    root = folder_paths.get_input_directory()
    if not os.path.isdir(root):
        return []
    return sorted(f for f in os.listdir(root)
                  if os.path.isfile(os.path.join(root, f)) and f.lower().endswith(AUDIO_EXTENSIONS))


def _audio_path(audio: str) -> str:
    path = folder_paths.get_annotated_filepath(audio)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"audio {audio!r} is not in the input folder")
    return path


class LoadAudio:
    CATEGORY = "audio"
    RETURN_TYPES = ("AUDIO",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
        return {"required": {"audio": (_input_audio(), {"audio_upload": True})}}

    def load(self, audio: str) -> tuple[dict[str, Any]]:
        return (load_audio(_audio_path(audio)),)

    @classmethod
    def IS_CHANGED(cls, audio: str) -> str:  # noqa: N802 - ComfyUI's name
        with open(_audio_path(audio), "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()

    @classmethod
    def VALIDATE_INPUTS(cls, audio: str) -> bool | str:  # noqa: N802 - ComfyUI's name
        return True if folder_paths.exists_annotated_filepath(audio) else f"Invalid audio file: {audio}"


class SaveAudio:
    CATEGORY = "audio"
    RETURN_TYPES = ()
    FUNCTION = "save_audio"
    OUTPUT_NODE = True

    def __init__(self) -> None:
        self.type = "output"
        self.prefix_append = ""

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
        return {"required": {"audio": ("AUDIO",), "filename_prefix": ("STRING", {"default": "audio/ComfyUI"})},
                "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    def save_audio(self, audio: dict[str, Any], filename_prefix: str = "audio/ComfyUI", prompt: Any = None,
                   extra_pnginfo: Any = None) -> dict[str, Any]:
        base = folder_paths.get_output_directory() if self.type == "output" else folder_paths.get_temp_directory()
        folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix + self.prefix_append, base)
        results = []
        for index, waveform in enumerate(audio["waveform"].cpu()):
            data, extension = encode_audio(waveform, audio["sample_rate"], "flac")
            name = f"{filename.replace('%batch_num%', str(index))}_{counter:05}_.{extension}"
            with open(os.path.join(folder, name), "wb") as out:
                out.write(data)
            results.append({"filename": name, "subfolder": subfolder, "type": self.type})
            counter += 1
        return {"ui": {"audio": results}}


class PreviewAudio(SaveAudio):
    def __init__(self) -> None:
        self.type = "temp"
        self.prefix_append = "_temp_" + "".join(random.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
        return {"required": {"audio": ("AUDIO",)}, "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    def save_audio(self, audio: dict[str, Any], filename_prefix: str = "ComfyUI", prompt: Any = None,
                   extra_pnginfo: Any = None) -> dict[str, Any]:
        return super().save_audio(audio, "ComfyUI", prompt, extra_pnginfo)


NODE_CLASS_MAPPINGS = {"LoadAudio": LoadAudio, "SaveAudio": SaveAudio, "PreviewAudio": PreviewAudio}
NODE_DISPLAY_NAME_MAPPINGS = {"LoadAudio": "Load Audio", "SaveAudio": "Save Audio (FLAC)",
                              "PreviewAudio": "Preview Audio"}
