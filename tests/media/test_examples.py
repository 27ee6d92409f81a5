"""The media examples (examples/media, issue 13 item 7) end to end: the provider `default` is the scripted
OpenAI-compatible loopback server answering with real PNG bytes; espeak-ng and Tesseract run for real."""

from __future__ import annotations

import base64
import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from tests.support.openai_server import OpenAIServer, Reply, text_stream
from tests.support.providers import openai_table

from partyflow import Engine

EXAMPLES = Path(__file__).parents[2] / "examples" / "media"
STORY = "A small robot found a brush. It painted the sea blue. The waves sang it to sleep."


def streamed(content: str) -> Reply:
    """A chat reply as the Chat node asks for it (streamed)."""
    words = content.split(" ")
    return Reply.stream(text_stream([w + " " for w in words[:-1]] + words[-1:]))


def image_reply(width: int = 96, height: int = 64) -> Reply:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 90, 200)).save(out, format="PNG")
    return Reply.json({"created": 1, "data": [{"b64_json": base64.b64encode(out.getvalue()).decode()}]})


def install_inputs(input_dir: Path) -> None:
    """What examples/media/README.md tells users to do: copy the sample pictures into the home's input/."""
    input_dir.mkdir(parents=True, exist_ok=True)
    for picture in (EXAMPLES / "input").iterdir():
        shutil.copy(picture, input_dir / picture.name)


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as live:
        yield live


@pytest.fixture(scope="module")
def engine(server: OpenAIServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    home = tmp_path_factory.mktemp("media-examples")
    (home / "config.toml").write_text(openai_table("default", server.url), encoding="utf-8")
    with Engine(home=home, load_custom_nodes=False) as engine:
        install_inputs(engine.home.input)
        yield engine


def test_a_story_is_written_illustrated_and_read_aloud(engine: Engine, server: OpenAIServer) -> None:
    server.reset()
    server.script(streamed(STORY), image_reply())
    result = engine.run(engine.load_workflow(EXAMPLES / "illustrated_story.json"))
    assert result.ok, result.error
    assert result.output("story") == STORY
    drawn = next(r for r in server.requests if r.path.endswith("/images/generations"))
    assert drawn.body["prompt"] == STORY and drawn.body["model"] == "gpt-image-1"
    saved = sorted(p.name for p in engine.home.output.iterdir() if p.name.startswith("story"))
    assert any(name.endswith(".png") for name in saved) and any(name.endswith((".flac", ".wav")) for name in saved)
    picture = next(p for p in engine.home.output.iterdir() if p.name.startswith("story") and p.suffix == ".png")
    assert Image.open(picture).size == (96, 64)


def test_a_question_about_a_screenshot_sends_the_image_and_its_text(engine: Engine, server: OpenAIServer) -> None:
    server.reset()
    server.script(streamed("Order 4711 has shipped and arrives on Friday."))
    result = engine.run(engine.load_workflow(EXAMPLES / "screenshot_qa.json"))
    assert result.ok, result.error
    assert result.output("answer") == "Order 4711 has shipped and arrives on Friday."
    chat = next(r for r in server.requests if r.path.endswith("/chat/completions"))
    parts = chat.body["messages"][-1]["content"]
    prompt = next(p["text"] for p in parts if p["type"] == "text")
    assert prompt.startswith("When does order 4711 arrive") and "4711 shipped Friday" in prompt  # Tesseract, real
    image = next(p["image_url"] for p in parts if p["type"] == "image_url")
    assert image["detail"] == "high" and image["url"].startswith("data:image/png;base64,")
    sent = Image.open(io.BytesIO(base64.b64decode(image["url"].split(",", 1)[1])))
    assert sent.size == Image.open(EXAMPLES / "input" / "screenshot.png").size


def test_a_scanned_page_goes_into_a_knowledge_base(engine: Engine, server: OpenAIServer) -> None:
    server.reset()
    result = engine.run(engine.load_workflow(EXAMPLES / "scanned_page_to_kb.json"))
    assert result.ok, result.error
    assert "Travel over 5000 EUR needs the CFO." in result.output("page_text")
    context = result.output("context")
    assert "CFO" in context and "scanned_page.png" in context
    assert not server.requests  # offline: Tesseract and the hash embedder, no model calls
