"""A pack written against ComfyUI's V3 node API only (comfy_entrypoint, io.ComfyNode), as newer packs are."""

from __future__ import annotations

import asyncio

from comfy_api.latest import ComfyExtension, io, ui

Greeting = io.Custom("GREETING")


class Repeat(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="V3Repeat",
            display_name="Repeat text (V3)",
            category="v3 sample",
            description="Repeats a text a number of times.",
            inputs=[
                io.String.Input("text", multiline=True, default="hi"),
                io.Int.Input("times", default=2, min=1, max=5, tooltip="how often"),
                io.Combo.Input("separator", options=["space", "comma"], default="space"),
                io.Boolean.Input("shout", default=False, optional=True),
            ],
            outputs=[io.String.Output(display_name="repeated"), Greeting.Output()],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, times: int) -> bool | str:
        return True if times != 4 else "four is not allowed"

    @classmethod
    def fingerprint_inputs(cls, text: str, times: int, separator: str, shout: bool = False) -> str:
        return f"{text}|{times}"

    @classmethod
    def execute(cls, text: str, times: int, separator: str, shout: bool = False) -> io.NodeOutput:
        joined = (" " if separator == "space" else ",").join([text] * times)
        joined = joined.upper() if shout else joined
        return io.NodeOutput(joined, {"node": cls.hidden.unique_id, "text": joined})


class Show(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(node_id="V3Show", category="v3 sample", is_output_node=True,
                         inputs=[Greeting.Input("greeting")], outputs=[])

    @classmethod
    async def execute(cls, greeting: dict) -> io.NodeOutput:
        await asyncio.sleep(0)
        return io.NodeOutput(ui=ui.PreviewText(f"{greeting['node']}: {greeting['text']}"))


class Gate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(node_id="V3Gate", category="v3 sample",
                         inputs=[io.String.Input("text", force_input=True), io.Boolean.Input("open", default=True)],
                         outputs=[io.String.Output()])

    @classmethod
    def execute(cls, text: str, open: bool) -> io.NodeOutput:
        return io.NodeOutput(text) if open else io.NodeOutput(block_execution="the gate is closed")


class SampleExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [Repeat, Show, Gate]


async def comfy_entrypoint() -> SampleExtension:
    return SampleExtension()
