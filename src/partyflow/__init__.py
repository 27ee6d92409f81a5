"""partyflow: LLM agent workflows as node graphs, compatible with ComfyUI node packs."""

__version__ = "0.1.0"
