"""IMAGE and MASK tensors (ComfyUI's layout) to and from Pillow images and PNG files."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["MediaExtraMissing", "encode_png", "image_to_pil", "load_image", "mask_to_image", "pil_to_image",
           "require_torch"]


class MediaExtraMissing(ImportError):
    """IMAGE/MASK values need torch, which is not installed."""


def require_torch() -> Any:
    """torch, or a clear error naming the extra that installs it."""
    try:
        import torch
    except ImportError as exc:
        raise MediaExtraMissing("IMAGE and MASK values are torch tensors (as in ComfyUI), and torch is not "
                                "installed; install it with: pip install 'partyflow[local]'") from exc
    return torch


def pil_to_image(picture: Any) -> Any:
    """A Pillow image as a `[1,H,W,3]` float tensor in 0..1 (alpha dropped; see `load_image` for the mask)."""
    import numpy as np

    torch = require_torch()
    rgb = picture.convert("RGB")
    return torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).unsqueeze(0)


def image_to_pil(image: Any) -> Any:
    """One `[H,W,C]` (or `[1,H,W,C]`) float tensor as a Pillow image (RGB, RGBA or greyscale by channels)."""
    import numpy as np
    from PIL import Image

    if image.ndim == 4:
        image = image[0]
    array = np.clip(255.0 * image.detach().cpu().float().numpy(), 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(array)


def load_image(data: bytes | str | Any) -> tuple[Any, Any]:
    """An image file (path, bytes or file object) as ComfyUI's `(IMAGE [F,H,W,3], MASK [F,H,W])`.

    Every frame of an animated file becomes a batch item (frames of another size than the first are skipped,
    as ComfyUI does); EXIF rotation is applied; the mask is 1 where the image is transparent.
    """
    import numpy as np
    from PIL import Image, ImageOps, ImageSequence

    torch = require_torch()
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    images, masks = [], []
    with Image.open(source) as opened:
        size = None
        for frame in ImageSequence.Iterator(opened):
            frame = ImageOps.exif_transpose(frame)
            if frame.mode == "I":
                frame = frame.point(lambda value: value * (1 / 255))
            if size is None:
                size = frame.size
            elif frame.size != size:
                continue
            images.append(pil_to_image(frame))
            if "A" in frame.getbands():
                alpha = np.asarray(frame.getchannel("A"), dtype=np.float32) / 255.0
                masks.append(1.0 - torch.from_numpy(alpha).unsqueeze(0))
            else:
                masks.append(torch.zeros((1, frame.size[1], frame.size[0]), dtype=torch.float32))
    return torch.cat(images), torch.cat(masks)


def load_mask(data: bytes | str | Any, channel: str) -> Any:
    """One channel (`red`, `green`, `blue`, `alpha`) of an image file as a `[1,H,W]` mask.

    The alpha channel is inverted (1 where transparent) as in ComfyUI; a missing channel gives an empty mask.
    """
    import numpy as np
    from PIL import Image, ImageOps

    torch = require_torch()
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    with Image.open(source) as opened:
        picture = ImageOps.exif_transpose(opened)
        if picture.getbands() != ("R", "G", "B", "A"):
            picture = picture.convert("RGBA") if picture.mode in {"LA", "P", "PA"} else picture.convert("RGB")
        band = channel[0].upper()
        if band not in picture.getbands():
            return torch.zeros((1, 64, 64), dtype=torch.float32)
        values = torch.from_numpy(np.asarray(picture.getchannel(band), dtype=np.float32) / 255.0)
    return (1.0 - values if band == "A" else values).unsqueeze(0)


def mask_to_image(mask: Any) -> Any:
    """A `[B,H,W]` mask as a greyscale `[B,H,W,3]` image."""
    return mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).movedim(1, -1).expand(-1, -1, -1, 3)


def encode_png(image: Any, metadata: Mapping[str, Any] | None = None, compress_level: int = 4) -> bytes:
    """One image as PNG bytes; `metadata` values become text chunks (non-strings as JSON), as ComfyUI writes
    the prompt and workflow into saved images."""
    from PIL.PngImagePlugin import PngInfo

    info = None
    if metadata:
        info = PngInfo()
        for key, value in metadata.items():
            info.add_text(key, value if isinstance(value, str) else json.dumps(value))
    out = io.BytesIO()
    image_to_pil(image).save(out, format="PNG", pnginfo=info, compress_level=compress_level)
    return out.getvalue()
