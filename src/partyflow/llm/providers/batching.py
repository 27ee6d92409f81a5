"""Dynamic batching for a local transformers model: chat requests that arrive together are generated together.

On a CPU (or a GPU) one decoding step for 32 sequences costs little more than for one: the step is dominated by
per-step overhead and by reading the weights, not by the arithmetic of each row. So concurrent requests to one
model are queued, and a worker thread per model takes everything queued (up to `max_rows` rows and a KV-cache
memory budget) into one left-padded `generate` call whenever the model is free; requests that arrive meanwhile
form the next batch. Nothing waits for a batch to fill: a lone request runs at once.

Each row's reply is exactly what the same request alone would give:
- the attention mask hides the padding and `generate` derives position ids from it;
- decoding is greedy per row; a row with a temperature gets its own seeded Gumbel noise (the same numbers, from
  its own generator, as the sequential path draws), so seeded sampling reproduces too;
- rows generate up to the longest budget of the batch and are cut back to their own budget and their first end
  token, which is where their own `generate` would have stopped (greedy decoding is prefix-consistent).

Requests the batch cannot reproduce exactly (stop strings, which end generation mid-way; extra `generate`
options) and streams take the sequential path under the model's lock, which the worker also holds while it runs.
The worker exits after a short idle time, so no thread outlives the traffic.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

IDLE_EXIT_S = 2.0
DEFAULT_MAX_ROWS = 32
DEFAULT_KV_BUDGET = 1 << 30  # bytes of KV cache one batch may hold


@dataclass(eq=False)
class BatchItem:
    """One request waiting for a batch: its prompt tokens, its budget and its sampler settings."""

    ids: list[int]
    max_new_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    generator: Any = None  # a seeded torch.Generator when sampling
    future: Future[Any] = field(default_factory=Future)


@dataclass(eq=False)
class BatchRunner:
    """The queue and worker of one loaded model. `lock` is the model's own lock (shared with the sequential path)."""

    model: Any
    tokenizer: Any
    device: str
    lock: threading.Lock
    end_ids: frozenset[int]
    pad_id: int
    max_rows: int = DEFAULT_MAX_ROWS
    kv_budget: int = DEFAULT_KV_BUDGET
    batches: int = 0  # how many batches ran (for tests and reports)
    largest: int = 0  # the most rows one batch had
    _queue: list[BatchItem] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _worker: threading.Thread | None = None

    def submit(self, item: BatchItem) -> Future[Any]:
        """Queue `item`; its future gets the new tokens (a 1-D tensor, as the sequential path returns)."""
        with self._cond:
            self._queue.append(item)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._main, name="partyflow-batch", daemon=True)
                self._worker.start()
            self._cond.notify()
        return item.future

    def kv_bytes_per_token(self) -> int:
        """Bytes of KV cache one token of one row holds: keys and values of every layer's KV heads."""
        config = self.model.config
        layers = int(getattr(config, "num_hidden_layers", 1) or 1)
        heads = int(getattr(config, "num_attention_heads", 1) or 1)
        kv_heads = int(getattr(config, "num_key_value_heads", heads) or heads)
        head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
        element = next(self.model.parameters()).element_size()
        return 2 * layers * kv_heads * head_dim * element

    # --- the worker --------------------------------------------------------------------------------------------

    def _main(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._cond.wait_for(lambda: bool(self._queue), timeout=IDLE_EXIT_S):
                    self._worker = None
                    return
            with self.lock:  # the model is free: take everything queued by now that fits
                batch = self._take()
                if batch:
                    self._run(batch)

    def _take(self) -> list[BatchItem]:
        per_token = self.kv_bytes_per_token()
        with self._cond:
            taken: list[BatchItem] = []
            for item in list(self._queue):
                rows = len(taken) + 1
                longest = max([len(i.ids) + i.max_new_tokens for i in taken] + [len(item.ids) + item.max_new_tokens])
                if taken and (rows > self.max_rows or rows * longest * per_token > self.kv_budget):
                    break
                taken.append(item)
                self._queue.remove(item)
            return taken

    def _run(self, batch: Sequence[BatchItem]) -> None:
        live = [item for item in batch if item.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            outputs = self._generate(live)
        except BaseException as exc:  # every waiting request gets the failure, in its own thread
            for item in live:
                item.future.set_exception(exc)
            return
        self.batches += 1
        self.largest = max(self.largest, len(live))
        for item, output in zip(live, outputs, strict=True):
            item.future.set_result(output)

    def _generate(self, batch: Sequence[BatchItem]) -> list[Any]:
        torch = importlib.import_module("torch")
        transformers = importlib.import_module("transformers")
        longest = max(len(item.ids) for item in batch)
        ids = [[self.pad_id] * (longest - len(item.ids)) + item.ids for item in batch]
        mask = [[0] * (longest - len(item.ids)) + [1] * len(item.ids) for item in batch]
        input_ids = torch.tensor(ids, dtype=torch.long, device=self.device)
        attention_mask = torch.tensor(mask, dtype=torch.long, device=self.device)
        processors = []
        if any(item.temperature for item in batch):
            processors.append(RowSamplers(tuple(batch)))
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                      max_new_tokens=max(item.max_new_tokens for item in batch), do_sample=False,
                                      pad_token_id=self.pad_id,
                                      logits_processor=transformers.LogitsProcessorList(processors))
        results = []
        for row, item in enumerate(batch):
            new = out[row, longest:][:item.max_new_tokens]
            results.append(new[:_end_of(new, self.end_ids)])
        return results


def _end_of(tokens: Any, end_ids: frozenset[int]) -> int:
    """How many tokens a row keeps: up to and including its first end token (where its own run would stop)."""
    for index, token in enumerate(tokens.tolist()):
        if token in end_ids:
            return index + 1
    return int(tokens.shape[0])


@dataclass(eq=False)
class RowSamplers:
    """Per-row sampling inside one batched greedy `generate`: rows with a temperature get Gumbel noise from their
    own generator (exactly as `_GumbelSampler` draws it for a single request); the others stay greedy."""

    items: tuple[BatchItem, ...]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        torch = importlib.import_module("torch")
        from partyflow.llm.providers.transformers_local import _top_p

        out = scores.float().clone()
        for row, item in enumerate(self.items):
            if not item.temperature:
                continue
            logits = scores[row:row + 1].float() / item.temperature
            if item.top_p is not None and item.top_p < 1:
                logits = _top_p(torch, logits, item.top_p)
            uniform = torch.rand(logits.shape, generator=item.generator, device="cpu").to(logits.device)
            gumbel = -torch.log(-torch.log(uniform.clamp(1e-10, 1.0 - 1e-7)))
            out[row:row + 1] = torch.log_softmax(logits, dim=-1) + gumbel
        return out
