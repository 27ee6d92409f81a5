"""Model actors (issue 15 item 3): a local transformers or llama.cpp model loaded once in a long-lived named Ray
actor, shared by the model calls of every prompt worker.

A prompt worker's engine offers `ModelActors` to its packs as `HostContext.local_models`; the LLM pack's local
loaders (and config.toml providers of a local type) then get a `ModelActorClient` instead of loading weights in
the worker. One actor exists per (provider settings, model path, options): the first worker to ask creates it
(detached, so it outlives that worker), the rest find it by name. The actor is asynchronous and takes many calls
at once, so concurrent requests from all workers reach the transformers provider together and its dynamic
batching generates them in one batch. Actors ask Ray for the resources the model needs (the GPU its device names,
the memory its weights take), so Ray places each where those are.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import pickle
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from partyflow.llm.config import ProviderConfig
from partyflow.llm.errors import BadResponseError
from partyflow.llm.types import ChatChunk, ChatRequest, ChatResponse

logger = logging.getLogger("partyflow.distributed")

MODEL_ACTOR_PREFIX = "partyflow-model-"
_LOAD_TIMEOUT_S = 600.0


def model_actor_name(config: ProviderConfig, options: Mapping[str, Any]) -> str:
    """The actor's name: equal settings share one actor (and so one loaded model)."""
    text = json.dumps([config.model_dump(mode="json"), sorted((k, repr(v)) for k, v in options.items())],
                      sort_keys=True, default=str)
    return MODEL_ACTOR_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:12]


def model_resources(config: ProviderConfig, options: Mapping[str, Any], path: Path | None) -> dict[str, float]:
    """What the model needs from the node it runs on: a GPU when its device (transformers) or offloaded layers
    (llama.cpp) ask for one, and the memory its weights take (parameters times dtype, or the GGUF file's size)."""
    resources: dict[str, float] = {"CPU": 0.0}
    if config.type == "transformers":
        device = str(options.get("device", "auto"))
        if device.startswith("cuda"):
            resources["GPU"] = 1.0
        if path is not None and path.is_dir():
            from partyflow.llm.models import estimate_bytes

            dtype = str(options.get("dtype", "auto"))
            size = estimate_bytes(path, dtype if dtype != "auto" else ("float16" if "GPU" in resources else
                                                                          "float32"))
            if size:
                resources["memory"] = float(size)
    elif config.type == "llamacpp":
        if getattr(config, "n_gpu_layers", 0):
            resources["GPU"] = 1.0
        if path is not None and path.is_file():
            resources["memory"] = float(path.stat().st_size)
    return resources


class ModelActor:
    """Holds one local provider and its loaded model; answers chat and stream calls from any worker."""

    def __init__(self, home: str, key: str, config: ProviderConfig, options: dict[str, Any]) -> None:
        self.home = home
        self.key = key
        self.config = config
        self.options = options
        self.provider: Any = None
        self.loads = 0
        self.calls = 0
        self.active = 0
        self._lock = asyncio.Lock()
        self.loaded_at: float | None = None

    async def load(self) -> dict[str, Any]:
        """Load the model if it is not loaded yet (once, however many workers ask at the same time); a loader
        node calls it through `ModelActorClient.model`, so a model that cannot load fails the loader."""
        async with self._lock:
            if self.provider is None:
                from partyflow.config import Home
                from partyflow.llm.providers import create

                provider = create(self.config.name, self.config, home=Home(Path(self.home)), manager=None,
                                  **self.options)
                await asyncio.to_thread(provider.model)
                self.provider, self.loads, self.loaded_at = provider, self.loads + 1, time.time()
                logger.info("model actor %s loaded %s", self.key, self.config.path)
        return {"model": self.provider.default_model, "loads": self.loads}

    async def ensure_loaded(self) -> tuple[str, Any]:
        try:
            return ("ok", await self.load())
        except Exception as exc:
            return ("error", _portable(exc, self.config.name))

    async def chat(self, request: ChatRequest) -> tuple[str, Any]:
        self.calls += 1
        self.active += 1
        try:
            await self.load()
            return ("ok", await self.provider.achat(request))
        except Exception as exc:
            return ("error", _portable(exc, self.config.name))
        finally:
            self.active -= 1

    async def stream(self, request: ChatRequest) -> AsyncIterator[tuple[str, Any]]:
        self.calls += 1
        self.active += 1
        try:
            await self.load()
            async for chunk in self.provider.astream(request):
                yield ("ok", chunk)
        except Exception as exc:
            yield ("error", _portable(exc, self.config.name))
        finally:
            self.active -= 1

    def info(self) -> dict[str, Any]:
        import ray

        context = ray.get_runtime_context()
        models = []
        if self.provider is not None:
            models.append({"name": self.provider.default_model, "path": str(self.config.path),
                           "type": self.config.type, "bytes": _loaded_bytes(self.provider)})
        batcher = getattr(getattr(self.provider, "_own", None), "batcher", None)  # transformers' batch queue
        batching = {"batches": batcher.batches, "largest": batcher.largest} if batcher is not None else None
        return {"id": self.key, "pid": os.getpid(), "node_id": context.get_node_id(),
                "resources": dict(context.get_assigned_resources()), "loads": self.loads, "calls": self.calls,
                "active": self.active, "models": models, "provider": self.config.name, "batching": batching}


