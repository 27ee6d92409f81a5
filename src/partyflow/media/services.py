"""Images, speech and transcription through OpenAI-compatible APIs, and offline speech with espeak-ng.

Each function takes a configured provider (its base URL and key variable, never a key in a workflow) and returns
partyflow's media values: IMAGE batches and AUDIO dicts in ComfyUI's shapes. Errors name what to fix: a provider
that refuses images or speech, an image too large, a format the API does not take, a missing espeak-ng.

With a `Meter` on the endpoint every API call is budget-checked and written to the usage ledger like a chat call
(issue 13): the row is `unfinished` before the request, then `ok` with its cost from the price table (per image by
size and quality, per 1000 characters spoken, per minute transcribed) and a note saying what was bought, or
`error` with the reason.
"""

from __future__ import annotations

import asyncio
import base64
import io
import shutil
import tempfile
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from partyflow.media.images import encode_png, load_image, require_torch
from partyflow.telemetry.tracing import active as active_tracing

if TYPE_CHECKING:
    from partyflow.llm.usage.meter import Meter
    from partyflow.llm.usage.prices import Price

MAX_INPUT_IMAGE_BYTES = 50 * 1024 * 1024  # the Images API's own limit for edits
SPEECH_FORMATS = ("wav", "mp3", "flac", "opus", "aac", "pcm")


class MediaServiceError(RuntimeError):
    """A media call that cannot be made or failed; the message says which provider and what to change."""


@dataclass(frozen=True)
class Endpoint:
    """Where an OpenAI-compatible media API lives: from a provider of config.toml."""

    provider: str
    base_url: str | None
    api_key: str | None
    timeout: float = 120.0
    meter: Meter | None = None  # budgets and the usage ledger; None: calls are not recorded

    @classmethod
    def of(cls, config: Any, meter: Meter | None = None) -> Endpoint:
        return cls(config.name, config.base_url, config.api_key(), float(config.timeout), meter)

    def client(self) -> Any:
        """One client per endpoint and event loop, kept with the loop: building one (an HTTP pool and TLS
        settings) costs more than a loopback call, and a client cannot move between loops."""
        import openai

        from partyflow.llm.providers.openai_compat import tls_context

        clients = _CLIENTS.setdefault(asyncio.get_running_loop(), {})
        key = (self.base_url, self.api_key, self.timeout)
        if key not in clients:
            clients[key] = openai.AsyncOpenAI(
                base_url=self.base_url, api_key=self.api_key or "not-needed", timeout=self.timeout, max_retries=2,
                http_client=openai.DefaultAsyncHttpxClient(verify=tls_context()))
        return clients[key]


_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], Any]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Charge:
    """What one media call bought, for its ledger row: the cost (None when the model has no such price), a note
    saying what was bought, and tokens where the API reports them (gpt-image-1 does)."""

    cost: float | None
    note: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


Pricer = Callable[[Any, "Price | None"], Charge]


async def _call(endpoint: Endpoint, what: str, make: Callable[[Any], Awaitable[Any]], *, model: str,
                charge: Pricer, output: str = "image", text: str | None = None) -> Any:
    """One API call; a span (GenAI conventions: `generate_content`, with the output type) when the engine traces.
    `text` (a prompt, or words to speak) goes in the span only with `[telemetry] capture_content`."""
    tracing = active_tracing()
    if tracing is None:
        return await _send(endpoint, what, make, model=model, charge=charge)
    from partyflow.llm.tracing import CallTracer, genai_provider, server_of

    tracer = CallTracer(tracing, provider=endpoint.provider, secrets=(endpoint.api_key,),
                        system=genai_provider("openai_compat", endpoint.base_url, endpoint.provider),
                        attributes=server_of(endpoint.base_url))
    with tracer.call("generate_content", model, {"gen_ai.output.type": output, "partyflow.media.task": what}) as span:
        if text:
            tracer.content(span, "gen_ai.input.messages", [{"role": "user", "parts": [{"type": "text",
                                                                                        "content": text}]}])
        return await _send(endpoint, what, make, model=model, charge=charge)


async def _send(endpoint: Endpoint, what: str, make: Callable[[Any], Awaitable[Any]], *, model: str,
                charge: Pricer) -> Any:
    """One API call, metered when the endpoint has a meter; the SDK's errors become `MediaServiceError`s."""
    import openai

    meter = endpoint.meter
    call_id = None
    if meter is not None:
        meter.check(provider=endpoint.provider)  # a spent budget refuses the call before anything is sent
        call_id = meter.ledger.begin(endpoint.provider, model, meter.labels, router=meter.router)
    started = time.perf_counter()
    try:
        response = await make(endpoint.client())
    except BaseException as exc:
        failure = exc
        if isinstance(exc, openai.APIStatusError):
            failure = MediaServiceError(f"provider {endpoint.provider!r} refused the {what} request "
                                        f"({exc.status_code}): {exc.message}")
        elif isinstance(exc, openai.APIConnectionError):
            failure = MediaServiceError(f"provider {endpoint.provider!r} cannot be reached for {what}: {exc}")
        if meter is not None and call_id is not None:
            outcome = "error" if isinstance(exc, Exception) else "unfinished"  # cancelled: never completed
            meter.ledger.finish(call_id, outcome, latency=time.perf_counter() - started,
                                error=f"{what}: {failure}"[:500])
        if failure is exc:
            raise
        raise failure from None
    if meter is not None and call_id is not None:
        bought = charge(response, meter.prices.get(model))
        meter.ledger.finish(call_id, "ok", prompt_tokens=bought.prompt_tokens,
                            completion_tokens=bought.completion_tokens, cost=bought.cost,
                            latency=time.perf_counter() - started, note=bought.note)
    return response


