"""Local vision-language models (issue 13): images into a transformers VLM through its processor, from the provider
and from the Chat and Agent nodes. The model is a tiny random LLaVA built offline (tests/support/tiny_vlm.py):
its words are meaningless, so the tests check that the images reach the model (the vision tower's input, the
prompt's image tokens), that greedy replies repeat, and that limits are enforced with clear errors."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
import torch
from PIL import Image
from tests.support.tiny_vlm import IMAGE_SIDE, IMAGE_TOKENS, build_tiny_vlm

from partyflow import Engine, Workflow
from partyflow.config import Home
from partyflow.llm.config import ProvidersConfig
from partyflow.llm.errors import InvalidRequestError
from partyflow.llm.providers import create
from partyflow.llm.providers.transformers_local import TransformersProvider, is_vision_folder
from partyflow.llm.providers.vision_local import ImageLimits, decode_image
from partyflow.llm.types import ChatRequest, ImagePart, SystemMessage, TextPart, UserMessage


def png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def picture(width: int = 64, height: int = 40, colour: tuple[int, int, int] = (200, 20, 20),
            detail: Any = "auto") -> ImagePart:
    return ImagePart.from_bytes(png(width, height, colour), "image/png", detail)


def ask(*images: ImagePart, text: str = "What is in these pictures?", **settings: Any) -> ChatRequest:
    content = (TextPart(text=text), *images) if images else text
    return ChatRequest(messages=(SystemMessage(content="Answer briefly."), UserMessage(content=content)),
                       max_tokens=6, temperature=0, **settings)


@pytest.fixture(scope="module")
def vlm_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    home = Home(tmp_path_factory.mktemp("vlm-home")).ensure()
    build_tiny_vlm(home.models / "llm" / "tiny-vlm")
    return home


@pytest.fixture(scope="module")
def provider(vlm_home: Home) -> TransformersProvider:
    config = ProvidersConfig.from_mapping({"providers": {"vlm": {"type": "transformers", "path": "tiny-vlm"}}},
                                          environ={})
    return create("vlm", config, home=vlm_home, device="cpu", dtype="float32")  # type: ignore[return-value]


class TowerInputs:
    """A forward hook on the vision tower: the pixel batches the model really looked at."""

    def __init__(self, model: Any) -> None:
        self.shapes: list[tuple[int, ...]] = []
        tower = model.model.vision_tower if hasattr(model, "model") else model.vision_tower
        self.handle = tower.register_forward_hook(lambda module, args, kwargs, output: self.shapes.append(
            tuple((args[0] if args else kwargs["pixel_values"]).shape)), with_kwargs=True)

    def close(self) -> None:
        self.handle.remove()


def test_several_images_in_one_turn_reach_the_model(provider: TransformersProvider) -> None:
    local = provider.model()
    assert local.processor is not None and is_vision_folder(local.path)
    hook = TowerInputs(local.model)
    try:
        text_only = provider.chat(ask())
        two = provider.chat(ask(picture(), picture(20, 30, (10, 200, 10))))
    finally:
        hook.close()
    assert hook.shapes == [(2, 3, IMAGE_SIDE, IMAGE_SIDE)]  # both images, once, as the processor sized them
    # each image placeholder became IMAGE_TOKENS prompt tokens; the words around them are the same
    images_text = len(local.tokenizer("What is in these pictures?", add_special_tokens=False)["input_ids"])
    assert images_text > 0
    assert two.usage.prompt_tokens - text_only.usage.prompt_tokens == 2 * IMAGE_TOKENS
    assert two.usage.completion_tokens <= 6 and two.provider == "vlm"


def test_greedy_replies_with_images_repeat(provider: TransformersProvider) -> None:
    request = ask(picture(), picture(90, 60, (0, 0, 255)))
    first, second = provider.chat(request), provider.chat(request)
    assert first.text == second.text and first.usage == second.usage
    streamed = list(provider.stream(request))
    assert streamed[-1].response is not None and streamed[-1].response.text == first.text


def test_async_chat_with_images_is_not_batched(provider: TransformersProvider) -> None:
    import asyncio

    request = ask(picture())
    reply = asyncio.run(provider.achat(request))
    assert reply.text == provider.chat(request).text


def test_image_limits_are_enforced_with_clear_errors(provider: TransformersProvider) -> None:
    with pytest.raises(InvalidRequestError, match="the request has 9 images; this local model takes up to 8"):
        provider.chat(ask(*[picture() for _ in range(9)]))
    with pytest.raises(InvalidRequestError, match="image 2: a local model does not fetch image URLs"):
        provider.chat(ask(picture(), ImagePart(url="https://example.com/cat.png")))
    broken = ImagePart(url="data:image/png;base64," + base64.b64encode(b"not a png").decode())
    with pytest.raises(InvalidRequestError, match="image 1: it is not an image Pillow can read"):
        provider.chat(ask(broken))
    with pytest.raises(InvalidRequestError, match="image 1: it has 3000x2000 pixels; the limit is 1,000,000"):
        decode_image(picture(3000, 2000), "vlm", "tiny-vlm", ImageLimits(max_pixels=1_000_000))


def test_large_images_are_scaled_by_detail_keeping_their_shape() -> None:
    large = (3000, 1000)
    assert decode_image(picture(*large, detail="low"), "vlm", "m").size == (512, 171)
    assert decode_image(picture(*large, detail="auto"), "vlm", "m").size == (1024, 341)
    assert decode_image(picture(*large, detail="high"), "vlm", "m").size == (2048, 683)
    assert decode_image(picture(300, 100, detail="high"), "vlm", "m").size == (300, 100)  # never enlarged


def test_chat_and_agent_nodes_send_images_to_a_local_vlm(vlm_home: Home) -> None:
    """The Chat node's images input and the Agent node's, from LoadImage, into the local model; the ledger
    records both calls."""
    Image.new("RGB", (80, 50), (250, 200, 0)).save(vlm_home.input / "screenshot.png")
    vlm_home.config_file.write_text('[providers.vlm]\ntype = "transformers"\npath = "tiny-vlm"\n')
    with Engine(home=vlm_home.root, load_custom_nodes=False) as engine:
        wf = Workflow(engine)
        model = wf.LocalModelLoader(folder="tiny-vlm", device="cpu", dtype="float32").model
        shot = wf.LoadImage(image="screenshot.png").IMAGE
        chat = wf.LLMChat(model=model, system_prompt="Describe.", user_prompt="What is on the screen?", images=shot,
                       temperature=0.0, max_tokens=5, stream=False)
        configured = wf.APIModelLoader(provider="vlm").model  # the agent through config.toml's provider
        agent = wf.Agent(model=configured, system_prompt="Describe.", task="What is on the screen?", images=shot,
                         max_steps=1, temperature=0.0)
        wf.DisplayText(text=chat.text)
        wf.DisplayText(text=agent.answer)
        result = engine.run(wf)
        assert result.ok, result.error
        assert result[chat].usage["prompt_tokens"] > IMAGE_TOKENS
        assert result[agent].usage["prompt_tokens"] > IMAGE_TOKENS
    from partyflow.llm.usage.ledger import UsageLedger

    with UsageLedger(vlm_home.state_db) as ledger:
        rows = [row for row in ledger.rows() if row["prompt_id"] == result.prompt_id]
    assert sorted(row["node_id"] for row in rows) == sorted([chat.id, agent.id])
    assert all(row["outcome"] == "ok" and row["prompt_tokens"] > IMAGE_TOKENS for row in rows)


def test_models_loaded_at_once_leave_later_loads_intact(vlm_home: Home) -> None:
    """transformers' loading swaps process-wide state; two loads in parallel threads (two loader nodes running at
    once, as the Chat and Agent nodes above do) must not leave it broken: a model loaded afterwards computes what
    it computed before."""
    import threading

    from tests.support.tiny_model import build_tiny_model

    from partyflow.llm.providers.transformers_local import load_local_model

    text_model = build_tiny_model(vlm_home.models / "llm" / "tiny-text")
    probe = torch.tensor([[5, 6, 7, 8, 9]])

    def logits() -> torch.Tensor:
        with torch.no_grad():
            return load_local_model(text_model, device="cpu", dtype="float32").model(input_ids=probe).logits

    before = logits()
    failures: list[BaseException] = []
    together = threading.Barrier(3)

    def load() -> None:
        try:
            together.wait()
            load_local_model(vlm_home.models / "llm" / "tiny-vlm", device="cpu", dtype="float32")
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert torch.equal(logits(), before)
