"""ComfyUI's core image nodes: load, save, preview, scale, invert, batch, crop, empty.

IMAGE values are ComfyUI's `[B,H,W,C]` float tensors (0..1) and MASK `[B,H,W]`, so these nodes interoperate
with packs' image nodes. Saved and previewed files land in output/ and temp/ and are described as
`{"filename", "subfolder", "type"}` so the editor shows them through /view.
"""

from __future__ import annotations

import hashlib
import os
import random
from typing import Any

import folder_paths

from partyflow.media.images import encode_png, load_image, load_mask, require_torch

MAX_RESOLUTION = 16384
UPSCALE_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]


def _input_images() -> list[str]:
    root = folder_paths.get_input_directory()
    if not os.path.isdir(root):
        return []
    files = [f for f in os.listdir(root) if os.path.isfile(os.path.join(root, f))]
    return sorted(folder_paths.filter_files_content_types(files, ["image"]))


def _image_path(image: str) -> str:
    path = folder_paths.get_annotated_filepath(image)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image {image!r} is not in the input folder")
    return path


def save_images(images: Any, filename_prefix: str, kind: str, *, prompt: Any = None, extra_pnginfo: Any = None,
                compress_level: int = 4) -> list[dict[str, str]]:
    """Write each image of the batch as PNG into output/ or temp/, with the prompt and workflow as metadata."""
    from partyflow.nodes.comfy_compat.comfy.cli_args import args

    base = folder_paths.get_output_directory() if kind == "output" else folder_paths.get_temp_directory()
    folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
        filename_prefix, base, int(images[0].shape[1]), int(images[0].shape[0]))
    metadata: dict[str, Any] = {}
    if not args.disable_metadata:
        if prompt is not None:
            metadata["prompt"] = prompt
        for key, value in (extra_pnginfo or {}).items():
            metadata[key] = value
    results = []
    for index, image in enumerate(images):
        name = f"{filename.replace('%batch_num%', str(index))}_{counter:05}_.png"
        with open(os.path.join(folder, name), "wb") as out:
            out.write(encode_png(image, metadata, compress_level))
        results.append({"filename": name, "subfolder": subfolder, "type": kind})
        counter += 1
    return results


