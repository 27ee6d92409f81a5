"""A node pack exercising ComfyUI's execution semantics, written as a third-party pack would be."""

import asyncio
import json
import os
import threading

import comfy.model_management as model_management
import comfy.utils
from comfy_execution.graph import ExecutionBlocker
from comfy_execution.graph_utils import GraphBuilder
from server import PromptServer

CALLS: list[str] = []        # every execution, by class name: tests read it to count runs
BARRIER = threading.Barrier(2, timeout=10)
LIMITED_BARRIER = threading.Barrier(2, timeout=0.3)
LIMITED_SEEN: list[str] = []


def _record(name):
    CALLS.append(name)


class Const:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -1000, "max": 1000})}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, value):
        _record("Const")
        return (value,)


class AddOne:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"forceInput": True})}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, value):
        _record("AddOne")
        return (value + 1,)


class AsyncAddOne:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"forceInput": True})}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    async def run(self, value):
        await asyncio.sleep(0)
        _record("AsyncAddOne")
        return (value + 1,)


class Collect:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*",)}}
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    def run(self, value):
        _record("Collect")
        return {"ui": {"value": [value]}}


class LazySwitch:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"condition": ("BOOLEAN", {"default": True}),
                             "on_true": ("*", {"lazy": True}), "on_false": ("*", {"lazy": True})}}
    RETURN_TYPES = ("*",)
    FUNCTION = "run"

    def check_lazy_status(self, condition, on_true=None, on_false=None):
        wanted = "on_true" if condition else "on_false"
        return [wanted] if (on_true if condition else on_false) is None else []

    def run(self, condition, on_true=None, on_false=None):
        _record("LazySwitch")
        return (on_true if condition else on_false,)


class MakeList:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"count": ("INT", {"default": 3, "min": 0})}}
    RETURN_TYPES = ("INT",)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "run"

    def run(self, count):
        _record("MakeList")
        return (list(range(count)),)


class SumList:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"values": ("INT", {"forceInput": True})}}
    RETURN_TYPES = ("INT",)
    INPUT_IS_LIST = True
    FUNCTION = "run"

    def run(self, values):
        _record("SumList")
        return (sum(values),)


class Pair:
    """Adds two ints; fed two lists of different lengths, it runs over the longer and repeats the shorter's last."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT", {"forceInput": True}), "b": ("INT", {"forceInput": True})}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, a, b):
        return (a * 100 + b,)


class Block:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"forceInput": True}), "message": ("STRING", {"default": ""})}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, value, message):
        return (ExecutionBlocker(message or None),)


class Changed:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"token": ("STRING", {"default": "a"})}}
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"

    @classmethod
    def IS_CHANGED(cls, token):
        return float("nan") if token == "always" else os.environ.get("SEMANTICS_TOKEN", token)

    def run(self, token):
        _record("Changed")
        return (token,)


class Validated:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": 0, "max": 10})}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def VALIDATE_INPUTS(cls, value):
        return True if value != 13 else "13 is unlucky"

    def run(self, value):
        return (value,)


class TypedInput:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*",)}}
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"

    @classmethod
    def VALIDATE_INPUTS(cls, input_types):
        return True if input_types.get("value") in (None, "INT") else f"wants INT, got {input_types.get('value')}"

    def run(self, value):
        return (str(value),)


class MeetAtBarrier:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0})}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, value):
        BARRIER.wait()  # passes only if both nodes run at the same time
        return (value,)


class OneAtATime:
    CONCURRENCY_LIMIT = 1

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0})}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, value):
        try:
            LIMITED_BARRIER.wait()
            LIMITED_SEEN.append("together")
        except threading.BrokenBarrierError:
            LIMITED_SEEN.append("alone")
            LIMITED_BARRIER.reset()
        return (value,)


class WaitForInterrupt:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0})}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, value):
        for _ in range(2000):
            model_management.throw_exception_if_processing_interrupted()
            threading.Event().wait(0.005)
        return (value,)


class Raise:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0})}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, value):
        raise ValueError(f"boom {value}")


class WrongArity:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self):
        return (1, 2)


class WrongType:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self):
        return ("not a number",)


class Hidden:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}, "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID", "extra": "EXTRA_PNGINFO"}}
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"

    def run(self, prompt, unique_id, extra):
        return (json.dumps({"nodes": sorted(prompt), "id": unique_id, "extra": extra}),)


class CountDown:
    """Sums n + (n-1) + ... + 1 by expanding into a copy of itself: a loop built by expansion."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"n": ("INT", {"default": 3}), "total": ("INT", {"default": 0})}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, n, total):
        _record("CountDown")
        if n <= 0:
            return (total,)
        graph = GraphBuilder()
        step = graph.node("CountDown", n=n - 1, total=total + n)
        return {"result": (step.out(0),), "expand": graph.finalize()}


class Report:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"steps": ("INT", {"default": 3})}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, steps):
        bar = comfy.utils.ProgressBar(steps)
        for _ in range(steps):
            bar.update(1)
        PromptServer.instance.send_sync("semantics.done", {"steps": steps})
        return (steps,)


class AsyncRaiseLater:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0})}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    async def run(self, value):
        await asyncio.sleep(0)
        raise ValueError(f"late boom {value}")


class AsyncWaitForever:
    CANCELLED: list[str] = []

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0})}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    async def run(self, value):
        PromptServer.instance.send_sync("semantics.waiting", {"value": value})
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            AsyncWaitForever.CANCELLED.append("cancelled")
            raise
        return (value,)


class AsyncWithTimeout:
    """Task-bound context managers (asyncio.timeout, anyio cancel scopes) need the node to run in one task."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0})}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    async def run(self, value):
        async with asyncio.timeout(5):
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        return (value + 1,)


NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in (
    AsyncRaiseLater, AsyncWaitForever, AsyncWithTimeout,
    Const, AddOne, AsyncAddOne, Collect, LazySwitch, MakeList, SumList, Pair, Block, Changed, Validated,
    TypedInput, MeetAtBarrier, OneAtATime, WaitForInterrupt, Raise, WrongArity, WrongType, Hidden, CountDown, Report)}
NODE_DISPLAY_NAME_MAPPINGS = {"Const": "Constant"}
