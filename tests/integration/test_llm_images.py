"""Images in the Chat node: IMAGE tensors and input-directory files reach an OpenAI-compatible server as data URLs.

The PNG bytes are checked by decoding them here (chunk CRCs, IHDR, the inflated scanlines) and, when Pillow
happens to be installed, by Pillow as well; partyflow itself encodes PNG without Pillow.
"""

from __future__ import annotations

import base64
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tests.support.openai_server import OpenAIServer, Reply, chat_completion
from tests.support.providers import (
    chat,
    fresh_server_fixture,
    loader,
    node,
    openai_table,
    running_server_fixture,
    write_config,
)

from partyflow import Engine
from partyflow.nodes.comfy_compat import install_compat_modules
from partyflow.nodes.host import HostContext, host_context
from partyflow.nodes.registry import NodeRegistry

install_compat_modules()  # the pack imports ComfyUI's module names (`server`, `folder_paths`), as under an engine
from partyflow.builtin_nodes.llm.images import file_parts, frames, png_images, sniff_media_type  # noqa: E402
from partyflow.builtin_nodes.llm.png import encode_png  # noqa: E402

KEY_ENV = "PARTYFLOW_TEST_IMAGES_KEY"

# A custom pack with one node that outputs a fixed IMAGE batch, as an image-loading node would.
IMAGE_PACK = '''
import torch

class FixedImages:
    CATEGORY = "test"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def make(self):
        batch = torch.linspace(0.0, 1.0, steps=2 * 3 * 5 * 3, dtype=torch.float32).reshape(2, 3, 5, 3)
        return (batch,)

NODE_CLASS_MAPPINGS = {"FixedImages": FixedImages}
'''


def fixed_batch() -> torch.Tensor:
    return torch.linspace(0.0, 1.0, steps=2 * 3 * 5 * 3, dtype=torch.float32).reshape(2, 3, 5, 3)


# --- a PNG reader for the checks -------------------------------------------------------------------------------

def decode_png(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, channels, pixels) of a PNG written with filter type 0; asserts every CRC and the layout."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind, body = data[offset + 4:offset + 8], data[offset + 8:offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length:offset + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, f"bad CRC on {kind!r}"
        chunks.append((kind, body))
        offset += 12 + length
    assert [kind for kind, _ in chunks][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    width, height, depth, color, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, compression, filtering, interlace) == (8, 0, 0, 0) and color in (2, 6)
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = width * channels + 1
    assert len(raw) == stride * height
    rows = [raw[i * stride:(i + 1) * stride] for i in range(height)]
    assert all(row[0] == 0 for row in rows)  # filter type 0 on every scanline
    return width, height, channels, b"".join(row[1:] for row in rows)


def expected_bytes(image: torch.Tensor) -> bytes:
    return (image.clamp(0, 1) * 255).round().to(torch.uint8).numpy().tobytes()


def data_url_bytes(url: str) -> tuple[str, bytes]:
    header, _, payload = url.partition(",")
    return header.removeprefix("data:").removesuffix(";base64"), base64.b64decode(payload)


# --- fixtures --------------------------------------------------------------------------------------------------

running_server = running_server_fixture()
server = fresh_server_fixture()


