"""Source of the sample packs the isolation tests install."""

from __future__ import annotations

from pathlib import Path

PLAIN = '''
class VersionA:
    """Runs in-process: reports the tinylib version of the host environment."""
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "test/isolation"
    def run(self):
        import tinylib
        return (tinylib.VERSION,)

NODE_CLASS_MAPPINGS = {"VersionA": VersionA}
'''

ISOLATED = '''
import os
import tinylib  # at import time: only the pack's own venv has tinylib 2.0
from comfy.utils import ProgressBar

class VersionB:
    """Runs in the worker: joins the upstream value with its own tinylib version."""
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"other": ("STRING", {"forceInput": True}),
                             "mode": (["join", "crash", "object", "raise", "wait"], {"default": "join"}),
                             "count": ("INT", {"default": 1, "min": 0, "max": 10})},
                "optional": {"spare": ("STRING", {"lazy": True})}}
    RETURN_TYPES = ("STRING", "INT")
    RETURN_NAMES = ("text", "pid")
    OUTPUT_NODE = True
    FUNCTION = "run"
    CATEGORY = "test/isolation"
    DESCRIPTION = "isolated sample"

    @classmethod
    def IS_CHANGED(cls, mode, count):
        return f"{mode}-{count}-{tinylib.VERSION}"

    @classmethod
    def VALIDATE_INPUTS(cls, count):
        return True if count != 7 else "seven is not allowed"

    def check_lazy_status(self, other, mode, count, spare=None):
        return ["spare"] if count == 2 and spare is None else []

    def run(self, other, mode, count, spare=None):
        bar = ProgressBar(count or 1)
        bar.update(1)
        if mode == "crash":
            os._exit(9)
        if mode == "object":
            return (lambda: None, 0)
        if mode == "wait":  # runs until the prompt is interrupted (the progress above says it started)
            from comfy.model_management import throw_exception_if_processing_interrupted
            from partyflow.nodes.host import current_scope
            current_scope().interrupt.wait(60)
            throw_exception_if_processing_interrupted()
        if mode == "raise":
            raise ValueError("asked to raise")
        self.calls = getattr(self, "calls", 0) + 1
        return (f"{other}+{tinylib.VERSION}" + (f"+{spare}" if spare else ""), os.getpid())

NODE_CLASS_MAPPINGS = {"VersionB": VersionB}
NODE_DISPLAY_NAME_MAPPINGS = {"VersionB": "Version B (isolated)"}
'''


def write(root: Path, name: str, source: str, requirement: str | None) -> Path:
    pack = root / name
    pack.mkdir(parents=True, exist_ok=True)
    (pack / "__init__.py").write_text(source, encoding="utf-8")
    if requirement:
        (pack / "requirements.txt").write_text(requirement + "\n", encoding="utf-8")
    return pack
