"""llama.cpp multimodal (issue 13): images into a GGUF model through a projector (mmproj) and llama.cpp's `mtmd`.

The projector is a tiny random CLIP + LLaVA MLP written as a real mmproj GGUF (tests/support/tiny_mmproj.py) for
the tiny GGUF Llama; llama.cpp loads it and encodes the images for real. The words are meaningless (random
weights), so the tests check that the images reach the context (the prompt grows by the projector's tokens per
image), that greedy replies repeat, that a text request after an image request is not served from image
embeddings, and the errors."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from tests.support.tiny_gguf import TinyGGUF
from tests.support.tiny_mmproj import IMAGE_TOKENS, build_tiny_mmproj
from tests.support.tiny_model import TinyModelSpec

from partyflow import Engine, Workflow
from partyflow.config import Home
from partyflow.llm.config import ProvidersConfig
from partyflow.llm.errors import InvalidRequestError, ProviderConfigError
from partyflow.llm.models import ModelManager
from partyflow.llm.providers import create
from partyflow.llm.providers.llamacpp import LlamaCppProvider
from partyflow.llm.types import ChatRequest, ImagePart, SystemMessage, TextPart, UserMessage


def picture(width: int = 48, height: int = 40, colour: tuple[int, int, int] = (200, 30, 30)) -> ImagePart:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return ImagePart.from_bytes(out.getvalue(), "image/png")


def ask(*images: ImagePart, text: str = "What is in these pictures?") -> ChatRequest:
    content = (TextPart(text=text), *images) if images else text
    return ChatRequest(messages=(SystemMessage(content="Answer briefly."), UserMessage(content=content)),
                       max_tokens=6, temperature=0)


@pytest.fixture(scope="module")
def mmproj(gguf_home: Home, tiny_gguf: TinyGGUF) -> Path:
    return build_tiny_mmproj(gguf_home.models / "gguf" / "tiny-mmproj.gguf", text_width=TinyModelSpec().hidden_size)


def make(home: Home, manager: ModelManager | None = None, **fields: Any) -> LlamaCppProvider:
    table = {"type": "llamacpp", "path": "tiny.gguf", "n_ctx": 512, "n_threads": 1, **fields}
    config = ProvidersConfig.from_mapping({"providers": {"eyes": table}}, environ={})
    return create("eyes", config, home=home, manager=manager)  # type: ignore[return-value]


@pytest.fixture(scope="module")
def provider(gguf_home: Home, mmproj: Path) -> LlamaCppProvider:
    return make(gguf_home, mmproj="tiny-mmproj.gguf")


def test_images_are_encoded_into_the_context(provider: LlamaCppProvider) -> None:
    text_only = provider.chat(ask())
    two = provider.chat(ask(picture(), picture(30, 60, (20, 200, 20))))
    assert two.usage.prompt_tokens - text_only.usage.prompt_tokens == 2 * IMAGE_TOKENS
    assert two.usage.completion_tokens <= 6 and two.provider == "eyes"
    assert provider.model().projector is not None


def test_greedy_replies_repeat_and_text_after_images_starts_afresh(gguf_home: Home,
                                                                   provider: LlamaCppProvider) -> None:
    with_images = ask(picture(), picture(90, 20, (0, 0, 250)))
    first = provider.chat(with_images)
    assert provider.chat(with_images).text == first.text
    streamed = list(provider.stream(with_images))
    assert streamed[-1].response is not None and streamed[-1].response.text == first.text
    # The same words without the images must not reuse the context: the positions the images took hold image
    # embeddings, while llama.cpp's prefix cache compares token ids only. The whole prompt is evaluated again.
    loaded = provider.model()
    evaluated: list[int] = []
    real_eval = loaded.llama.eval
    loaded.llama.eval = lambda tokens: (evaluated.append(len(tokens)), real_eval(tokens))[1]
    try:
        alone = provider.chat(ask(text="What is in these pictures?"))
    finally:
        del loaded.llama.eval
    assert evaluated[0] == alone.usage.prompt_tokens
    fresh = make(gguf_home, mmproj="tiny-mmproj.gguf")
    assert alone.text == fresh.chat(ask(text="What is in these pictures?")).text
    fresh.close()


def test_limits_and_missing_projector_are_clear(gguf_home: Home, provider: LlamaCppProvider, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="the request has 9 images; this local model takes up to 8"):
        provider.chat(ask(*[picture() for _ in range(9)]))
    with pytest.raises(InvalidRequestError, match="image 1: a local model does not fetch image URLs"):
        provider.chat(ask(ImagePart(url="https://example.com/cat.png")))
    text_only = make(gguf_home)
    with pytest.raises(ProviderConfigError, match="takes text only; the request has images"):
        text_only.chat(ask(picture()))
    text_only.close()
    (gguf_home.models / "gguf" / "not-a-projector.gguf").write_bytes(b"nope")
    with pytest.raises(ProviderConfigError, match="is not a GGUF file"):
        make(gguf_home, mmproj="not-a-projector.gguf").model()
    with pytest.raises(ProviderConfigError, match="leaves"):
        make(gguf_home, mmproj="../../outside.gguf")


def test_the_gguf_loader_node_takes_a_projector_for_the_chat_node(gguf_home: Home, mmproj: Path) -> None:
    data = base64.b64decode(picture().url.split(",", 1)[1])
    (gguf_home.input / "photo.png").write_bytes(data)
    with Engine(home=gguf_home.root, load_custom_nodes=False) as engine:
        wf = Workflow(engine)
        model = wf.GGUFModelLoader(gguf_file="tiny.gguf", n_ctx=512, threads=1, mmproj="tiny-mmproj.gguf").model
        chat = wf.LLMChat(model=model, system_prompt="Describe.", user_prompt="What is this?",
                          images=wf.LoadImage(image="photo.png").IMAGE, temperature=0.0, max_tokens=4)
        wf.DisplayText(text=chat.text)
        result = engine.run(wf)
        assert result.ok, result.error
        assert result[chat].usage["prompt_tokens"] > IMAGE_TOKENS
