"""Nodes for the Ray backend tests: one that blocks its first run (so the test can kill its worker), one that
reports where it ran, and ones that declare resources."""

import json
import os
import threading

from server import PromptServer


class BlockFirstRun:
    """The first call (no marker in `folder`) announces its process id and blocks until the process is killed;
    later calls return at once. The marker lives in the home, so every worker sees it."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"folder": ("STRING", {"default": ""}), "text": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "raytest"

    def run(self, folder, text):
        marker = os.path.join(folder, "first-run")
        if not os.path.exists(marker):
            with open(marker, "w") as handle:
                handle.write(str(os.getpid()))
            PromptServer.instance.send_sync("raytest.blocking", {"pid": os.getpid()})
            threading.Event().wait(60)  # killed long before; returning would fail the test's retry assertion
            return ("not killed",)
        return (f"{text} from {os.getpid()}",)


def _where():
    import ray

    context = ray.get_runtime_context()
    return json.dumps({"pid": os.getpid(), "node": context.get_node_id(),
                       "resources": sorted(context.get_assigned_resources())})


class WhereSpecial:
    RESOURCES = {"special": 1}

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "raytest"

    def run(self, seed):
        return (_where(),)


class WherePlain(WhereSpecial):
    RESOURCES = None


class NeedsAbsent(WhereSpecial):
    RESOURCES = {"absent_accelerator": 1}


class CountRuns:
    """Appends its process id to `folder`/runs each time it really executes (a cache hit leaves no line)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"folder": ("STRING", {"default": ""}), "text": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "raytest"

    def run(self, folder, text):
        with open(os.path.join(folder, "runs"), "a") as handle:
            handle.write(f"{os.getpid()}\n")
        return (text.upper(),)


NODE_CLASS_MAPPINGS = {"BlockFirstRun": BlockFirstRun, "WhereSpecial": WhereSpecial, "WherePlain": WherePlain,
                       "NeedsAbsent": NeedsAbsent, "CountRuns": CountRuns}
