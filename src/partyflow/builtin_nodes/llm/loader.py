"""The API model loader: picks a provider configured in the home's config.toml, by name."""

from __future__ import annotations

from partyflow.llm import ProviderConfigError

from .access import provider_entry, provider_names
from .sockets import LLM_MODEL, ModelHandle

CATEGORY = "partyflow/llm"


class APIModelLoader:
    DESCRIPTION = ("Choose a model provider configured in config.toml ([providers.NAME]). The workflow stores only "
                   "the provider's name and the model; the API key stays in the environment.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (LLM_MODEL,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("A handle naming the provider and model; it holds no key.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"provider": (provider_names(), {"tooltip": "A [providers.NAME] or [routers.NAME] table of config.toml."})},
            "optional": {"model": ("STRING", {"default": "", "tooltip": "Model name; empty: the provider's "
                                                                          "configured default model."})},
        }

    @classmethod
    def VALIDATE_INPUTS(cls, provider):
        # Our own check replaces the combo's: its message says which names exist and where to add one.
        try:
            provider_entry(provider)
        except ProviderConfigError as exc:
            return str(exc)
        return True

    def load(self, provider, model=""):
        config = provider_entry(provider)  # a provider, or a router of several (issue 18)
        config.api_key()  # fail here, naming the variable, rather than in every chat node downstream
        chosen = model.strip() or config.model
        if not chosen and config.type == "openai_compat":  # a router's members each call their own model  # a local provider's model is its file: `path` names it
            raise ProviderConfigError("no model given and no default model configured", provider=provider,
                                      hint=f"Set 'model' in [providers.{provider}] or fill in the loader's model")
        return (ModelHandle(provider, model.strip() or None),)


NODE_CLASS_MAPPINGS = {"APIModelLoader": APIModelLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"APIModelLoader": "API Model Loader"}
