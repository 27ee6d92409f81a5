"""Images for local vision-language models (transformers): from a request's image parts to a processor's chat.

A local model cannot fetch URLs (and should not: partyflow stays offline and confined), so images come inline, as
the Chat and Agent nodes send them (`data:image/...;base64,`). Each image is checked before any pixels reach the
model: its encoded size, its pixel count (a decompression bomb is refused, not decoded), the number of images in
one request, and it is scaled down to a longest side chosen by the part's `detail` — dynamic-resolution models
(Qwen2-VL, Idefics3/SmolVLM image splitting) would otherwise spend thousands of tokens on one large photo.

Messages become the shape processors' chat templates take: every content a list of parts, `{"type": "text"}` and
`{"type": "image", "image": <PIL image>}`, so one template renders text-only and multimodal turns alike.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from typing import Any

from partyflow.llm.errors import InvalidRequestError
from partyflow.llm.types import (
    AssistantMessage,
    ChatRequest,
    ImagePart,
    Message,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
)


@dataclass(frozen=True)
class ImageLimits:
    """What one request may carry to a local vision model, and how large each image is when it gets there."""

    max_images: int = 8
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000  # decoded size; a larger image is refused before it is decoded
    side_low: int = 512  # longest side for detail="low"
    side_auto: int = 1024
    side_high: int = 2048

    def side(self, detail: str) -> int:
        return {"low": self.side_low, "high": self.side_high}.get(detail, self.side_auto)


DEFAULT_LIMITS = ImageLimits()


def has_images(request: ChatRequest) -> bool:
    return any(isinstance(part, ImagePart) for message in request.messages
               if isinstance(message, UserMessage | ToolMessage) and not isinstance(message.content, str)
               for part in message.content)


def vision_messages(request: ChatRequest, *, provider: str, model: str,
                    limits: ImageLimits = DEFAULT_LIMITS) -> list[dict[str, Any]]:
    """The request's messages for a processor's chat template, images decoded, checked and scaled."""
    count = sum(isinstance(part, ImagePart) for message in request.messages
                if isinstance(message, UserMessage | ToolMessage) and not isinstance(message.content, str)
                for part in message.content)
    if count > limits.max_images:
        raise InvalidRequestError(f"the request has {count} images; this local model takes up to "
                                  f"{limits.max_images} per request", provider=provider, model=model,
                                  hint="Send fewer images per turn, or combine them into one picture")
    counter = iter(range(1, count + 1))
    return [_message(message, provider, model, limits, counter) for message in request.messages]


def _message(message: Message, provider: str, model: str, limits: ImageLimits, counter: Any) -> dict[str, Any]:
    match message:
        case SystemMessage():
            return {"role": "system", "content": [{"type": "text", "text": message.content}]}
        case UserMessage():
            return {"role": "user", "content": _parts(message.content, provider, model, limits, counter)}
        case AssistantMessage():
            out: dict[str, Any] = {"role": "assistant",
                                   "content": [{"type": "text", "text": message.content}] if message.content else []}
            if message.tool_calls:
                out["tool_calls"] = [{"id": call.id, "type": "function",
                                      "function": {"name": call.name, "arguments": call.arguments}}
                                     for call in message.tool_calls]
            return out
        case ToolMessage():
            return {"role": "tool", "tool_call_id": message.tool_call_id,
                    "content": _parts(message.content, provider, model, limits, counter)}
    raise TypeError(f"not a chat message: {message!r}")


def _parts(content: Any, provider: str, model: str, limits: ImageLimits, counter: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        else:
            parts.append({"type": "image", "image": decode_image(part, provider, model, limits, next(counter))})
    return parts


def decode_image(part: ImagePart, provider: str, model: str, limits: ImageLimits = DEFAULT_LIMITS,
                 number: int = 1) -> Any:
    """One inline image as an RGB Pillow image within the limits; errors say which image and which limit."""
    from PIL import Image, UnidentifiedImageError

    def refuse(what: str, hint: str) -> InvalidRequestError:
        return InvalidRequestError(f"image {number}: {what}", provider=provider, model=model, hint=hint)

    if not part.url.startswith("data:"):
        raise refuse("a local model does not fetch image URLs",
                     "Give the image inline: an IMAGE input, or a file in the input directory")
    header, _, payload = part.url.partition(",")
    if ";base64" not in header:
        raise refuse("the data URL is not base64-encoded", "Encode the image as data:image/...;base64,...")
    if len(payload) * 3 // 4 > limits.max_bytes:
        raise refuse(f"it is over {limits.max_bytes // (1024 * 1024)} MiB", "Scale the image down first")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise refuse("the data URL is not valid base64", "Encode the image as data:image/...;base64,...") from None
    try:
        with Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
            if width * height > limits.max_pixels:
                raise refuse(f"it has {width}x{height} pixels; the limit is {limits.max_pixels:,}",
                             "Scale the image down first")
            picture = opened.convert("RGB")
    except Image.DecompressionBombError:  # far over the limit: Pillow refuses to open it at all
        raise refuse(f"it has more pixels than the limit of {limits.max_pixels:,}", "Scale the image down first") \
            from None
    except (UnidentifiedImageError, OSError) as exc:
        raise refuse(f"it is not an image Pillow can read ({exc})", "Send PNG, JPEG, GIF or WebP") from None
    side = limits.side(part.detail)
    if max(picture.size) > side:
        picture.thumbnail((side, side), Image.Resampling.LANCZOS)  # keeps the aspect ratio
    return picture
