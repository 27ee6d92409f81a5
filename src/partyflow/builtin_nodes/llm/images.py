"""Images for the Chat node: ComfyUI `IMAGE` values and lines of file names or URLs, as `ImagePart`s.

ComfyUI passes images as float tensors shaped [batch, height, width, channels] with values 0..1; vision APIs
take image URLs, so each image is encoded as PNG (`png.encode_png`, no Pillow needed) and inlined as a data URL.
File names are read from the input directory through `folder_paths`, which refuses names that leave it, so a
workflow from elsewhere cannot send the server's other files to a model provider.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import folder_paths

from partyflow.llm import ImagePart

from .png import encode_png

Detail = Literal["auto", "low", "high"]
DETAILS: list[str] = ["auto", "low", "high"]
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
               (b"GIF89a", "image/gif"))


def image_parts(images: Any, image_files: str, detail: Detail = "auto") -> tuple[ImagePart, ...]:
    """The images of an `IMAGE` value, then those named by `image_files` (one per line), in order."""
    return (*(ImagePart.from_bytes(png, "image/png", detail) for png in png_images(images)),
            *file_parts(image_files, detail))


# --- IMAGE values ----------------------------------------------------------------------------------------------

def png_images(value: Any) -> list[bytes]:
    """Each image of an IMAGE value (a tensor or array batch, one image, or a list of them) as PNG bytes."""
    return [encode_png(frame.tobytes(), frame.shape[1], frame.shape[0], frame.shape[2]) for frame in frames(value)]


def frames(value: Any) -> Iterator[Any]:
    """uint8 arrays shaped [height, width, 3 or 4], one per image, from the shapes ComfyUI nodes produce."""
    if value is None:
        return
    if isinstance(value, list | tuple):
        for item in value:
            yield from frames(item)
        return
    array = _as_array(value)
    if array.ndim == 4:
        for frame in array:
            yield _to_uint8(frame)
    elif array.ndim in (2, 3):
        yield _to_uint8(array)
    else:
        raise ValueError(f"an image must be shaped [batch, height, width, channels], got {tuple(array.shape)}")


def _as_array(value: Any) -> Any:
    """A numpy array from a torch tensor (on any device, in any float type) or anything array-like."""
    numpy = _numpy()
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch, without importing it
        tensor = value.detach().cpu()
        value = (tensor.float() if tensor.is_floating_point() else tensor).numpy()
    try:
        return numpy.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the images input must be an IMAGE (tensor or array), got {type(value).__name__} "
                         f"({exc})") from None


def _to_uint8(frame: Any) -> Any:
    """RGB or RGBA bytes: floats are read as 0..1 (ComfyUI's convention), integers as 0..255, grey becomes RGB."""
    numpy = _numpy()
    if frame.ndim == 2:
        frame = frame[:, :, None]
    channels = frame.shape[2]
    if channels == 1:
        frame = numpy.repeat(frame, 3, axis=2)
    elif channels not in (3, 4):
        raise ValueError(f"an image needs 1, 3 or 4 channels last ([height, width, channels]), got shape "
                         f"{tuple(frame.shape)}; channels-first tensors must be permuted first")
    if frame.dtype == numpy.uint8:
        return numpy.ascontiguousarray(frame)
    if frame.dtype.kind == "b":
        scaled = frame.astype(numpy.float64) * 255.0
    elif frame.dtype.kind == "f":
        scaled = numpy.clip(numpy.nan_to_num(frame.astype(numpy.float64)), 0.0, 1.0) * 255.0
    elif frame.dtype.kind in "iu":
        scaled = numpy.clip(frame, 0, 255)
    else:
        raise ValueError(f"image values must be numbers, got dtype {frame.dtype}")
    return numpy.ascontiguousarray(numpy.rint(scaled).astype(numpy.uint8))


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        raise ValueError("IMAGE inputs need numpy (it comes with torch); install it with `pip install numpy`") \
            from None
    return numpy


# --- image_files lines -----------------------------------------------------------------------------------------

def file_parts(text: str, detail: Detail = "auto") -> tuple[ImagePart, ...]:
    """One image per non-empty line: an http(s) URL, a data: URL, or a file name in the input directory."""
    return tuple(_file_part(line.strip(), detail) for line in (text or "").splitlines() if line.strip())


def _file_part(line: str, detail: Detail) -> ImagePart:
    if line.startswith(("http://", "https://")):
        return ImagePart(url=line, detail=detail)  # the provider fetches it
    if line.startswith("data:"):
        return _data_url_part(line, detail)
    return _input_file_part(line, detail)


def _data_url_part(url: str, detail: Detail) -> ImagePart:
    header, comma, payload = url.partition(",")
    if not comma or not header.startswith("data:image/") or not header.endswith(";base64"):
        raise ValueError(f"an image data URL must look like data:image/png;base64,...; got {url[:40]!r}")
    try:
        base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the data URL starting {header!r} does not hold valid base64") from None
    return ImagePart(url=url, detail=detail)


def _input_file_part(name: str, detail: Detail) -> ImagePart:
    """A file under the input directory (or `name [output]` / `[temp]`, as ComfyUI's image loaders accept)."""
    try:
        path = Path(folder_paths.get_annotated_filepath(name))
    except PermissionError:
        raise ValueError(f"image file {name!r} leaves the input directory; name a file inside input/ (upload it "
                         "there first), or give an http(s) or data: URL") from None
    if not path.is_file():
        raise ValueError(f"no image file {name!r} in the input directory; upload it there, or give an http(s) "
                         "or data: URL")
    data = path.read_bytes()
    media_type = sniff_media_type(data)
    if media_type is None:
        raise ValueError(f"image file {name!r} is not a PNG, JPEG, GIF or WebP image")
    return ImagePart.from_bytes(data, media_type, detail)


def sniff_media_type(data: bytes) -> str | None:
    """The media type from the file's first bytes (names can lie); None for formats vision APIs do not take."""
    for signature, media_type in _SIGNATURES:
        if data.startswith(signature):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
