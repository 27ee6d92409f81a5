"""Multimodal (issue 13): image generation, speech and transcription through a scripted OpenAI-compatible server on
loopback that speaks the real wire formats and returns real PNG and WAV bytes; espeak-ng and Tesseract for real."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from PIL import Image, ImageDraw, ImageFont

from partyflow import Engine, Workflow
from partyflow.media.images import load_image
from partyflow.media.ocr import OCRError, ocr
from partyflow.media.services import Endpoint, MediaServiceError, speak_offline, transcribe

KEY = "sk-media-test"


def png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def wav(seconds: float = 0.5, rate: int = 16000) -> bytes:
    samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate) * 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    return out.getvalue()


@dataclass
class MediaServer:
    """/v1/images/{generations,edits,variations}, /v1/audio/{speech,transcriptions,translations}."""

    url: str = ""
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _stop: Any = None
    _loop: Any = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return web.json_response({"error": {"message": "bad key", "type": "invalid_request_error"}}, status=401)
        path = request.path
        if request.content_type == "application/json":
            body: dict[str, Any] = await request.json()
        else:
            form = await request.post()
            body = {k: (v.file.read() if hasattr(v, "file") else v) for k, v in form.items()}
        self.requests.append((path, body))
        if path.startswith("/v1/images/"):
            if body.get("prompt") == "refuse":
                return web.json_response({"error": {"message": "content policy", "type": "invalid_request_error"}},
                                         status=400)
            n = int(body.get("n", 1))
            return web.json_response({"created": 1, "data": [
                {"b64_json": base64.b64encode(png(64, 48, (200, 30 * i, 10))).decode()} for i in range(n)],
                "usage": {"input_tokens": 12, "output_tokens": 100 * n, "total_tokens": 12 + 100 * n,
                          "input_tokens_details": {"text_tokens": 12, "image_tokens": 0}}})
        if path == "/v1/audio/speech":
            return web.Response(body=wav(), content_type="audio/wav")
        if path in ("/v1/audio/transcriptions", "/v1/audio/translations"):
            assert body["file"][:4] == b"RIFF"
            return web.json_response({"task": "transcribe", "language": "english", "duration": 0.5,
                                      "text": "hello from the scripted server",
                                      "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": 0.5,
                                                    "text": "hello from the scripted server", "tokens": [1],
                                                    "temperature": 0.0, "avg_logprob": -0.1,
                                                    "compression_ratio": 1.0, "no_speech_prob": 0.0}]})
        return web.json_response({"error": {"message": "not found"}}, status=404)

    def start(self) -> MediaServer:
        ready = threading.Event()

        async def main() -> None:
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("POST", "/{tail:.*}", self.handle)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/v1"  # type: ignore[union-attr]
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            ready.set()
            await self._stop.wait()
            await runner.cleanup()

        threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
        assert ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)


@pytest.fixture(scope="module")
def server() -> Iterator[MediaServer]:
    live = MediaServer().start()
    yield live
    live.stop()


PRICES = """
[prices."gpt-image-1"]
per_image = { "1024x1024/high" = 0.17, "1024x1024" = 0.04, "default" = 0.06 }
[prices."tts-1"]
per_1k_characters = 0.015
[prices."whisper-1"]
per_minute = 0.006
"""


@pytest.fixture(scope="module")
def engine(server: MediaServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    import os

    home = tmp_path_factory.mktemp("media")
    (home / "config.toml").write_text(f'[providers.media]\ntype = "openai_compat"\nbase_url = "{server.url}"\n'
                                      f'api_key_env = "PF_MEDIA_KEY"\nmodel = "gpt-image-1"\n' + PRICES)
    os.environ["PF_MEDIA_KEY"] = KEY
    with Engine(home=home) as engine:
        yield engine
    os.environ.pop("PF_MEDIA_KEY", None)


def test_story_illustrated_and_read_aloud(engine: Engine, server: MediaServer) -> None:
    """The issue's first example: a story, an image drawn for it, the story read aloud — saved for the editor."""
    wf = Workflow(engine)
    story = wf.TextValue(value="A small robot learns to paint the sea.")
    painter = wf.APIModelLoader(provider="media", model="gpt-image-1")
    picture = wf.GenerateImage(model=painter.model, prompt=story.text, size="1024x1024", n=2)
    wf.SaveImage(images=picture.images, filename_prefix="story")
    voice = wf.SpeakOffline(text=story.text, voice="en", words_per_minute=170)
    wf.SaveAudio(audio=voice.audio, filename_prefix="story")
    result = engine.run(wf)
    assert result.ok, result.error
    images = result[picture].images
    assert tuple(images.shape) == (2, 48, 64, 3)
    generation = next(body for path, body in server.requests if path == "/v1/images/generations")
    assert generation["prompt"] == "A small robot learns to paint the sea." and generation["n"] == 2
    saved = [p.name for p in (engine.home.output).iterdir()]
    assert sum(name.startswith("story") and name.endswith(".png") for name in saved) == 2
    assert any(name.startswith("story") and name.endswith((".flac", ".wav")) for name in saved)
    audio = result[voice].audio
    assert audio["sample_rate"] == 22050 and audio["waveform"].shape[-1] > 22050  # over a second of real speech


