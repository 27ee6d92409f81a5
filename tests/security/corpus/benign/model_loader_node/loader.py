"""Model files live in the home's models/ folder; downloads are checked against a published sha256."""

import hashlib
import os
import urllib.request
from pathlib import Path

import torch
from safetensors.torch import load_file

MODELS = Path(os.environ.get("PARTYFLOW_HOME", Path(__file__).parent)) / "models" / "upscale"
KNOWN = {
    "corpus-x2.safetensors": ("https://models.corpus.invalid/corpus-x2.safetensors",
                              "0f343b0931126a20f133d67c2b018a3b5a8a2b17e2f6bbd8d0c5d9aa3d3e2c11"),
}


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_model(name):
    url, expected = KNOWN[name]
    target = MODELS / name
    if not target.exists():
        MODELS.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        urllib.request.urlretrieve(url, partial)
        if _sha256(partial) != expected:
            partial.unlink()
            raise RuntimeError(f"{name}: checksum mismatch")
        partial.rename(target)
    return target


def load_state_dict(path):
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_file(str(path), device="cpu")
    return torch.load(path, map_location="cpu", weights_only=True)


class UpscaleModelLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model_name": (sorted(KNOWN),)}}

    RETURN_TYPES = ("UPSCALE_MODEL",)
    FUNCTION = "load"
    CATEGORY = "loaders"

    def load(self, model_name):
        return (load_state_dict(fetch_model(model_name)),)
