"""Text from images: Tesseract offline (through pytesseract), or any vision model through the chat layer.

Tesseract gives plain text, words with their boxes and confidences, or hOCR; languages are Tesseract's codes
(`eng`, `deu+eng`), and a language whose data is not installed is refused with the installed ones listed. The
vision route sends the image to a provider's chat model with a transcription instruction.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
from typing import Any, Literal

from partyflow.media.images import encode_png, image_to_pil

Layout = Literal["text", "words", "hocr"]
MAX_PIXELS = 40_000_000  # Tesseract slows to minutes beyond this; scale first
VISION_INSTRUCTION = ("Transcribe all text in this image exactly as written, keeping line breaks. Answer with the "
                      "text only, no commentary.")


class OCRError(RuntimeError):
    """OCR that cannot run: no Tesseract, a missing language, an image too large."""


def tesseract_available() -> bool:
    return shutil.which("tesseract") is not None


@functools.cache
def installed_languages() -> tuple[str, ...]:
    """Tesseract's language data, asked once per process (it runs `tesseract --list-langs`)."""
    import pytesseract

    return tuple(sorted(pytesseract.get_languages(config="")))


def ocr(picture: Any, *, languages: str = "eng", layout: Layout = "text", page_mode: int = 3) -> Any:
    """Tesseract on one image (a Pillow image, or an IMAGE tensor's first frame).

    `text` -> str; `words` -> [{"text", "confidence", "box": [x, y, w, h], "line", "block"}]; `hocr` -> str.
    """
    pytesseract = _pytesseract()
    image = picture if hasattr(picture, "convert") else image_to_pil(picture)
    if image.width * image.height > MAX_PIXELS:
        raise OCRError(f"the image has {image.width}x{image.height} pixels; OCR takes up to {MAX_PIXELS:,}: scale it "
                       "down first")
    wanted = [code for code in languages.split("+") if code]
    installed = installed_languages()
    missing = [code for code in wanted if code not in installed]
    if missing or not wanted:
        raise OCRError(f"Tesseract has no data for {'+'.join(missing) or '(no language)'}; installed: "
                       f"{', '.join(installed)} (Debian: apt-get install tesseract-ocr-<code>)")
    config = f"--psm {int(page_mode)}"
    lang = "+".join(wanted)
    if layout == "text":
        return pytesseract.image_to_string(image, lang=lang, config=config).strip()
    if layout == "hocr":
        return pytesseract.image_to_pdf_or_hocr(image, lang=lang, config=config, extension="hocr").decode()
    data = pytesseract.image_to_data(image, lang=lang, config=config, output_type=pytesseract.Output.DICT)
    return [{"text": text, "confidence": float(conf), "box": [left, top, width, height], "line": line,
             "block": block}
            for text, conf, left, top, width, height, line, block in zip(
                data["text"], data["conf"], data["left"], data["top"], data["width"], data["height"],
                data["line_num"], data["block_num"], strict=True)
            if str(text).strip()]


def _pytesseract() -> Any:
    if not tesseract_available():
        raise OCRError("OCR needs Tesseract: apt-get install tesseract-ocr (brew install tesseract on macOS)")
    try:
        import pytesseract
    except ImportError as exc:
        raise OCRError("OCR needs the pytesseract package: pip install 'partyflow[media]'") from exc
    return pytesseract


async def ocr_async(picture: Any, **options: Any) -> Any:
    """`ocr` in a thread: Tesseract takes a second per page, which an event loop must not wait for."""
    return await asyncio.to_thread(ocr, picture, **options)


async def vision_ocr(model: Any, picture: Any, *, model_name: str | None = None,
                     instruction: str = VISION_INSTRUCTION, detail: str = "high") -> str:
    """A vision chat model's transcription of an image (any provider whose model accepts images)."""
    from partyflow.llm.types import ChatRequest, ImagePart, TextPart, UserMessage

    data = encode_png(picture[:1] if getattr(picture, "ndim", 0) == 4 else picture)
    message = UserMessage(content=(TextPart(text=instruction), ImagePart.from_bytes(data, "image/png", detail)))
    reply = await model.achat(ChatRequest(messages=(message,), model=model_name, temperature=0))
    return (reply.text or "").strip()
