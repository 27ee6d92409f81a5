"""Packs for the benchmark and health tests: one with a fast and a slow node (and nodes that cannot be
generated or fail), one that breaks at import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FAST_SLOW = '''
import time

class Fast:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"n": ("INT", {"default": 3, "min": 0}), "text": ("STRING", {"default": "ab"})}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "bench"
    def run(self, n, text):
        return (n + len(text),)

class Slow:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ms": ("INT", {"default": 60, "min": 0}), "mode": (["sleep", "other"],)}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "bench"
    def run(self, ms, mode):
        time.sleep(ms / 1000)
        return (ms,)

class NeedsImage:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "bench"
    def run(self, image):
        return (image,)

NODE_CLASS_MAPPINGS = {"Fast": Fast, "Slow": Slow, "NeedsImage": NeedsImage}
'''

BOOM = '''
class Boom:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "bench"
    def run(self):
        raise ValueError("boom at run time")

NODE_CLASS_MAPPINGS = {"Boom": Boom}
'''

BROKEN = "raise RuntimeError('this pack is broken at import')\n"


def write_pack(root: Path, name: str, body: str) -> Path:
    pack = root / name
    pack.mkdir(parents=True, exist_ok=True)
    (pack / "__init__.py").write_text(body, encoding="utf-8")
    return pack


@pytest.fixture
def fastslow(tmp_path: Path) -> Path:
    return write_pack(tmp_path / "src", "fastslow", FAST_SLOW)


def chain_workflow(ms: int = 30) -> dict[str, object]:
    """Fast -> Slow.ms (an API-format prompt): the slow node sleeps for Fast's output."""
    return {"1": {"class_type": "Fast", "inputs": {"n": ms - 2, "text": "ab"}},
            "2": {"class_type": "Slow", "inputs": {"ms": ["1", 0], "mode": "sleep"}}}


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path