def test_edit_with_mask_speech_and_transcription(engine: Engine, server: MediaServer) -> None:
    wf = Workflow(engine)
    loader = wf.APIModelLoader(provider="media", model="gpt-image-1")
    source = wf.GenerateImage(model=loader.model, prompt="a square", n=1)
    Image.new("RGBA", (64, 48), (0, 0, 0, 0)).save(engine.home.input / "clear.png")  # transparent: MASK = 1
    mask = wf.LoadImage(image="clear.png").MASK
    edit = wf.EditImage(model=loader.model, image=source.images, prompt="make it blue", mask=mask)
    wf.PreviewImage(images=edit.images)
    tts = wf.TextToSpeech(model=wf.APIModelLoader(provider="media", model="tts-1").model, text="hello", voice="nova")
    heard = wf.TranscribeAudio(model=wf.APIModelLoader(provider="media", model="whisper-1").model, audio=tts.audio,
                               language="en")
    wf.DisplayText(text=heard.text)
    result = engine.run(wf)
    assert result.ok, result.error
    edits = [body for path, body in server.requests if path == "/v1/images/edits"]
    assert edits and edits[-1]["prompt"] == "make it blue" and edits[-1]["image"][:8] == b"\x89PNG\r\n\x1a\n"
    alpha = np.asarray(Image.open(io.BytesIO(edits[-1]["mask"])))[..., 3]
    assert alpha.max() == 0  # MASK 1 everywhere = every pixel transparent = all may change
    speech = next(body for path, body in server.requests if path == "/v1/audio/speech")
    assert speech == {"model": "tts-1", "voice": "nova", "input": "hello", "response_format": "wav", "speed": 1.0}
    assert result[heard].text == "hello from the scripted server"
    assert result[heard].segments["segments"][0]["end"] == 0.5


def test_bad_input_is_named(engine: Engine, server: MediaServer) -> None:
    endpoint = Endpoint("media", server.url, KEY)
    torch = pytest.importorskip("torch")
    silent = {"waveform": torch.zeros(1, 1, 16000), "sample_rate": 16000}
    with pytest.raises(MediaServiceError, match="silent"):
        asyncio.run(transcribe(endpoint, silent, model="whisper-1"))
    wf = Workflow(engine)
    loader = wf.APIModelLoader(provider="media", model="gpt-image-1")
    wf.PreviewImage(images=wf.GenerateImage(model=loader.model, prompt="refuse").images)
    result = engine.run(wf)
    assert not result.ok and "provider 'media' refused the image generation request (400)" in result.error.message
    with pytest.raises(MediaServiceError, match="espeak-ng failed for voice 'xx-nonsense'"):
        asyncio.run(speak_offline("hi", voice="xx-nonsense"))


def _rendered(text: str) -> Image.Image:
    font = ImageFont.load_default(size=36)
    picture = Image.new("RGB", (40 + 22 * len(text), 110), "white")
    ImageDraw.Draw(picture).text((20, 30), text, fill="black", font=font)
    return picture


def test_ocr_reads_a_rendered_page_and_names_missing_languages(engine: Engine, tmp_path: Path) -> None:
    sentence = "Partyflow reads scanned pages offline"
    words = ocr(_rendered(sentence), layout="words")
    assert [w["text"] for w in words] == sentence.split()
    assert all(w["box"][2] > 0 and w["confidence"] > 50 for w in words)
    with pytest.raises(OCRError, match="Tesseract has no data for xyz; installed: eng"):
        ocr(_rendered(sentence), languages="xyz")
    page = engine.home.input / "page.png"
    _rendered(sentence).save(page)
    wf = Workflow(engine)
    image = wf.LoadImage(image="page.png")
    read = wf.OCRImage(image=image.IMAGE, languages="eng")
    wf.DisplayText(text=read.text)
    result = engine.run(wf)
    assert result.ok, result.error
    assert result[read].text.split() == sentence.split()


