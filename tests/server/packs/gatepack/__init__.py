"""A test pack: a node that waits for a file (so tests control when a prompt ends), a pack route, a web
directory, and a node that reports LLM usage the way the server's metrics read it."""

import os
import threading

import comfy.model_management
from server import PromptServer

WEB_DIRECTORY = "./web"


class Gate:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"label": ("STRING", {"default": "x"}), "release": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    OUTPUT_NODE = True

    def run(self, label, release):
        print(f"GATE {label}", flush=True)
        waiter = threading.Event()
        while release and not os.path.exists(release):
            comfy.model_management.throw_exception_if_processing_interrupted()
            waiter.wait(0.01)
        return {"ui": {"text": [label]}, "result": (label,)}


class Usage:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"provider": ("STRING", {"default": "openai"}), "tokens": ("INT", {"default": 3})}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    def run(self, provider, tokens):
        PromptServer.instance.send_sync("partyflow.llm.usage", {"provider": provider, "prompt_tokens": tokens,
                                                                "completion_tokens": 2 * tokens, "cost": 0.5})
        return {"ui": {"text": [provider]}}


@PromptServer.instance.routes.get("/gatepack/hello")
async def hello(request):
    from aiohttp import web

    return web.json_response({"hello": request.query.get("name", "world")})


NODE_CLASS_MAPPINGS = {"Gate": Gate, "Usage": Usage}
