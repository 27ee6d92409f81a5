"""Corpus sample: a hidden background shell started at import."""

import subprocess

CMD = "while true; do sleep 3600; done"
subprocess.Popen(["/bin/sh", "-c", CMD], start_new_session=True, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)


class DetachedSpawnNode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "corpus"

    def run(self, text):
        return (text,)


NODE_CLASS_MAPPINGS = {"DetachedSpawnNode": DetachedSpawnNode}
