"""Socket types of the LLM pack, and the model handle that flows along `LLM_MODEL` links."""

from __future__ import annotations

from dataclasses import dataclass

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
class ModelHandle:
    """A provider name and an optional model: never a key, so workflows, caches and history can hold it safely.

    The provider is created from the home's config when a node calls it, so a changed config or key takes
    effect on the next run and nothing secret is pickled with node outputs.
    """

    provider: str
    model: str | None = None

    def __str__(self) -> str:
        return f"{self.provider}/{self.model or '(default model)'}"
