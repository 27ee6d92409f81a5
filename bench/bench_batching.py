"""Batched local inference (issue 18): 32 concurrent chats on one tiny transformers model, against sequential
`generate` calls of the same requests.

The peer is transformers' own `generate`, one request after the other (what a provider without batching does);
ours is the transformers provider receiving the 32 requests at once (from 32 threads), which its batch queue
generates together. Decoding is greedy and every reply must be identical to the sequential one (checked). The
figure is requests per second (median of `--runs`); goal >= 3x on this machine's cores.

On a shared, loaded machine torch's intra-op threads contend with other processes and the figure swings widely;
`OMP_NUM_THREADS=1` gives a steadier comparison (both peers then use one thread).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from _support import Goal, parse_args, report_goals, show_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support, when run as a script

from tests.support.tiny_model import TinyModelSpec, build_tiny_model  # noqa: E402

from partyflow.config import Home  # noqa: E402
from partyflow.llm.config import ProvidersConfig  # noqa: E402
from partyflow.llm.models import ModelManager  # noqa: E402
from partyflow.llm.providers import create  # noqa: E402
from partyflow.llm.types import ChatRequest, SystemMessage, UserMessage  # noqa: E402

CONCURRENT = 32
NEW_TOKENS = 32
GOAL = 3.0
PROMPTS = ["Hello, how are you today?", "The weather in Paris is sunny and warm.", "Call the tool with a JSON object",
           "Workflows are graphs of nodes; each node runs when its inputs are ready.", "Answer briefly."]


def request(index: int) -> ChatRequest:
    return ChatRequest(messages=(SystemMessage(content="You are a helpful assistant."),
                                 UserMessage(content=PROMPTS[index % len(PROMPTS)] + f" #{index}")),
                       max_tokens=NEW_TOKENS, temperature=0)


def main() -> int:
    args = parse_args(__doc__ or "", runs=3)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    with tempfile.TemporaryDirectory(prefix="partyflow-bench-batch-") as tmp:
        home = Home(Path(tmp)).ensure()
        build_tiny_model(home.models / "llm" / "tiny", TinyModelSpec(seed=0))
        manager = ModelManager(budget_bytes=1 << 30)
        config = ProvidersConfig.from_mapping({"providers": {"local": {"type": "transformers", "path": "tiny"}}},
                                              environ={})
        provider = create("local", config, home=home, manager=manager)
        local = provider.model()  # type: ignore[attr-defined]
        requests = [request(i) for i in range(CONCURRENT)]
        encoded = [provider._encode(local, r) for r in requests]  # type: ignore[attr-defined]

        def sequential() -> list[str]:
            """One generate after the other, in one worker thread like the batch queue's (torch's intra-op
            threads behave differently on the main thread of a loaded machine; the peers must not differ in
            that)."""
            texts: list[str] = []

            def run() -> None:
                for inputs in encoded:
                    with torch.inference_mode():
                        out = local.model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False,
                                                   pad_token_id=local.tokenizer.eos_token_id)
                    texts.append(local.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:],
                                                        skip_special_tokens=True))

            worker = threading.Thread(target=run)
            worker.start()
            worker.join()
            return texts

        def batched() -> list[str]:
            texts: list[str] = [""] * CONCURRENT
            start = threading.Barrier(CONCURRENT)

            def call(index: int) -> None:
                start.wait()
                texts[index] = provider.chat(requests[index]).text

            threads = [threading.Thread(target=call, args=(i,)) for i in range(CONCURRENT)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return texts

        expected = sequential()
        assert batched() == expected, "batched replies differ from sequential generate"
        seq_times, batch_times = [], []
        for _ in range(args.runs):
            started = time.perf_counter()
            assert sequential() == expected
            seq_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            assert batched() == expected
            batch_times.append(time.perf_counter() - started)
        runner = local.batcher
    seq, bat = statistics.median(seq_times), statistics.median(batch_times)
    speedup = seq / bat
    show_table(f"{CONCURRENT} chats of {NEW_TOKENS} greedy tokens on a tiny transformers model "
               f"({torch.get_num_threads()} torch threads)",
               ["path", "seconds", "requests/s", "speed-up"],
               [["sequential generate", f"{seq:.3f}", f"{CONCURRENT / seq:.1f}", "1.00x"],
                ["batched provider", f"{bat:.3f}", f"{CONCURRENT / bat:.1f}", f"{speedup:.2f}x"]])
    print(f"batches run: {runner.batches if runner else 0}, largest batch: {runner.largest if runner else 0} rows; "
          f"replies identical to sequential generate: yes")
    return report_goals([Goal(f"throughput >= {GOAL:g}x sequential", speedup >= GOAL, f"{speedup:.2f}x")],
                        check=not args.no_check)


if __name__ == "__main__":
    raise SystemExit(main())
