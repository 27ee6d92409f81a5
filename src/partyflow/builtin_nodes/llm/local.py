"""Local model loaders: a transformers folder under models/llm/ and a GGUF file under models/gguf/.

Both output the same `LLM_MODEL` handle as the API loader, so Chat (and anything else taking a model) works
with them unchanged. They load the weights when they run, so a folder that is not a model or a missing extra
fails on the loader node. Under a partyflow engine the weights belong to the engine's model manager: it keeps
them within the memory budget, unloads the least recently used model when another needs the room, and loads
it again when a Chat node next asks for it. Elsewhere the handle's provider holds them for as long as the
loader's output is cached, as ComfyUI's loaders do.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import folder_paths

from partyflow.llm import MissingExtraError, ProviderConfig, ProviderConfigError
from partyflow.llm.models import ModelManager
from partyflow.llm.providers import create

from .access import current_home, model_actors, model_manager
from .sockets import LLM_MODEL, LocalModelSpec, ModelHandle

CATEGORY = "partyflow/llm"
DEVICES = ["auto", "cpu", "cuda", "mps"]
DTYPES = ["auto", "float32", "float16", "bfloat16"]
GGUF_EXTRA_HINT = "pip install 'partyflow[gguf]'"


# --- what is on disk -------------------------------------------------------------------------------------------

def model_folders() -> list[str]:
    """Folders under models/llm/ (every configured llm path) that hold a config.json, by relative name."""
    found: set[str] = set()
    for base in map(Path, folder_paths.get_folder_paths("llm")):
        if base.is_dir():
            found.update(entry.name for entry in base.iterdir()
                         if not entry.name.startswith(".") and (entry / "config.json").is_file())
    return sorted(found)


def gguf_files() -> list[str]:
    """`.gguf` files under models/gguf/ (sub-folders included), by relative POSIX path; partial pulls are not."""
    found: set[str] = set()
    for base in map(Path, folder_paths.get_folder_paths("gguf")):
        if base.is_dir():
            found.update(path.relative_to(base).as_posix() for path in base.rglob("*.gguf")
                         if path.is_file() and not any(p.startswith(".") for p in path.relative_to(base).parts))
    return sorted(found)


def locate(kind: str, name: str) -> Path | None:
    """The file or folder `name` under one of the `kind` model paths, never outside them."""
    for base in folder_paths.get_folder_paths(kind):
        joined = folder_paths.confined_join(base, name)
        if joined is not None and Path(joined).exists():
            return Path(joined)
    return None


def missing_message(kind: str, name: str, available: list[str]) -> str:
    where = f"models/{kind}/"
    listed = ", ".join(available[:10]) or "none"
    how = "partyflow models pull hf:ORG/REPO" if kind == "llm" else "partyflow models pull URL.gguf"
    return f"no model {name!r} under {where} (found: {listed}); put one there or run `{how}`"


# --- building providers from handles ---------------------------------------------------------------------------

def create_local(handle: ModelHandle) -> Any:
    """A provider for a local handle; llamacpp settings are config fields, transformers ones constructor options."""
    spec = handle.local
    if spec is None:
        raise ValueError(f"{handle} is not a local model")
    options = dict(spec.options)
    remote = model_actors()
    if remote is not None:  # the Ray backend: the model lives in a model actor shared by every worker
        if spec.type == "llamacpp":
            return remote(ProviderConfig(name=handle.provider, type="llamacpp", path=spec.path, **options), {})
        return remote(ProviderConfig(name=handle.provider, type="transformers", path=spec.path), options)
    manager = model_manager()
    if spec.type == "llamacpp":
        config = ProviderConfig(name=handle.provider, type="llamacpp", path=spec.path, **options)
        return _gguf_provider(config, manager)
    config = ProviderConfig(name=handle.provider, type="transformers", path=spec.path)
    return create(handle.provider, config, home=current_home(), manager=manager, **options)


def _gguf_provider(config: ProviderConfig, manager: ModelManager | None) -> Any:
    """The llamacpp provider, or an error that names the extra when llama.cpp support is not installed."""
    if not _installed("llama_cpp"):
        raise MissingExtraError("gguf", "llama-cpp-python", provider=config.name)
    try:
        return create(config.name, config, home=current_home(), manager=manager)
    except ImportError as exc:
        raise MissingExtraError("gguf", exc.name or "llama-cpp-python", provider=config.name) from None
    except ProviderConfigError as exc:
        if isinstance(exc, MissingExtraError) or "not available" not in exc.message:
            raise
        raise ProviderConfigError(f"GGUF models are not supported by this installation ({exc.message})",
                                  provider=config.name, hint=f"Install the extra: {GGUF_EXTRA_HINT}") from None


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: a None placeholder in sys.modules
        return False


def _loaded(handle: ModelHandle) -> ModelHandle:
    """Load the weights now (errors belong to the loader node) and keep the provider on the handle; with a model
    manager the provider only borrows them, so the manager may unload them and the next call reloads them."""
    provider = create_local(handle)
    provider.model()
    return ModelHandle(handle.provider, handle.model, handle.local, live=provider)


def _model_path(kind: str, name: str, available: list[str]) -> Path:
    """The file or folder a loader's input names; one that is gone since validation is the node's error."""
    path = locate(kind, name)
    if path is None:
        raise ValueError(missing_message(kind, name, available))
    return path


# --- the nodes -------------------------------------------------------------------------------------------------

class _LocalLoader:
    """What both loader nodes declare alike: one model output, for Chat nodes."""

    CATEGORY = CATEGORY
    RETURN_TYPES = (LLM_MODEL,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The loaded model, for Chat nodes.",)
    FUNCTION = "load"


class LocalModelLoader(_LocalLoader):
    DESCRIPTION = ("Load a transformers model folder from models/llm/ (written by save_pretrained, or pulled with "
                   "`partyflow models pull hf:ORG/REPO`) to chat with it locally (extra 'local').")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"folder": (model_folders(), {"tooltip": "A model folder under models/llm/."})},
            "optional": {
                "device": (DEVICES, {"default": "auto", "tooltip": "auto: CUDA, then Apple MPS, then the CPU."}),
                "dtype": (DTYPES, {"default": "auto",
                                   "tooltip": "auto: half precision on CUDA, float32 elsewhere."}),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, folder):
        return True if locate("llm", folder) is not None else missing_message("llm", folder, model_folders())

    def load(self, folder, device="auto", dtype="auto"):
        path = _model_path("llm", folder, model_folders())
        spec = LocalModelSpec("transformers", str(path), (("device", device), ("dtype", dtype)))
        return (_loaded(ModelHandle(f"local:{folder}", None, spec)),)


class GGUFModelLoader(_LocalLoader):
    DESCRIPTION = ("Load a GGUF model file from models/gguf/ (pull one with `partyflow models pull URL.gguf`) and "
                   f"run it with llama.cpp (extra 'gguf': {GGUF_EXTRA_HINT}).")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"gguf_file": (gguf_files(), {"tooltip": "A .gguf file under models/gguf/."})},
            "optional": {
                "n_ctx": ("INT", {"default": 4096, "min": 0, "max": 1 << 20, "step": 256,
                                  "tooltip": "Context window in tokens; 0: what the model was trained for."}),
                "threads": ("INT", {"default": 0, "min": 0, "max": 512,
                                    "tooltip": "CPU threads; 0: llama.cpp's default."}),
                # new widgets go last: saved UI workflows list widget values by position
                "mmproj": (["none", *gguf_files()], {"default": "none", "tooltip": (
                    "The model's multimodal projector (an mmproj .gguf under models/gguf/), so Chat and Agent "
                    "nodes can show it images; none: text only.")}),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, gguf_file, mmproj="none"):
        for name in (gguf_file, *([mmproj] if mmproj not in ("none", "") else [])):
            if locate("gguf", name) is None:
                return missing_message("gguf", name, gguf_files())
        return True

    def load(self, gguf_file, n_ctx=4096, threads=0, mmproj="none"):
        path = _model_path("gguf", gguf_file, gguf_files())
        options: tuple[tuple[str, Any], ...] = (("n_ctx", n_ctx),) + ((("n_threads", threads),) if threads else ())
        if mmproj not in ("none", ""):
            options += (("mmproj", str(_model_path("gguf", mmproj, gguf_files()))),)
        spec = LocalModelSpec("llamacpp", str(path), options)
        return (_loaded(ModelHandle(f"gguf:{gguf_file}", None, spec)),)


NODE_CLASS_MAPPINGS = {"LocalModelLoader": LocalModelLoader, "GGUFModelLoader": GGUFModelLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"LocalModelLoader": "Local Model Loader", "GGUFModelLoader": "GGUF Model Loader"}