def _image_charge(what: str, size: str, quality: str | None) -> Pricer:
    def charge(response: Any, price: Price | None) -> Charge:
        count = len(response.data or ())
        usage = getattr(response, "usage", None)
        tokens_in = int(getattr(usage, "input_tokens", 0) or 0)
        tokens_out = int(getattr(usage, "output_tokens", 0) or 0)
        label = f"{what}: {count} x {size}" + (f" {quality}" if quality else "")
        return Charge(price.image_cost(count, size, quality) if price else None, label, tokens_in, tokens_out)
    return charge


# ---- images --------------------------------------------------------------------------------------------------


async def generate_images(endpoint: Endpoint, prompt: str, *, model: str, size: str = "1024x1024",
                          quality: str | None = None, n: int = 1, seed: int | None = None) -> Any:
    """`images.generate` -> an IMAGE batch `[n,H,W,3]` (every image at the first one's size)."""
    if not prompt.strip():
        raise MediaServiceError("give a prompt describing the image")
    options: dict[str, Any] = {"model": model, "prompt": prompt, "n": n, "size": size, "response_format": "b64_json"}
    if quality:
        options["quality"] = quality
    if seed is not None:
        options["extra_body"] = {"seed": seed}  # honoured by providers that support seeds, ignored by others
    response = await _call(endpoint, "image generation", lambda c: c.images.generate(**options), model=model,
                           charge=_image_charge("image generation", size, quality), text=prompt)
    return await _images_of(response, endpoint)


async def edit_images(endpoint: Endpoint, image: Any, prompt: str, *, model: str, mask: Any | None = None,
                      size: str = "1024x1024", n: int = 1) -> Any:
    """`images.edit`: the first image of a batch changed as the prompt says (where `mask` is 1, when given)."""
    picture = _png_upload(image, "image.png")
    options: dict[str, Any] = {"model": model, "image": picture, "prompt": prompt, "n": n, "size": size,
                               "response_format": "b64_json"}
    if mask is not None:
        options["mask"] = _png_upload(_mask_as_alpha(image, mask), "mask.png", raw=True)
    response = await _call(endpoint, "image edit", lambda c: c.images.edit(**options), model=model,
                           charge=_image_charge("image edit", size, None), text=prompt)
    return await _images_of(response, endpoint)


async def image_variations(endpoint: Endpoint, image: Any, *, model: str, size: str = "1024x1024", n: int = 1) -> Any:
    picture = _png_upload(image, "image.png")
    response = await _call(endpoint, "image variation", lambda c: c.images.create_variation(
        model=model, image=picture, n=n, size=size, response_format="b64_json"), model=model,
        charge=_image_charge("image variation", size, None))
    return await _images_of(response, endpoint)


def _png_upload(image: Any, name: str, *, raw: bool = False) -> tuple[str, bytes, str]:
    data = image if raw else encode_png(image[:1] if image.ndim == 4 else image)
    if len(data) > MAX_INPUT_IMAGE_BYTES:
        raise MediaServiceError(f"the image is {len(data) // (1024 * 1024)} MiB as PNG; the Images API takes up to "
                                f"{MAX_INPUT_IMAGE_BYTES // (1024 * 1024)} MiB: scale it down first")
    return (name, data, "image/png")


def _mask_as_alpha(image: Any, mask: Any) -> bytes:
    """The API's mask is a PNG whose transparent pixels mark what to change; ComfyUI's MASK is 1 there."""
    import numpy as np
    from PIL import Image

    height, width = image.shape[1:3] if image.ndim == 4 else image.shape[0:2]
    plane = mask[0] if mask.ndim == 3 else mask
    if tuple(plane.shape) != (height, width):
        raise MediaServiceError(f"the mask is {tuple(plane.shape)} but the image is {(height, width)}: give a mask of "
                                "the image's size")
    alpha = (255 * (1.0 - plane.detach().cpu().float().numpy().clip(0, 1))).astype(np.uint8)
    rgba = np.zeros((height, width, 4), dtype=np.uint8)
    rgba[..., 3] = alpha
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, format="PNG")
    return out.getvalue()


async def _images_of(response: Any, endpoint: Endpoint) -> Any:
    torch = require_torch()
    frames = []
    for item in response.data or ():
        if item.b64_json:
            data = base64.b64decode(item.b64_json)
        elif item.url:
            data = await _download(item.url, endpoint)
        else:
            continue
        image, _ = load_image(data)
        frames.append(image)
    if not frames:
        raise MediaServiceError(f"provider {endpoint.provider!r} returned no image")
    first = frames[0].shape[1:3]
    return torch.cat([f for f in frames if f.shape[1:3] == first], dim=0)