@pytest.fixture
def home(tmp_path: Path, server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = write_config(tmp_path / "home", openai_table("loop", server.url, key_env=KEY_ENV, model="tiny-vision"))
    (home / "custom_nodes" / "image_pack").mkdir(parents=True)
    (home / "custom_nodes" / "image_pack" / "__init__.py").write_text(IMAGE_PACK, encoding="utf-8")
    (home / "input").mkdir()
    monkeypatch.setenv(KEY_ENV, "sk-loopback-images")
    return home


@pytest.fixture
def engine(home: Path) -> Iterator[Engine]:
    engine = Engine(home=home)
    assert "FixedImages" in engine.object_info(), [r for r in engine.pack_results if not r.ok]
    yield engine
    engine.close()


def vision_prompt(**chat_inputs: Any) -> dict[str, Any]:
    return {"model": loader(), "chat": chat("What is shown?", stream=False, **chat_inputs),
            "show": node("DisplayText", text=["chat", 0])}


def user_content(server: OpenAIServer) -> list[dict[str, Any]]:
    bodies = [r.body for r in server.requests if r.path.endswith("/chat/completions")]
    assert len(bodies) == 1
    return bodies[0]["messages"][-1]["content"]


# --- through a workflow ----------------------------------------------------------------------------------------

def test_an_image_tensor_and_an_input_file_reach_the_server_as_data_urls(engine: Engine, server: OpenAIServer,
                                                                         home: Path) -> None:
    photo = encode_png(bytes(range(48)), 4, 4, 3)
    (home / "input" / "photo.png").write_bytes(photo)
    (home / "input" / "sub").mkdir()
    (home / "input" / "sub" / "scan.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(32))
    server.script(Reply.json(chat_completion("Two gradients and a photo.", model="tiny-vision")))
    files = "photo.png\n\n sub/scan.jpg \nhttps://example.invalid/cat.png\n"
    result = engine.run({**vision_prompt(images=["pictures", 0], image_files=files, image_detail="low"),
                         "pictures": node("FixedImages")})
    assert result.ok, result.error
    assert result.output("chat") == "Two gradients and a photo."
    content = user_content(server)
    assert content[0] == {"type": "text", "text": "What is shown?"}
    images = [part["image_url"] for part in content[1:]]
    assert [part["type"] for part in content[1:]] == ["image_url"] * 5
    assert all(image["detail"] == "low" for image in images)
    batch = fixed_batch()
    for index in range(2):  # one PNG per image of the batch, in order, pixel for pixel
        media_type, data = data_url_bytes(images[index]["url"])
        assert media_type == "image/png"
        assert decode_png(data) == (5, 3, 3, expected_bytes(batch[index]))
    assert data_url_bytes(images[2]["url"]) == ("image/png", photo)
    assert data_url_bytes(images[3]["url"]) == ("image/jpeg", b"\xff\xd8\xff\xe0" + bytes(32))
    assert images[4]["url"] == "https://example.invalid/cat.png"  # the provider fetches URLs itself
    history = result.output("chat", 1)
    assert [part["type"] for part in history[-2]["content"]] == ["text"] + ["image"] * 5


@pytest.mark.parametrize("name", ["../config.toml", "sub/../../config.toml", "/etc/hostname"])
def test_a_file_name_that_leaves_the_input_directory_is_refused(engine: Engine, server: OpenAIServer,
                                                                name: str) -> None:
    result = engine.run(vision_prompt(image_files=name))
    assert not result.ok and result.error.node_id == "chat"
    assert f"image file {name!r} leaves the input directory" in result.error.message
    assert not server.requests  # nothing was sent anywhere


def test_missing_files_and_files_that_are_not_images_are_refused(engine: Engine, server: OpenAIServer,
                                                                 home: Path) -> None:
    (home / "input" / "notes.txt").write_text("not an image", encoding="utf-8")
    missing = engine.run(vision_prompt(image_files="nope.png"))
    assert not missing.ok and "no image file 'nope.png' in the input directory" in missing.error.message
    text = engine.run(vision_prompt(image_files="notes.txt"))
    assert not text.ok and "'notes.txt' is not a PNG, JPEG, GIF or WebP image" in text.error.message
    bad_url = engine.run(vision_prompt(image_files="data:text/plain;base64,aGk="))
    assert not bad_url.ok and "data:image/png;base64" in bad_url.error.message
    assert not server.requests


def test_a_local_provider_names_itself_when_it_cannot_take_images(tmp_path: Path) -> None:
    from tests.support.tiny_model import TinyModelSpec, build_tiny_model

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    home = tmp_path / "home"
    build_tiny_model(home / "models" / "llm" / "tiny", TinyModelSpec(seed=0))
    engine = Engine(home=home, load_custom_nodes=False)
    try:
        prompt = vision_prompt(image_files="data:image/png;base64," + base64.b64encode(
            encode_png(bytes(3), 1, 1, 3)).decode())
        prompt["model"] = node("LocalModelLoader", folder="tiny", device="cpu", dtype="float32")
        result = engine.run(prompt)
    finally:
        engine.close()
    assert not result.ok and result.error.node_id == "chat"
    assert "provider 'local:tiny'" in result.error.message and "text only" in result.error.message


# --- the conversions on their own ------------------------------------------------------------------------------

def test_png_encoder_writes_rgb_and_rgba_that_decode_to_the_same_pixels() -> None:
    rng = np.random.default_rng(3)
    for channels in (3, 4):
        pixels = rng.integers(0, 256, size=(7, 9, channels), dtype=np.uint8)
        data = encode_png(pixels.tobytes(), 9, 7, channels)
        assert decode_png(data) == (9, 7, channels, pixels.tobytes())
        try:
            from PIL import Image
        except ImportError:
            continue
        import io

        decoded = Image.open(io.BytesIO(data))
        assert decoded.mode == ("RGB" if channels == 3 else "RGBA")
        assert np.array_equal(np.asarray(decoded), pixels)


def test_png_encoder_refuses_what_it_cannot_write() -> None:
    with pytest.raises(ValueError, match="3 \\(RGB\\) or 4 \\(RGBA\\)"):
        encode_png(bytes(4), 2, 2, 1)
    with pytest.raises(ValueError, match="do not make a 2x2 image"):
        encode_png(bytes(11), 2, 2, 3)
    with pytest.raises(ValueError, match="positive size"):
        encode_png(b"", 0, 2, 3)


def test_image_values_in_the_shapes_nodes_produce() -> None:
    grey = np.full((2, 2), 0.5, dtype=np.float32)
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    half = torch.full((1, 2, 2, 3), 0.5, dtype=torch.bfloat16)
    out = list(frames([grey, rgba, half, None]))
    assert [f.shape for f in out] == [(2, 2, 3), (2, 2, 4), (2, 2, 3)]
    assert all(f.dtype == np.uint8 for f in out) and out[0][0, 0].tolist() == [128, 128, 128]
    clipped = next(frames(np.array([[[-1.0, 2.0, np.nan]]])))
    assert clipped.tolist() == [[[0, 255, 0]]]
    assert png_images(torch.zeros((0, 4, 4, 3))) == []  # an empty batch is no images
    with pytest.raises(ValueError, match="channels-first"):
        list(frames(torch.zeros((1, 3, 8, 8))))
    with pytest.raises(ValueError, match="shaped \\[batch, height, width, channels\\]"):
        list(frames(np.zeros((1, 1, 2, 2, 3))))


def test_file_lines_are_confined_to_the_input_directory(tmp_path: Path) -> None:
    host = HostContext(home=_home(tmp_path), registry=NodeRegistry())
    (tmp_path / "input" / "a.gif").write_bytes(b"GIF89a" + bytes(8))
    (tmp_path / "output").mkdir(exist_ok=True)
    (tmp_path / "output" / "b.webp").write_bytes(b"RIFF" + bytes(4) + b"WEBP" + bytes(8))
    with host_context(host):
        parts = file_parts("a.gif\nb.webp [output]\n", "high")
        assert [part.url.split(";")[0] for part in parts] == ["data:image/gif", "data:image/webp"]
        with pytest.raises(ValueError, match="leaves the input directory"):
            file_parts("../secret.png")
    assert sniff_media_type(b"plain text") is None


def _home(root: Path) -> Any:
    from partyflow.config import Home

    return Home(root).ensure()

