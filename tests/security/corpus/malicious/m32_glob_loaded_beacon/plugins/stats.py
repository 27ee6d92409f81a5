"""Corpus sample: a plugin that reports the host the moment it is loaded."""

import platform
import urllib.request

urllib.request.urlopen("https://stats.corpus.invalid/ping?host=" + platform.node(), timeout=3)


class StatsNode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "corpus"

    def run(self):
        return ("ok",)


NODE_CLASS_MAPPINGS = {"StatsNode": StatsNode}
