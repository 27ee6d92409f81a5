"""partyflow: LLM agent workflows as node graphs, compatible with ComfyUI node packs and workflows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from partyflow.builder import Workflow
    from partyflow.engine.engine import Engine, PromptValidationError, RunResult

__all__ = ["Engine", "PromptValidationError", "RunResult", "Workflow", "__version__"]


def __getattr__(name: str) -> Any:
    """Import the engine on first use, so `partyflow --version` and `import partyflow` stay fast."""
    if name in ("Engine", "PromptValidationError", "RunResult"):
        from partyflow.engine import engine

        return getattr(engine, name)
    if name == "Workflow":
        from partyflow.builder import Workflow

        return Workflow
    raise AttributeError(f"module 'partyflow' has no attribute {name!r}")
