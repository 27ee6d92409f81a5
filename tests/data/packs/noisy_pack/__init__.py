"""A pack that prints at import and while its node runs, as many real packs do."""

import os

print("noisy_pack: loading models...")


class NoisyUpper:
    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {"required": {"text": ("STRING", {"default": "hi"})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "noisy"

    def run(self, text):
        print(f"noisy_pack: working on {text!r}")
        os.write(1, b"noisy_pack: raw write to fd 1\n")
        return {"ui": {"text": [text.upper()]}, "result": (text.upper(),)}


NODE_CLASS_MAPPINGS = {"NoisyUpper": NoisyUpper}
