"""Socket types of the LLM pack, and the model handle that flows along `LLM_MODEL` links."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

LLM_MODEL = "LLM_MODEL"
"""A `ModelHandle`: which configured provider and model to call."""

LLM_HISTORY = "LLM_HISTORY"
"""A conversation: a JSON list of messages (`partyflow.llm.dump_messages` dicts), so it saves and pickles."""

TOOL = "TOOL"
"""One tool definition or a list of them: `partyflow.llm.Tool`, or dicts in our or OpenAI's shape."""

JSON = "JSON"
"""A JSON-compatible value, the same socket type as the core pack's JSON nodes use."""

EMBEDDINGS = "EMBEDDINGS"
"""A list of vectors (lists of floats), one per input text, in order."""


@dataclass(frozen=True)
class LocalModelSpec:
    """A model file or folder chosen by a local loader node, and how to run it.

    `options` are keyword settings for the provider (device and dtype, or context size and threads), kept as
    pairs so the spec stays hashable and picklable.
    """

    type: Literal["transformers", "llamacpp"]
    path: str
    options: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class ModelHandle:
    """A provider name and an optional model: never a key, so workflows, caches and history can hold it safely.

    An API handle names a provider of config.toml, created when a node calls it, so a changed config or key
    takes effect on the next run and nothing secret is pickled with node outputs. A local handle (`local` set)
    names a model under models/ instead, and may carry the provider its loader made (`live`). Under a partyflow
    engine that provider borrows the weights from the engine's model manager, which may unload them to stay in
    budget (the next call loads them again); elsewhere it holds them as long as the loader's output is cached,
    as ComfyUI's model loaders do. `live` is left out of comparisons and pickles; a handle unpickled elsewhere
    loads the model again on first use.
    """

    provider: str
    model: str | None = None
    local: LocalModelSpec | None = None
    live: Any = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.provider}/{self.model or '(default model)'}"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "live": None}