async def _download(url: str, endpoint: Endpoint) -> bytes:
    import httpx

    async with httpx.AsyncClient(timeout=endpoint.timeout) as client:
        response = await client.get(url)
        response.raise_for_status()
        return response.content


# ---- speech out ----------------------------------------------------------------------------------------------


async def speak_api(endpoint: Endpoint, text: str, *, model: str, voice: str, speed: float = 1.0) -> dict[str, Any]:
    """`audio.speech` as WAV -> AUDIO."""
    if not text.strip():
        raise MediaServiceError("there is no text to speak")
    characters = len(text)
    response = await _call(endpoint, "speech", lambda c: c.audio.speech.create(
        model=model, voice=voice, input=text, response_format="wav", speed=speed), model=model,
        charge=lambda _, price: Charge(price.speech_cost(characters) if price else None,
                                       f"speech: {characters} characters"), output="speech", text=text)
    return decode_wav(response.content, endpoint.provider)


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


async def speak_offline(text: str, *, voice: str = "en", words_per_minute: int = 160) -> dict[str, Any]:
    """espeak-ng (no model, no network) -> AUDIO."""
    if not text.strip():
        raise MediaServiceError("there is no text to speak")
    program = shutil.which("espeak-ng")
    if program is None:
        raise MediaServiceError("offline speech needs espeak-ng: apt-get install espeak-ng (or brew install espeak-ng)")
    with tempfile.TemporaryDirectory(prefix="partyflow-speech-") as folder:
        target = Path(folder) / "speech.wav"
        process = await asyncio.create_subprocess_exec(
            program, "-v", voice, "-s", str(int(words_per_minute)), "-w", str(target), "--stdin",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, errors = await process.communicate(text.encode())
        if process.returncode != 0 or not target.exists():
            raise MediaServiceError(f"espeak-ng failed for voice {voice!r}: {errors.decode(errors='replace').strip()} "
                                    "(espeak-ng --voices lists the voices)")
        return decode_wav(target.read_bytes(), "espeak-ng")


def decode_wav(data: bytes, source: str) -> dict[str, Any]:
    """WAV bytes -> AUDIO, in memory; a clear error for anything else (some servers answer MP3 whatever was
    asked)."""
    import wave

    import numpy as np

    from partyflow.media.audio import _pcm_to_float

    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise MediaServiceError(f"{source} did not return WAV audio (got {data[:4]!r}...)")
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            channels, width, rate = reader.getnchannels(), reader.getsampwidth(), reader.getframerate()
            raw = reader.readframes(reader.getnframes())
    except (wave.Error, EOFError) as exc:
        raise MediaServiceError(f"{source} returned a WAV file that cannot be read: {exc}") from None
    samples = _pcm_to_float(raw, width).reshape(-1, channels).T
    if samples.shape[-1] == 0:
        raise MediaServiceError(f"{source} returned silence (no samples)")
    torch = require_torch()
    return {"waveform": torch.from_numpy(np.ascontiguousarray(samples)).unsqueeze(0), "sample_rate": rate}


# ---- speech in -----------------------------------------------------------------------------------------------


async def transcribe(endpoint: Endpoint, audio: dict[str, Any], *, model: str, language: str | None = None,
                     translate: bool = False, prompt: str | None = None) -> dict[str, Any]:
    """`audio.transcriptions` (or `translations`, into English) -> {"text", "language", "segments": [...]}."""
    from partyflow.media.audio import encode_audio

    waveform = audio.get("waveform") if isinstance(audio, dict) else None
    if waveform is None or waveform.shape[-1] == 0:
        raise MediaServiceError("the audio is empty")
    if float(waveform.abs().max()) < 1e-4:
        raise MediaServiceError("the audio is silent: there is nothing to transcribe")
    data, _ = encode_audio(waveform[0], int(audio["sample_rate"]), "wav")
    seconds = waveform.shape[-1] / int(audio["sample_rate"])
    kind = "translation" if translate else "transcription"

    def charge(_: Any, price: Price | None) -> Charge:
        return Charge(price.transcription_cost(seconds) if price else None, f"{kind}: {seconds:.1f} s of audio")

    upload = ("audio.wav", data, "audio/wav")
    options: dict[str, Any] = {"model": model, "file": upload, "response_format": "verbose_json"}
    if prompt:
        options["prompt"] = prompt
    if translate:
        response = await _call(endpoint, "translation", lambda c: c.audio.translations.create(**options),
                               model=model, charge=charge, output="text")
    else:
        if language:
            options["language"] = language
        options["timestamp_granularities"] = ["segment"]
        response = await _call(endpoint, "transcription", lambda c: c.audio.transcriptions.create(**options),
                               model=model, charge=charge, output="text")
    segments = [{"start": float(s.start), "end": float(s.end), "text": s.text}
                for s in (getattr(response, "segments", None) or ())]
    return {"text": response.text, "language": getattr(response, "language", None) or language,
            "duration": getattr(response, "duration", None), "segments": segments}
