"""Benign excerpt (written for the tests): the heavy backend is imported when a node runs, not when the pack loads."""


class Upscale:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "factor": ("INT", {"default": 2})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "image"

    def run(self, image, factor):
        from .backend import upscale

        return (upscale(image, factor),)


NODE_CLASS_MAPPINGS = {"Upscale": Upscale}
