"""A node that announces itself on stdout and then blocks until released: lets a test kill a worker mid-run."""

import os
import sys
import threading


class Hold:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"label": ("STRING", {"default": "x"})}}
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    OUTPUT_NODE = True

    def run(self, label):
        if os.environ.get("CRASHPACK_RELEASE") != "1":
            print(f"RUNNING {label}", flush=True)
            sys.stdout.flush()
            threading.Event().wait()  # until the process is killed
        return {"ui": {"text": [label]}, "result": (label,)}


NODE_CLASS_MAPPINGS = {"Hold": Hold}