class LoadImage:
    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "load_image"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
        return {"required": {"image": (_input_images(), {"image_upload": True})}}

    def load_image(self, image: str) -> tuple[Any, Any]:
        return load_image(_image_path(image))

    @classmethod
    def IS_CHANGED(cls, image: str) -> str:  # noqa: N802 - ComfyUI's name
        with open(_image_path(image), "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()

    @classmethod
    def VALIDATE_INPUTS(cls, image: str) -> bool | str:  # noqa: N802 - ComfyUI's name
        return True if folder_paths.exists_annotated_filepath(image) else f"Invalid image file: {image}"


class LoadImageMask:
    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "load_image"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
        return {"required": {"image": (_input_images(), {"image_upload": True}),
                             "channel": (["alpha", "red", "green", "blue"],)}}

    def load_image(self, image: str, channel: str) -> tuple[Any]:
        return (load_mask(_image_path(image), channel),)

    @classmethod
    def IS_CHANGED(cls, image: str, channel: str) -> str:  # noqa: N802 - ComfyUI's name
        return LoadImage.IS_CHANGED(image)

    @classmethod
    def VALIDATE_INPUTS(cls, image: str) -> bool | str:  # noqa: N802 - ComfyUI's name
        return LoadImage.VALIDATE_INPUTS(image)


class SaveImage:
    CATEGORY = "image"
    RETURN_TYPES = ()
    FUNCTION = "save_images"
    OUTPUT_NODE = True
    DESCRIPTION = "Saves the input images to your output directory."

    def __init__(self) -> None:
        self.type = "output"
        self.prefix_append = ""
        self.compress_level = 4

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
        return {"required": {"images": ("IMAGE", {"tooltip": "The images to save."}),
                             "filename_prefix": ("STRING", {"default": "ComfyUI"})},
                "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    def save_images(self, images: Any, filename_prefix: str = "ComfyUI", prompt: Any = None,
                    extra_pnginfo: Any = None) -> dict[str, Any]:
        saved = save_images(images, filename_prefix + self.prefix_append, self.type, prompt=prompt,
                            extra_pnginfo=extra_pnginfo, compress_level=self.compress_level)
        return {"ui": {"images": saved}}


class PreviewImage(SaveImage):
    def __init__(self) -> None:
        self.type = "temp"
        self.prefix_append = "_temp_" + "".join(random.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))
        self.compress_level = 1

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
        return {"required": {"images": ("IMAGE",)}, "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}


class ImageScale:
    CATEGORY = "image/upscaling"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "upscale"
    upscale_methods = UPSCALE_METHODS  # packs read these class attributes (rgthree's Image Resize)
    crop_methods = ["disabled", "center"]

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
        size = {"default": 512, "min": 0, "max": MAX_RESOLUTION, "step": 1}
        return {"required": {"image": ("IMAGE",), "upscale_method": (cls.upscale_methods,), "width": ("INT", size),
                             "height": ("INT", size), "crop": (cls.crop_methods,)}}

    def upscale(self, image: Any, upscale_method: str, width: int, height: int, crop: str) -> tuple[Any]:
        from partyflow.nodes.comfy_compat.comfy.utils import common_upscale

        if width == 0 and height == 0:
            return (image,)
        if width == 0:
            width = max(1, round(image.shape[2] * height / image.shape[1]))
        elif height == 0:
            height = max(1, round(image.shape[1] * width / image.shape[2]))
        samples = image.movedim(-1, 1)
        return (common_upscale(samples, width, height, upscale_method, crop).movedim(1, -1),)


class ImageInvert:
    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "invert"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
        return {"required": {"image": ("IMAGE",)}}

    def invert(self, image: Any) -> tuple[Any]:
        return (1.0 - image,)


class ImageBatch:
    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "batch"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
        return {"required": {"image1": ("IMAGE",), "image2": ("IMAGE",)}}

    def batch(self, image1: Any, image2: Any) -> tuple[Any]:
        """Second batch resized (bilinear, center crop) to the first's size, then appended."""
        from partyflow.nodes.comfy_compat.comfy.utils import common_upscale

        torch = require_torch()
        if image1.shape[-1] != image2.shape[-1]:
            channels = min(image1.shape[-1], image2.shape[-1])
            image1, image2 = image1[..., :channels], image2[..., :channels]
        if image1.shape[1:3] != image2.shape[1:3]:
            image2 = common_upscale(image2.movedim(-1, 1), image1.shape[2], image1.shape[1], "bilinear",
                                    "center").movedim(1, -1)
        return (torch.cat((image1, image2), dim=0),)


class ImageCrop:
    CATEGORY = "image/transform"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "crop"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
        size = {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}
        place = {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1}
        return {"required": {"image": ("IMAGE",), "width": ("INT", size), "height": ("INT", size),
                             "x": ("INT", place), "y": ("INT", place)}}

    def crop(self, image: Any, width: int, height: int, x: int, y: int) -> tuple[Any]:
        x, y = min(x, image.shape[2] - 1), min(y, image.shape[1] - 1)
        return (image[:, y:y + height, x:x + width, :],)


class EmptyImage:
    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "generate"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
        size = {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}
        return {"required": {"width": ("INT", size), "height": ("INT", size),
                             "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
                             "color": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFF, "step": 1,
                                               "display": "color"})}}

    def generate(self, width: int, height: int, batch_size: int = 1, color: int = 0) -> tuple[Any]:
        torch = require_torch()
        channels = [((color >> shift) & 0xFF) / 255.0 for shift in (16, 8, 0)]
        image = torch.tensor(channels, dtype=torch.float32).expand(batch_size, height, width, 3).clone()
        return (image,)


class RepeatImageBatch:
    CATEGORY = "image/batch"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "repeat"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
        return {"required": {"image": ("IMAGE",), "amount": ("INT", {"default": 1, "min": 1, "max": 4096})}}

    def repeat(self, image: Any, amount: int) -> tuple[Any]:
        return (image.repeat((amount, 1, 1, 1)),)


NODE_CLASS_MAPPINGS = {
    "LoadImage": LoadImage, "RepeatImageBatch": RepeatImageBatch, "LoadImageMask": LoadImageMask, "SaveImage": SaveImage, "PreviewImage": PreviewImage,
    "ImageScale": ImageScale, "ImageInvert": ImageInvert, "ImageBatch": ImageBatch, "ImageCrop": ImageCrop,
    "EmptyImage": EmptyImage,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LoadImage": "Load Image", "LoadImageMask": "Load Image (as Mask)", "SaveImage": "Save Image",
    "PreviewImage": "Preview Image", "ImageScale": "Upscale Image", "ImageInvert": "Invert Image",
    "ImageBatch": "Batch Images", "ImageCrop": "Image Crop", "EmptyImage": "EmptyImage",
    "RepeatImageBatch": "RepeatImageBatch",
}