def test_speech_round_trip_through_tesseract(tmp_path: Path) -> None:
    """espeak-ng speaks a sentence; the same sentence rendered as an image is read back by Tesseract."""
    sentence = "the robot paints the sea"
    audio = asyncio.run(speak_offline(sentence))
    assert float(audio["waveform"].abs().max()) > 0.05
    assert ocr(_rendered(sentence)).lower().split() == sentence.split()


def test_image_sizes_round_trip(tmp_path: Path) -> None:
    image, mask = load_image(png(30, 20, (1, 2, 3)))
    assert tuple(image.shape) == (1, 20, 30, 3) and tuple(mask.shape) == (1, 20, 30)
    json.dumps({"ok": True})


def test_scanned_pages_go_into_a_knowledge_base(tmp_path: Path) -> None:
    """Issue 13's third example, offline: a scanned PDF (an image, no text layer) and a photo of a page are read by
    Tesseract on ingest, and the knowledge base answers from them."""
    import subprocess
    import sys

    from partyflow.knowledge.loaders import load_file

    folder = tmp_path / "scans"
    folder.mkdir()
    _rendered("Travel over 5000 EUR needs the CFO").save(folder / "policy.pdf")  # Pillow writes an image-only PDF
    _rendered("Badges are renewed every spring").save(folder / "badges.png")
    assert "CFO" in load_file(folder / "policy.pdf").text

    def kb(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "partyflow", "kb", *args, "--home", str(tmp_path / "home")],
                              capture_output=True, text=True, timeout=300)

    assert kb("create", "scans", "--embedder", "hash").returncode == 0
    ingested = kb("ingest", "scans", str(folder), "--json")
    assert ingested.returncode == 0, ingested.stderr
    found = json.loads(kb("query", "scans", "who approves travel", "--mode", "keyword", "--json").stdout)
    assert "CFO" in json.dumps(found) and "policy.pdf" in json.dumps(found)


