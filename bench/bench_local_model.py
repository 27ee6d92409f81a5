"""Local model throughput: tokens/second through our transformers provider vs transformers' `generate` directly.

Both sides use the same loaded model object, the same prompt ids (from the chat template), greedy decoding and
the same number of new tokens (the end token is switched off so every run writes exactly NEW_TOKENS). The
provider's extra work per call is the template, the context check, decoding and tool-call parsing; streaming adds
a worker thread and a `TextIteratorStreamer`, so it is compared with `generate` driving the same streamer.
Two sizes: the test suite's tiny model, where per-call overhead weighs most, and a wider one. Runs alternate
between the sides so that drift on a shared machine hits both.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _support import Goal, parse_args, ratio, report_goals, show_table

# A script's path is bench/; the repo root is needed for tests.support.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

import torch  # noqa: E402
from tests.support.tiny_model import TinyModelSpec, build_tiny_model  # noqa: E402
from transformers import TextIteratorStreamer  # noqa: E402

from partyflow.config import Home  # noqa: E402
from partyflow.llm.config import ProvidersConfig  # noqa: E402
from partyflow.llm.providers import create  # noqa: E402
from partyflow.llm.providers.transformers_local import TransformersProvider  # noqa: E402
from partyflow.llm.types import ChatRequest, SystemMessage, UserMessage  # noqa: E402

NEW_TOKENS = 64
GOAL = 0.95
SIZES = {"tiny (h32, 2 layers)": TinyModelSpec(seed=0),
         "small (h256, 4 layers)": TinyModelSpec(hidden_size=256, layers=4)}
REQUEST = ChatRequest(messages=(SystemMessage(content="Answer briefly."),
                                UserMessage(content="How is the weather in Paris today?")),
                      max_tokens=NEW_TOKENS, temperature=0)


def direct_generate(provider: TransformersProvider) -> Callable[[], int]:
    """transformers alone: the same prompt ids, greedy, NEW_TOKENS new tokens, decoded like a reply."""
    local = provider.model()
    inputs = local.tokenizer.apply_chat_template(
        [{"role": "system", "content": "Answer briefly."},
         {"role": "user", "content": "How is the weather in Paris today?"}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True)
    start = inputs["input_ids"].shape[1]

    def run() -> int:
        with torch.inference_mode():
            out = local.model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False,
                                       pad_token_id=local.tokenizer.pad_token_id)
        local.tokenizer.decode(out[0, start:], skip_special_tokens=True)
        return int(out.shape[1] - start)

    def streamed() -> int:
        streamer = TextIteratorStreamer(local.tokenizer, skip_prompt=True, skip_special_tokens=True)
        result: list[Any] = []
        worker = threading.Thread(target=lambda: result.append(local.model.generate(
            **inputs, max_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=local.tokenizer.pad_token_id,
            streamer=streamer)))
        worker.start()
        for _ in streamer:
            pass
        worker.join()
        return int(result[0].shape[1] - start)

    run.streamed = streamed  # type: ignore[attr-defined]
    return run


def via_chat(provider: TransformersProvider) -> int:
    reply = provider.chat(REQUEST)
    assert reply.usage is not None
    return reply.usage.completion_tokens


def via_stream(provider: TransformersProvider) -> int:
    *_, last = provider.stream(REQUEST)
    assert last.response is not None and last.response.usage is not None
    return last.response.usage.completion_tokens


def tokens_per_second(actions: dict[str, Callable[[], int]], runs: int) -> dict[str, float]:
    """Median tokens/second per action; the actions take turns within each round."""
    samples: dict[str, list[float]] = {name: [] for name in actions}
    for round_ in range(runs + 1):
        for name, action in actions.items():
            started = time.perf_counter()
            tokens = action()
            seconds = time.perf_counter() - started
            assert tokens == NEW_TOKENS, f"{name} wrote {tokens} tokens, not {NEW_TOKENS}"
            if round_:  # the first round warms up
                samples[name].append(tokens / seconds)
    return {name: statistics.median(values) for name, values in samples.items()}


def provider_for(home: Home, folder: str) -> TransformersProvider:
    config = ProvidersConfig.from_mapping({"providers": {"bench": {"type": "transformers", "path": folder}}},
                                          environ={})
    provider = create("bench", config, home=home, device="cpu")
    provider.model().model.generation_config.eos_token_id = None  # every run writes exactly NEW_TOKENS
    return provider  # type: ignore[return-value]


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], runs=15)
    torch.set_num_threads(1)  # both sides alike; steadier on a shared machine
    rows, goals = [], []
    with tempfile.TemporaryDirectory(prefix="partyflow-bench-") as tmp:
        home = Home(Path(tmp)).ensure()
        for label, spec in SIZES.items():
            folder = f"m{spec.hidden_size}x{spec.layers}"
            build_tiny_model(home.models / "llm" / folder, spec)
            provider = provider_for(home, folder)
            direct = direct_generate(provider)
            speed = tokens_per_second({"generate": direct, "chat": lambda p=provider: via_chat(p),
                                       "generate+streamer": direct.streamed,  # type: ignore[attr-defined]
                                       "stream": lambda p=provider: via_stream(p)}, args.runs)
            for ours, peer in (("chat", "generate"), ("stream", "generate+streamer")):
                share = ratio(speed[ours], speed[peer])
                rows.append((label, f"{ours} vs {peer}", f"{speed[peer]:,.0f}", f"{speed[ours]:,.0f}", f"{share:.3f}x"))
                goals.append(Goal(f"{label}: {ours} >= {GOAL}x {peer}", share >= GOAL, f"{share:.3f}x"))
            cost = ratio(speed["stream"], speed["generate"])  # what streaming itself costs (no goal)
            rows.append((label, "stream vs generate (info)", f"{speed['generate']:,.0f}", f"{speed['stream']:,.0f}",
                         f"{cost:.3f}x"))
    show_table(f"Local model tokens/s ({NEW_TOKENS} new tokens, greedy, 1 CPU thread, median of {args.runs})",
               ("model", "ours vs peer", "peer tok/s", "ours tok/s", "ratio"), rows)
    return report_goals(goals, check=not args.no_check)


if __name__ == "__main__":
    sys.exit(main())
