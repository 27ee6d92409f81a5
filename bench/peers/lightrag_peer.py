"""LightRAG (lightrag-hku) on the knowledge benchmark's corpus: run by bench_knowledge.py with the Python of an
environment where lightrag-hku is installed (`--peer-python`), never imported by partyflow.

It talks to the benchmark's scripted OpenAI-compatible server for both its LLM and its embeddings (the server
answers /embeddings with the same all-MiniLM-L6-v2 model partyflow uses in-process). tiktoken, LightRAG's default
tokenizer, downloads its tables from the network on first use, so an offline word tokenizer is injected instead.
Prints one JSON object: index time, and per mode the chunk texts retrieved for each question and the latency.

    python lightrag_peer.py CORPUS QUESTIONS.json SERVER_URL WORKDIR
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import threading
import time
from pathlib import Path

import numpy as np
from lightrag import LightRAG, QueryParam
from lightrag.utils import EmbeddingFunc, Tokenizer
from openai import AsyncOpenAI

MODES = ("naive", "local", "global", "hybrid", "mix")
_PIECE = re.compile(r"\s+|\w+|[^\w\s]")


class WordTokenizer:
    """Words, punctuation marks and whitespace runs as tokens; decode(encode(text)) == text. Thread-safe."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._pieces: list[str] = []
        self._lock = threading.Lock()

    def encode(self, content: str) -> list[int]:
        out = []
        with self._lock:
            for piece in _PIECE.findall(content):
                if piece not in self._ids:
                    self._ids[piece] = len(self._pieces)
                    self._pieces.append(piece)
                out.append(self._ids[piece])
        return out

    def decode(self, tokens: list[int]) -> str:
        with self._lock:
            return "".join(self._pieces[t] for t in tokens)

    def __deepcopy__(self, memo: dict[int, object]) -> WordTokenizer:
        return self  # LightRAG deep-copies its settings; the vocabulary must stay shared


async def main() -> None:
    corpus, questions_file, url, workdir = sys.argv[1:5]
    questions = json.loads(Path(questions_file).read_text(encoding="utf-8"))
    client = AsyncOpenAI(base_url=url, api_key="bench", max_retries=0)

    async def llm(prompt, system_prompt=None, history_messages=None, **kwargs):
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else [])
        messages += list(history_messages or []) + [{"role": "user", "content": prompt}]
        reply = await client.chat.completions.create(model="tiny-chat", messages=messages, temperature=0)
        return reply.choices[0].message.content

    async def embed(texts, **kwargs):
        reply = await client.embeddings.create(model="minilm", input=list(texts))
        return np.array([item.embedding for item in reply.data], dtype=np.float32)

    rag = LightRAG(working_dir=workdir, llm_model_func=llm,
                   embedding_func=EmbeddingFunc(embedding_dim=384, max_token_size=512, func=embed),
                   tokenizer=Tokenizer("words", WordTokenizer()),
                   chunk_token_size=240, chunk_overlap_token_size=40)  # whitespace counts: ~120 words, as ours
    await rag.initialize_storages()
    files = sorted(Path(corpus).glob("*.md"))
    started = time.perf_counter()
    await rag.ainsert([f.read_text(encoding="utf-8") for f in files], file_paths=[str(f) for f in files])
    index_s = time.perf_counter() - started
    results: dict[str, list[dict[str, object]]] = {}
    for mode in MODES:
        rows = []
        for question in questions:
            begun = time.perf_counter()
            data = await rag.aquery_data(question, QueryParam(mode=mode, top_k=10, chunk_top_k=10))
            seconds = time.perf_counter() - begun
            chunks = [c.get("content", "") for c in (data.get("data") or {}).get("chunks", [])][:10]
            rows.append({"chunks": chunks, "seconds": seconds})
        results[mode] = rows
    await rag.finalize_storages()
    print(json.dumps({"index_s": index_s, "modes": results}))


if __name__ == "__main__":
    asyncio.run(main())
