"""ComfyUI's `comfy.comfy_types`: the typing helpers packs annotate their nodes with."""

from partyflow.nodes.comfy_compat.comfy.comfy_types.node_typing import (
    IO,
    ComfyNodeABC,
    FileLocator,
    InputTypeDict,
)

__all__ = ["IO", "ComfyNodeABC", "FileLocator", "InputTypeDict"]
