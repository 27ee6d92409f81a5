"""Media: the image and speech library calls against the raw `openai` client, and OCR against pytesseract.

(a) Overhead: one loopback server (the tests' scripted media server, real PNG and WAV payloads) answers both the
    raw `openai` client and partyflow's `generate_images` / `speak_api` (which add request checks, error mapping
    and decoding into ComfyUI's IMAGE / AUDIO tensors). Calls alternate; the table shows medians and the ratio
    (goal <= 1.05x). The raw calls decode the payload too (PNG -> Pillow, WAV -> samples), so both sides end with
    pixels or samples in memory.
    The metered rows add what a node call adds: a budget check and the usage-ledger row (two SQLite writes).
(b) OCR: pages per second of `partyflow.media.ocr.ocr` against `pytesseract.image_to_string` on the same rendered
    page (goal <= 1.05x: the language check and conversion must cost nothing next to Tesseract).
"""

from __future__ import annotations

import asyncio
import base64
import io
import statistics
import sys
import tempfile
import time
import wave
from pathlib import Path

import openai

from _support import Goal, parse_args, ratio, report_goals, show_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.media, when run as a script

from tests.media.test_media import KEY, MediaServer, _rendered  # noqa: E402

from partyflow.llm.usage.budgets import Budget  # noqa: E402
from partyflow.llm.usage.ledger import UsageLedger  # noqa: E402
from partyflow.llm.usage.meter import Meter  # noqa: E402
from partyflow.llm.usage.prices import Price, PriceTable  # noqa: E402
from partyflow.media.ocr import ocr  # noqa: E402
from partyflow.media.services import Endpoint, generate_images, speak_api  # noqa: E402

GOAL = 1.05


async def _raw_image(client: openai.AsyncOpenAI) -> object:
    from PIL import Image

    reply = await client.images.generate(model="gpt-image-1", prompt="a cat", n=1, size="1024x1024",
                                         response_format="b64_json")
    picture = Image.open(io.BytesIO(base64.b64decode(reply.data[0].b64_json)))
    picture.load()
    return picture


async def _raw_speech(client: openai.AsyncOpenAI) -> bytes:
    reply = await client.audio.speech.create(model="tts-1", voice="nova", input="hello", response_format="wav")
    with wave.open(io.BytesIO(reply.content)) as reader:
        return reader.readframes(reader.getnframes())


async def overhead(server: MediaServer, calls: int, ledger: UsageLedger) -> tuple[list[list[str]], list[Goal]]:
    endpoint = Endpoint("bench", server.url, KEY)
    meter = Meter(ledger, budgets=(Budget("bench", "provider", "bench", "day", max_cost=1e9),),
                  prices=PriceTable({"gpt-image-1": Price(per_image={"default": 0.04}),
                                     "tts-1": Price(per_1k_characters=0.015)}))
    metered = Endpoint("bench", server.url, KEY, meter=meter)
    raw = openai.AsyncOpenAI(base_url=server.url, api_key=KEY)
    cases = {
        "generate image": (lambda: _raw_image(raw),
                           lambda: generate_images(endpoint, "a cat", model="gpt-image-1")),
        "generate image (metered)": (lambda: _raw_image(raw),
                                     lambda: generate_images(metered, "a cat", model="gpt-image-1")),
        "speech": (lambda: _raw_speech(raw), lambda: speak_api(endpoint, "hello", model="tts-1", voice="nova")),
        "speech (metered)": (lambda: _raw_speech(raw),
                             lambda: speak_api(metered, "hello", model="tts-1", voice="nova")),
    }
    rows, goals = [], []
    for label, (plain, ours) in cases.items():
        samples: dict[str, list[float]] = {"raw": [], "ours": []}
        for _ in range(3):  # warm up connections and imports
            await plain()
            await ours()
        for _ in range(calls):
            for name, action in (("raw", plain), ("ours", ours)):
                started = time.perf_counter()
                await action()
                samples[name].append(time.perf_counter() - started)
        raw_ms, ours_ms = (statistics.median(samples[k]) * 1000 for k in ("raw", "ours"))
        measured = ratio(ours_ms, raw_ms)
        rows.append([label, f"{raw_ms:.2f}", f"{ours_ms:.2f}", f"{measured:.3f}x"])
        goals.append(Goal(f"{label} overhead", measured <= GOAL, f"{measured:.3f}x the raw client (goal <= {GOAL}x)"))
    await raw.close()
    return rows, goals


def ocr_rate(pages: int) -> tuple[list[list[str]], list[Goal]]:
    import pytesseract

    page = _rendered("The quick brown fox jumps over the lazy dog again")
    samples: dict[str, list[float]] = {"pytesseract": [], "partyflow": []}
    for _ in range(pages):
        for name, action in (("pytesseract", lambda: pytesseract.image_to_string(page, lang="eng")),
                             ("partyflow", lambda: ocr(page))):
            started = time.perf_counter()
            action()
            samples[name].append(time.perf_counter() - started)
    direct, ours = (statistics.median(samples[k]) for k in ("pytesseract", "partyflow"))
    measured = ratio(ours, direct)
    rows = [["pages per second", f"{1 / direct:.1f}", f"{1 / ours:.1f}", f"{measured:.3f}x"]]
    return rows, [Goal("OCR overhead", measured <= GOAL, f"{measured:.3f}x pytesseract's time per page")]


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], runs=30)
    server = MediaServer().start()
    try:
        with tempfile.TemporaryDirectory() as folder, UsageLedger(Path(folder) / "state.sqlite") as ledger:
            rows, goals = asyncio.run(overhead(server, args.runs, ledger))
    finally:
        server.stop()
    show_table(f"Media calls vs the raw openai client, loopback server (median of {args.runs} calls, ms)",
               ["call", "raw openai", "partyflow", "ratio"], rows)
    ocr_rows, ocr_goals = ocr_rate(max(5, args.runs // 3))
    show_table("OCR: partyflow.media.ocr vs pytesseract directly (median per page)",
               ["measure", "pytesseract", "partyflow", "time ratio"], ocr_rows)
    return report_goals([*goals, *ocr_goals], check=not args.no_check)


if __name__ == "__main__":
    raise SystemExit(main())
