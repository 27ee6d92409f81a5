"""ComfyUI's `PreviewAny` and its primitive-value nodes (`PrimitiveString`, `PrimitiveInt`, ...)."""

from __future__ import annotations

import json
import sys
from typing import Any


class PreviewAny:
    """Shows any value as text in the editor: JSON when it serialises, else its `str()`."""

    CATEGORY = "utils"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "main"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
        return {"required": {"source": ("*", {})}}

    def main(self, source: Any = None) -> dict[str, Any]:
        if isinstance(source, str):
            value = source
        elif isinstance(source, (int, float, bool)):
            value = str(source)
        elif source is None:
            value = "None"
        else:
            try:
                value = json.dumps(source, indent=4, ensure_ascii=False)
            except (TypeError, ValueError):
                value = str(source)
        return {"ui": {"text": (value,)}}


def _primitive(name: str, kind: str, options: dict[str, Any], convert: Any) -> type:
    def execute(self: Any, value: Any) -> tuple[Any]:
        return (convert(value),)

    return type(name, (), {
        "__doc__": f"A constant {kind} value (ComfyUI's {name}).", "__module__": __name__,
        "CATEGORY": "utils/primitive", "RETURN_TYPES": (kind,), "FUNCTION": "execute", "execute": execute,
        "INPUT_TYPES": classmethod(lambda cls: {"required": {"value": (kind, dict(options))}}),
    })


PrimitiveString = _primitive("PrimitiveString", "STRING", {}, str)
PrimitiveStringMultiline = _primitive("PrimitiveStringMultiline", "STRING", {"multiline": True}, str)
PrimitiveInt = _primitive("PrimitiveInt", "INT", {"min": -sys.maxsize, "max": sys.maxsize,
                                                  "control_after_generate": True}, int)
PrimitiveFloat = _primitive("PrimitiveFloat", "FLOAT", {"min": -sys.maxsize, "max": sys.maxsize}, float)
PrimitiveBoolean = _primitive("PrimitiveBoolean", "BOOLEAN", {}, bool)

NODE_CLASS_MAPPINGS = {
    "PreviewAny": PreviewAny,
    "PrimitiveString": PrimitiveString,
    "PrimitiveStringMultiline": PrimitiveStringMultiline,
    "PrimitiveInt": PrimitiveInt,
    "PrimitiveFloat": PrimitiveFloat,
    "PrimitiveBoolean": PrimitiveBoolean,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "PreviewAny": "Preview Any",
    "PrimitiveString": "String",
    "PrimitiveStringMultiline": "String (Multiline)",
    "PrimitiveInt": "Int",
    "PrimitiveFloat": "Float",
    "PrimitiveBoolean": "Boolean",
}