class ModelActorClient:
    """A `ChatModel` in a prompt worker whose calls run on a model actor. Picklable (a name and an actor handle),
    so a model handle carrying it can travel and be cached like any node output."""

    def __init__(self, name: str, default_model: str | None, actor: Any, key: str,
                 on_use: Callable[[str, str], None] | None = None) -> None:
        self.name = name
        self.default_model = default_model
        self.actor = actor
        self.key = key
        self._on_use = on_use

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_on_use": None}

    def __repr__(self) -> str:
        return f"ModelActorClient(name={self.name!r}, actor={self.key!r})"

    def model(self) -> dict[str, Any]:
        """Load the model in its actor now (a loader node's errors belong to the loader)."""
        import ray

        return _unwrap(ray.get(self.actor.ensure_loaded.remote(), timeout=_LOAD_TIMEOUT_S))

    def chat(self, request: ChatRequest) -> ChatResponse:
        import ray

        self._used()
        return _unwrap(ray.get(self.actor.chat.remote(request)))

    async def achat(self, request: ChatRequest) -> ChatResponse:
        self._used()
        return _unwrap(await self.actor.chat.remote(request))

    def stream(self, request: ChatRequest) -> Iterator[ChatChunk]:
        import ray

        self._used()
        for ref in self.actor.stream.remote(request):
            yield _unwrap(ray.get(ref))

    async def astream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        self._used()
        async for ref in self.actor.stream.remote(request):
            yield _unwrap(await ref)

    def close(self) -> None:
        """The model stays loaded in its actor for the next call, from any worker."""

    async def aclose(self) -> None:
        return None

    def _used(self) -> None:
        if self._on_use is not None:
            self._on_use(self.key, self.default_model or self.name)


class ModelActors:
    """`HostContext.local_models` of a prompt worker: the client of the model actor for a local provider."""

    def __init__(self, home: str, namespace: str) -> None:
        self.home = home
        self.namespace = namespace
        self.used: set[tuple[str, str]] = set()  # (actor, model) pairs called since the last `take_used`
        self._handles: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, config: ProviderConfig, options: Mapping[str, Any]) -> ModelActorClient:
        import ray

        options = dict(options)
        key = model_actor_name(config, options)
        with self._lock:
            actor = self._handles.get(key)
            if actor is None:
                from partyflow.config import Home
                from partyflow.distributed.placement import actor_options, check_feasible

                try:
                    path: Path | None = config.model_path(Home(Path(self.home)))
                except Exception:  # the actor's provider reports a bad path when it loads
                    path = None
                resources = model_resources(config, options, path)
                check_feasible(resources, ray.cluster_resources())
                actor = ray.remote(ModelActor).options(
                    name=key, namespace=self.namespace, get_if_exists=True, lifetime="detached",
                    max_restarts=-1, max_concurrency=64, **actor_options(resources),
                ).remote(self.home, key, config, options)
                self._handles[key] = actor
        default = config.model or Path(config.path or key).name.removesuffix(".gguf")
        return ModelActorClient(config.name, default, actor, key, self._record)

    def take_used(self) -> list[list[str]]:
        with self._lock:
            used, self.used = self.used, set()
        return sorted([actor, model] for actor, model in used)

    def _record(self, key: str, model: str) -> None:
        with self._lock:
            self.used.add((key, model))


def _unwrap(outcome: Any) -> Any:
    if isinstance(outcome, tuple) and len(outcome) == 2 and outcome[0] in ("ok", "error"):
        if outcome[0] == "error":
            raise outcome[1]
        return outcome[1]
    return outcome


def _portable(exc: BaseException, provider: str) -> BaseException:
    """The provider's error as it is when it survives a pickle round trip, else the same words as ours."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return BadResponseError(str(exc) or type(exc).__name__, provider=provider)


def _loaded_bytes(provider: Any) -> int:
    own = getattr(provider, "_own", None)
    nbytes = getattr(own, "nbytes", None)
    try:
        return int(nbytes() if callable(nbytes) else nbytes or 0)
    except Exception:
        return 0
