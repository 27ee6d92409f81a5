"""ComfyUI's `comfy.model_management`: interrupt checks, and honest CPU-only device answers.

Interrupts act on the running node call's `NodeScope.interrupt` (ComfyUI has one process-wide flag), so
cancelling one prompt never stops another engine's. partyflow does not manage GPU memory for packs: the
device helpers say "cpu" and the memory figures are the machine's RAM. Nothing here imports torch; when torch
is already loaded, devices are returned as `torch.device` objects as packs expect.
"""

from __future__ import annotations

import enum
import os
import sys
from typing import Any

from partyflow.nodes.host import current_scope

__all__ = [
    "CPUState", "InterruptProcessingException", "VRAMState", "get_free_memory", "get_torch_device",
    "get_total_memory", "interrupt_current_processing", "processing_interrupted", "soft_empty_cache",
    "throw_exception_if_processing_interrupted", "unload_all_models",
]


class InterruptProcessingException(Exception):
    """Raised inside a node when its prompt was interrupted; the engine reports the prompt as interrupted."""


class VRAMState(enum.Enum):
    DISABLED = 0
    NO_VRAM = 1
    LOW_VRAM = 2
    NORMAL_VRAM = 3
    HIGH_VRAM = 4
    SHARED = 5


class CPUState(enum.Enum):
    GPU = 0
    CPU = 1
    MPS = 2


vram_state = VRAMState.DISABLED
set_vram_to = VRAMState.DISABLED
cpu_state = CPUState.CPU
directml_enabled = False


# --- interrupts ----------------------------------------------------------------------------------------------

def processing_interrupted() -> bool:
    scope = current_scope()
    return scope is not None and scope.interrupt.is_set()


def throw_exception_if_processing_interrupted() -> None:
    """Call between steps of long work so that an interrupt stops it promptly."""
    if processing_interrupted():
        raise InterruptProcessingException()


def interrupt_current_processing(value: bool = True) -> None:
    """Interrupt (or, with False, un-interrupt) the running prompt; nothing to do outside a node call."""
    scope = current_scope()
    if scope is None:
        return
    if value:
        scope.interrupt.set()
    else:
        scope.interrupt.clear()


# --- devices and memory --------------------------------------------------------------------------------------

def get_torch_device() -> Any:
    """`torch.device("cpu")` when torch is already loaded, else the string "cpu"."""
    torch = sys.modules.get("torch")
    return torch.device("cpu") if torch is not None else "cpu"


def get_torch_device_name(device: Any = None) -> str:
    return "cpu"


def is_device_cpu(device: Any = None) -> bool:
    return True


def is_device_mps(device: Any = None) -> bool:
    return False


def is_device_cuda(device: Any = None) -> bool:
    return False


def is_intel_xpu() -> bool:
    return False


def intermediate_device() -> Any:
    return get_torch_device()


def unet_offload_device() -> Any:
    return get_torch_device()


def text_encoder_device() -> Any:
    return get_torch_device()


def text_encoder_offload_device() -> Any:
    return get_torch_device()


def vae_device() -> Any:
    return get_torch_device()


def vae_offload_device() -> Any:
    return get_torch_device()


def xformers_enabled() -> bool:
    return False


def pytorch_attention_enabled() -> bool:
    return False


def should_use_fp16(*_: Any, **__: Any) -> bool:
    return False


def should_use_bf16(*_: Any, **__: Any) -> bool:
    return False


def _ram(pages_name: str) -> int:
    try:
        return os.sysconf(pages_name) * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def get_total_memory(dev: Any = None, torch_total_too: bool = False) -> Any:
    """The machine's RAM in bytes (a pair when `torch_total_too`, as ComfyUI returns)."""
    total = _ram("SC_PHYS_PAGES")
    return (total, total) if torch_total_too else total


def get_free_memory(dev: Any = None, torch_free_too: bool = False) -> Any:
    """The machine's available RAM in bytes (a pair when `torch_free_too`)."""
    free = _ram("SC_AVPHYS_PAGES")
    return (free, free) if torch_free_too else free


total_ram = get_total_memory() / (1024 * 1024)  # MiB, as in ComfyUI
total_vram = total_ram  # on a CPU-only host ComfyUI reports RAM here too


def soft_empty_cache(force: bool = False) -> None:
    """Nothing cached on a device to free."""


def unload_all_models() -> None:
    """partyflow loads no models on behalf of packs, so there is nothing to unload."""


def cleanup_models(*_: Any, **__: Any) -> None:
    """Nothing to clean up (see `unload_all_models`)."""


def load_models_gpu(*_: Any, **__: Any) -> None:
    """Models stay where the pack put them; there is no GPU placement here."""


# --- names packs read for dtypes and memory errors (CPU answers: partyflow runs no diffusion models) -----------

def _oom_exception() -> type[BaseException]:
    """torch's out-of-memory error where torch is installed (as ComfyUI exports it), else MemoryError."""
    try:
        import torch
        return torch.cuda.OutOfMemoryError
    except (ImportError, AttributeError):
        return MemoryError


def __getattr__(name: str) -> Any:
    """`OOM_EXCEPTION` is looked up on first use, so importing this module never imports torch."""
    if name == "OOM_EXCEPTION":
        value = _oom_exception()
        globals()[name] = value
        return value
    raise AttributeError(f"module 'comfy.model_management' has no attribute {name!r}")


def raise_non_oom(exception: BaseException) -> None:
    """Re-raise anything that is not an out-of-memory error."""
    if not isinstance(exception, (_oom_exception(), MemoryError)):
        raise exception


def _float32() -> Any:
    torch = sys.modules.get("torch")
    return torch.float32 if torch is not None else "float32"


def unet_dtype(*_: Any, **__: Any) -> Any:
    return _float32()


def vae_dtype(*_: Any, **__: Any) -> Any:
    return _float32()


def text_encoder_dtype(*_: Any, **__: Any) -> Any:
    return _float32()


def intermediate_dtype() -> Any:
    return _float32()


def get_autocast_device(dev: Any) -> str:
    return getattr(dev, "type", "cpu")


def is_directml_enabled() -> bool:
    return False


def in_training() -> bool:
    return False


def cast_to(weight: Any, dtype: Any = None, device: Any = None, non_blocking: bool = False, copy: bool = False,
            stream: Any = None) -> Any:
    """Move/cast a tensor, copying only when asked or needed."""
    if not copy and (dtype is None or weight.dtype == dtype) and (device is None or weight.device == device):
        return weight
    return weight.to(device=device, dtype=dtype, non_blocking=non_blocking, copy=copy)


def cast_to_device(tensor: Any, device: Any, dtype: Any, copy: bool = False) -> Any:
    return cast_to(tensor, dtype=dtype, device=device, copy=copy)


def load_model_gpu(model: Any) -> None:
    """Nothing to place: partyflow keeps no diffusion models on a device."""


def free_memory(memory_required: int, device: Any, keep_loaded: Any = ()) -> None:
    """Nothing is loaded here to free."""


def module_size(module: Any) -> int:
    return sum(p.numel() * p.element_size() for p in module.state_dict().values()) if hasattr(module, "state_dict") else 0
