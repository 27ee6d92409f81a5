"""A minimal PNG writer: 8-bit RGB or RGBA pixels to PNG bytes, with only `zlib` and `struct`.

Vision APIs take images as PNG or JPEG, while ComfyUI's images are float tensors. Pillow would do this, but it is
a large dependency for one lossless format with no options; the PNG layout needed here is small and fixed:
a signature, an IHDR chunk, one IDAT chunk of deflated scanlines (each prefixed by filter type 0, "none"), and
IEND, every chunk closed by the CRC-32 of its type and data.
"""

from __future__ import annotations

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOR_TYPES = {3: 2, 4: 6}  # channels -> PNG colour type: 2 truecolour (RGB), 6 truecolour with alpha (RGBA)
COMPRESSION_LEVEL = 4  # deflate level: most of level 9's size at a fraction of its time on photographs


def encode_png(pixels: bytes, width: int, height: int, channels: int) -> bytes:
    """PNG bytes for `height` rows of `width` pixels of `channels` (3 or 4) bytes each, row-major, top first."""
    if channels not in COLOR_TYPES:
        raise ValueError(f"a PNG here has 3 (RGB) or 4 (RGBA) channels, not {channels}")
    if width <= 0 or height <= 0:
        raise ValueError(f"an image needs a positive size, got {width}x{height}")
    stride = width * channels
    if len(pixels) != stride * height:
        raise ValueError(f"{len(pixels)} bytes of pixels do not make a {width}x{height} image of {channels} "
                         "channels")
    header = struct.pack(">IIBBBBB", width, height, 8, COLOR_TYPES[channels], 0, 0, 0)
    scanlines = b"".join(b"\x00" + pixels[row * stride:(row + 1) * stride] for row in range(height))
    return b"".join((SIGNATURE, _chunk(b"IHDR", header),
                     _chunk(b"IDAT", zlib.compress(scanlines, COMPRESSION_LEVEL)), _chunk(b"IEND", b"")))


def _chunk(kind: bytes, data: bytes) -> bytes:
    """Length, type, data and the CRC-32 of type and data: the unit every PNG is made of."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