def test_media_calls_are_spans_of_the_runs_trace(server: MediaServer, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 18, item 6: with [telemetry], image, speech and transcription calls are GenAI spans under their nodes."""
    from tests.support.otlp_receiver import OTLPReceiver

    monkeypatch.setenv("PF_MEDIA_KEY", KEY)
    with OTLPReceiver() as receiver:
        home = tmp_path / "home"
        home.mkdir()
        (home / "config.toml").write_text(
            f'[providers.media]\ntype = "openai_compat"\nbase_url = "{server.url}"\napi_key_env = "PF_MEDIA_KEY"\n'
            f'model = "gpt-image-1"\n[telemetry]\notlp_endpoint = "{receiver.url}"\n')
        with Engine(home=home, load_custom_nodes=False) as engine:
            wf = Workflow(engine)
            painter = wf.APIModelLoader(provider="media", model="gpt-image-1")
            wf.PreviewImage(images=wf.GenerateImage(model=painter.model, prompt="a lighthouse", n=1).images)
            tts = wf.TextToSpeech(model=wf.APIModelLoader(provider="media", model="tts-1").model, text="hello",
                                  voice="nova")
            heard = wf.TranscribeAudio(model=wf.APIModelLoader(provider="media", model="whisper-1").model,
                                       audio=tts.audio, language="en")
            wf.DisplayText(text=heard.text)
            assert engine.run(wf).ok
        spans = receiver.spans
    assert len({s.trace_id for s in spans}) == 1
    nodes = {s.span_id: s.attributes.get("partyflow.node.type") for s in spans if s.name.startswith("execute_node")}
    calls = {s.name: s for s in spans if s.attributes.get("gen_ai.operation.name") == "generate_content"}
    assert set(calls) == {"generate_content gpt-image-1", "generate_content tts-1", "generate_content whisper-1"}
    assert [(nodes[calls[name].parent_id], calls[name].attributes["gen_ai.output.type"]) for name in sorted(calls)] \
        == [("GenerateImage", "image"), ("TextToSpeech", "speech"), ("TranscribeAudio", "text")]
    assert all(c.attributes["gen_ai.request.model"] and c.kind == 3 and not c.failed for c in calls.values())
    assert not any("gen_ai.input.messages" in c.attributes for c in calls.values())  # capture_content is off


def test_media_calls_are_in_the_usage_ledger_with_their_cost(engine: Engine, server: MediaServer) -> None:
    """Image, speech and transcription calls are rows of the usage ledger like chat calls: provider, model, prompt,
    node, tokens where the API reports them, and the cost from the price table; `models usage` totals them."""
    import subprocess
    import sys

    from partyflow.llm.usage.ledger import UsageLedger

    wf = Workflow(engine)
    painter = wf.APIModelLoader(provider="media", model="gpt-image-1")
    drawn = wf.GenerateImage(model=painter.model, prompt="ledger test", size="1024x1024", n=2, quality="high")
    varied = wf.ImageVariations(model=painter.model, image=drawn.images, size="512x512")
    wf.PreviewImage(images=varied.images)
    text = "x" * 200
    tts = wf.TextToSpeech(model=wf.APIModelLoader(provider="media", model="tts-1").model, text=text)
    heard = wf.TranscribeAudio(model=wf.APIModelLoader(provider="media", model="whisper-1").model, audio=tts.audio)
    wf.DisplayText(text=heard.text)
    result = engine.run(wf)
    assert result.ok, result.error
    with UsageLedger(engine.home.state_db) as ledger:
        rows = [row for row in ledger.rows(1000) if row["prompt_id"] == result.prompt_id]
    by_note = {row["note"].split(":")[0]: row for row in rows}
    assert set(by_note) == {"image generation", "image variation", "speech", "transcription"}
    image = by_note["image generation"]
    assert (image["provider"], image["model"], image["outcome"]) == ("media", "gpt-image-1", "ok")
    assert image["note"] == "image generation: 2 x 1024x1024 high" and image["cost"] == pytest.approx(0.34)
    assert (image["prompt_tokens"], image["completion_tokens"]) == (12, 200)  # gpt-image-1 reports tokens
    assert image["node_id"] == drawn.id and image["latency"] > 0
    assert by_note["image variation"]["cost"] == pytest.approx(0.06)  # no 512x512 price: the default
    assert by_note["speech"]["cost"] == pytest.approx(200 * 0.015 / 1000)
    assert by_note["speech"]["note"] == "speech: 200 characters"
    assert by_note["transcription"]["cost"] == pytest.approx(0.5 / 60 * 0.006)  # the scripted WAV is 0.5 s
    assert by_note["transcription"]["note"] == "transcription: 0.5 s of audio"

    refused = Workflow(engine)
    refused.PreviewImage(images=refused.GenerateImage(model=refused.APIModelLoader(
        provider="media", model="gpt-image-1").model, prompt="refuse").images)
    failed = engine.run(refused)
    assert not failed.ok
    with UsageLedger(engine.home.state_db) as ledger:
        row = next(r for r in ledger.rows(1000) if r["prompt_id"] == failed.prompt_id)
    assert row["outcome"] == "error" and "content policy" in row["error"] and row["cost"] is None

    report = subprocess.run([sys.executable, "-m", "partyflow", "models", "usage", "--by", "model", "--json",
                             "--home", str(engine.home.root)], capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    totals = {row["key"]: row for row in json.loads(report.stdout)["rows"]}
    assert totals["gpt-image-1"]["cost"] >= 0.40 and totals["gpt-image-1"]["errors"] >= 1
    assert totals["whisper-1"]["calls"] >= 1 and totals["tts-1"]["cost"] > 0


def test_a_spent_budget_refuses_a_media_call_before_it_is_sent(server: MediaServer, tmp_path: Path) -> None:
    from partyflow.llm.errors import BudgetExceededError
    from partyflow.llm.usage.budgets import Budget
    from partyflow.llm.usage.ledger import UsageLedger
    from partyflow.llm.usage.meter import Meter
    from partyflow.llm.usage.prices import Price, PriceTable
    from partyflow.media.services import generate_images

    with UsageLedger(tmp_path / "state.sqlite") as ledger:
        meter = Meter(ledger, budgets=(Budget("images", "provider", "media", "day", max_cost=0.05),),
                      prices=PriceTable({"gpt-image-1": Price(per_image={"default": 0.04})}))
        endpoint = Endpoint("media", server.url, KEY, meter=meter)
        asyncio.run(generate_images(endpoint, "one", model="gpt-image-1", n=2))  # 0.08: the budget is now spent
        sent = len(server.requests)
        with pytest.raises(BudgetExceededError, match="spent"):
            asyncio.run(generate_images(endpoint, "two", model="gpt-image-1"))
        assert len(server.requests) == sent  # refused before anything was sent
        assert [row["cost"] for row in ledger.rows()] == [pytest.approx(0.08)]
