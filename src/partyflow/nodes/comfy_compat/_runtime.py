"""Stand-ins for ComfyUI's diffusion runtime: importable names that fail clearly only when used.

Many packs that are not about diffusion still import a sampler, a model loader or a latent format at module
level (often for one node among many). partyflow does not carry ComfyUI's diffusion core, so those names
resolve to placeholders: a pack imports, subclasses and lists them freely, and only a call (instantiating,
calling, or reading a value off one) raises `DiffusionRuntimeError` naming the ComfyUI name that was needed.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence
from typing import Any

__all__ = ["DiffusionRuntimeError", "PlaceholderFinder", "placeholder", "placeholder_function",
           "placeholder_module"]


class DiffusionRuntimeError(RuntimeError):
    """A pack used a part of ComfyUI's diffusion runtime (models, samplers, VAEs), which partyflow lacks."""

    def __init__(self, name: str, needs: str = "ComfyUI's diffusion runtime (models, samplers, VAEs)") -> None:
        self.name = name
        super().__init__(f"{name} needs {needs}, which partyflow does not provide; run this node in ComfyUI, "
                         "or use a workflow without it")


class _PlaceholderMeta(type):
    """Class-level attribute reads give further placeholders, so `comfy.ops.disable_weight_init.Linear` imports."""

    _pf_name: str
    _pf_needs: str | None

    def __getattr__(cls, attribute: str) -> Any:
        if attribute.startswith("__") or attribute.startswith("_pf_"):
            raise AttributeError(attribute)
        return placeholder(f"{cls._pf_name}.{attribute}", cls._pf_needs)

    def __repr__(cls) -> str:
        return f"<unavailable {cls._pf_name}>"


def _refuse(self: Any, *args: Any, **kwargs: Any) -> None:
    needs = type(self)._pf_needs
    raise DiffusionRuntimeError(type(self)._pf_name, *([needs] if needs else []))


def placeholder(name: str, needs: str | None = None) -> type:
    """A class standing for ComfyUI's `name`: subclassable and readable, but creating one raises (saying what
    it `needs`, ComfyUI's diffusion runtime unless told otherwise)."""
    return _PlaceholderMeta(name.rpartition(".")[2] or name, (), {
        "_pf_name": name, "_pf_needs": needs, "__init__": _refuse, "__module__": name.rpartition(".")[0] or name})


def placeholder_function(name: str) -> Any:
    """A function standing for ComfyUI's `name` that raises when called."""

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise DiffusionRuntimeError(name)

    unavailable.__name__ = unavailable.__qualname__ = name.rpartition(".")[2]
    unavailable.__doc__ = f"Stands for ComfyUI's {name}; raises DiffusionRuntimeError when called."
    return unavailable


def placeholder_module(name: str, doc: str = "") -> types.ModuleType:
    """A module whose every public attribute is a placeholder class.

    Classes serve for functions too (calling one raises just the same), and they can also be subclassed and
    read from (`comfy.ops.disable_weight_init.Linear` is a class in ComfyUI although its name is lowercase).
    """
    module = types.ModuleType(name, doc or f"Stands for ComfyUI's {name}, which needs its diffusion runtime.")

    def __getattr__(attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        full = f"{name}.{attribute}"
        value = placeholder(full)
        setattr(module, attribute, value)  # the same object on each read, so `is` and subclass checks hold
        return value

    module.__getattr__ = __getattr__  # type: ignore[attr-defined]
    module.__path__ = []  # a package: `import comfy.ldm.modules.attention` finds placeholders below it
    module.__partyflow_placeholder__ = True  # type: ignore[attr-defined]
    return module


class _PlaceholderLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return placeholder_module(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class PlaceholderFinder(importlib.abc.MetaPathFinder):
    """Answers imports of ComfyUI diffusion modules (by prefix) that no real module provides.

    It sits last on `sys.meta_path`, so a real module of that name (inside ComfyUI itself) always wins, and it
    only answers while `comfy` is partyflow's own host package.
    """

    def __init__(self, prefixes: Sequence[str], owner: types.ModuleType) -> None:
        self.prefixes = tuple(prefixes)
        self.owner = owner

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if sys.modules.get("comfy") is not self.owner:
            return None
        if not any(fullname == p or fullname.startswith(p + ".") for p in self.prefixes):
            return None
        return importlib.machinery.ModuleSpec(fullname, _PlaceholderLoader(), is_package=True)
