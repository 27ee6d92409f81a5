"""Face restoration helpers; install.py installs the pack's own requirements (ComfyUI-Manager's convention)."""

import numpy as np
from PIL import Image


class SharpenFace:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "amount": ("FLOAT", {"default": 0.5})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "image"

    def run(self, image, amount):
        array = np.asarray(image, dtype=np.float32)
        blurred = np.asarray(Image.fromarray((array * 255).astype("uint8")).resize((8, 8)).resize(array.shape[1::-1]))
        return (np.clip(array + amount * (array - blurred / 255.0), 0, 1),)


NODE_CLASS_MAPPINGS = {"SharpenFace": SharpenFace}
