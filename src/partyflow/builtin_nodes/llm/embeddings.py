"""The Embeddings node: texts to vectors through a configured provider."""

from __future__ import annotations

from .access import open_provider, provider_config
from .sockets import EMBEDDINGS, JSON, LLM_MODEL

CATEGORY = "partyflow/llm"


class Embeddings:
    DESCRIPTION = ("Turn text into vectors with the provider's embedding model (its embedding_model setting, or the "
                   "override here). One vector per line when 'one per line' is on, else one for the whole text.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (EMBEDDINGS, JSON)
    RETURN_NAMES = ("embeddings", "usage")
    OUTPUT_TOOLTIPS = ("A list of vectors, one per text, in order.", "Tokens used, cost and model.")
    FUNCTION = "embed"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (LLM_MODEL, {"tooltip": "From a model loader node."}),
                "text": ("STRING", {"default": "", "multiline": True}),
            },
            "optional": {
                "one_per_line": ("BOOLEAN", {"default": False, "tooltip": "Embed each non-empty line separately."}),
                "embedding_model": ("STRING", {"default": "", "tooltip": "Empty: the provider's embedding_model, "
                                                                          "else the loader's model."}),
            },
        }

    async def embed(self, model, text, one_per_line=False, embedding_model=""):
        texts = [line for line in text.splitlines() if line.strip()] if one_per_line else [text]
        if not texts or not any(t.strip() for t in texts):
            raise ValueError("nothing to embed: the text is empty")
        configured = provider_config(model.provider).embedding_model if model.local is None else None
        chosen = embedding_model.strip() or configured or model.model
        async with open_provider(model) as provider:
            if not hasattr(provider, "aembed"):
                raise ValueError(f"provider {model.provider!r} does not offer embeddings")
            response = await provider.aembed(texts, model=chosen)
        usage = response.usage
        return ([list(vector) for vector in response.vectors],
                {"provider": response.provider, "model": response.model,
                 "prompt_tokens": usage.prompt_tokens if usage else 0, "cost": usage.cost if usage else None})


NODE_CLASS_MAPPINGS = {"LLMEmbeddings": Embeddings}
NODE_DISPLAY_NAME_MAPPINGS = {"LLMEmbeddings": "Embeddings"}
