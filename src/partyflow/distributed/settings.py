"""`[engine]` settings of the execution backend, read from config.toml and `PARTYFLOW_*` variables.

Kept out of `config.Settings` so the engine's settings stay about one machine; everything here is only read when
a server (or `partyflow ray status`) decides where prompts run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from partyflow.config import ConfigError

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class BackendSettings:
    """How prompts are executed. Only `backend` matters for `local`; the rest configure the Ray pool.

    ray_address: "local" starts a private one-machine cluster bound to 127.0.0.1 (stopped with the server);
    "auto" joins the cluster this machine already belongs to (`ray start` ran here); "ray://host:10001" connects
    through Ray Client.
    """

    backend: str = "local"
    ray_address: str = "local"
    workers: int = 2                 # prompt-worker actors
    prompts_per_worker: int = 1      # prompts one worker runs at the same time
    worker_cpus: float = 0.0         # CPUs each prompt worker reserves (0: I/O-bound workers never block scheduling)
    max_retries: int = 2             # re-runs of a prompt whose worker died mid-prompt
    namespace: str = "partyflow"
    num_cpus: int | None = None      # for "local": the private cluster's size
    object_store_bytes: int | None = None
    resources: Mapping[str, float] = field(default_factory=dict)  # for "local": custom resources of the node
    runtime_env: Mapping[str, Any] = field(default_factory=dict)  # shipped to workers (pip, env_vars, working_dir)
    worker_home: str | None = None   # the home path as workers see it (default: the server's own)
    pack_resources: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # [packs.X] resources
    driver: str = "inline"           # "process": Ray's driver runs in a child process the server restarts, so the
    # server outlives the head going away (Ray ends a driver that loses its head); default for a cluster it joins
    head_timeout_s: float = 30.0     # how long the driver waits for a lost head before it is restarted
    shared_cache: bool = True        # workers reuse each other's node results (same signatures as the engine cache)
    shared_cache_bytes: int = 256 * 2**20  # the shared cache's memory bound (least recently used evicted)

    @property
    def max_in_flight(self) -> int:
        return self.workers * self.prompts_per_worker

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any], env: Mapping[str, str] | None = None) -> BackendSettings:
        """From a parsed config.toml; `PARTYFLOW_BACKEND`, `PARTYFLOW_RAY_ADDRESS`, `PARTYFLOW_RAY_WORKERS`,
        `PARTYFLOW_RAY_WORKER_CPUS` and `PARTYFLOW_RAY_SHARED_CACHE` override the file (container deployments)."""
        env = os.environ if env is None else env
        engine = raw.get("engine", {})
        if not isinstance(engine, Mapping):
            raise ConfigError("[engine] must be a table")
        values = dict(engine)
        for key in ("backend", "ray_address", "ray_workers", "ray_worker_cpus", "ray_shared_cache"):
            if f"PARTYFLOW_{key.upper()}" in env:
                values[key] = env[f"PARTYFLOW_{key.upper()}"]
        backend = str(values.get("backend", "local"))
        if backend not in BACKENDS:
            raise ConfigError(f"[engine] backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        address = str(values.get("ray_address", "local"))
        if address not in ("local", "auto") and not address.startswith("ray://") and ":" not in address:
            raise ConfigError(f"[engine] ray_address must be 'local', 'auto', 'ray://host:port' or 'host:port', "
                              f"not {address!r}")
        return cls(
            backend=backend,
            ray_address=address,
            workers=_positive(values, "ray_workers", cls.workers),
            prompts_per_worker=_positive(values, "ray_prompts_per_worker", cls.prompts_per_worker),
            worker_cpus=_number(values, "ray_worker_cpus", cls.worker_cpus),
            max_retries=int(_number(values, "ray_max_retries", cls.max_retries)),
            namespace=str(values.get("ray_namespace", cls.namespace)),
            num_cpus=_optional_int(values, "ray_num_cpus"),
            object_store_bytes=_optional_int(values, "ray_object_store_bytes"),
            resources=_resources(values.get("ray_resources", {}), "[engine] ray_resources"),
            runtime_env=dict(_table(values.get("ray_runtime_env", {}), "[engine] ray_runtime_env")),
            worker_home=str(values["ray_worker_home"]) if values.get("ray_worker_home") else None,
            pack_resources=_pack_resources(raw.get("packs", {})),
            driver=_driver(values, address),
            head_timeout_s=max(_number(values, "ray_head_timeout_s", cls.head_timeout_s), 1.0),
            shared_cache=_bool(values, "ray_shared_cache", cls.shared_cache),
            shared_cache_bytes=_size(values, "ray_shared_cache_bytes", cls.shared_cache_bytes),
        )


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table")
    return value


def _resources(value: Any, where: str) -> dict[str, float]:
    table = _table(value, where)
    out: dict[str, float] = {}
    for name, amount in table.items():
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            raise ConfigError(f"{where}.{name} must be a non-negative number, not {amount!r}")
        out[str(name)] = float(amount)
    return out


def _pack_resources(packs: Any) -> dict[str, dict[str, float]]:
    if not isinstance(packs, Mapping):
        return {}
    return {str(name): _resources(table["resources"], f"[packs.{name}] resources")
            for name, table in packs.items() if isinstance(table, Mapping) and "resources" in table}


def _number(values: Mapping[str, Any], key: str, default: float) -> float:
    value = values.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"[engine] {key} must be a number, not {value!r}") from None
    if number < 0:
        raise ConfigError(f"[engine] {key} must not be negative")
    return number


def _positive(values: Mapping[str, Any], key: str, default: int) -> int:
    number = _number(values, key, default)
    if number < 1 or number != int(number):
        raise ConfigError(f"[engine] {key} must be a whole number of at least 1, not {values.get(key)!r}")
    return int(number)


def _driver(values: Mapping[str, Any], address: str) -> str:
    """A private cluster lives and dies with the server: its driver stays inline. A cluster the server joins
    can go away without it, so by default its driver runs in a child process the server restarts."""
    driver = str(values.get("ray_driver", "inline" if address == "local" else "process"))
    if driver not in ("inline", "process"):
        raise ConfigError(f"[engine] ray_driver must be 'inline' or 'process', not {driver!r}")
    return driver


def _bool(values: Mapping[str, Any], key: str, default: bool) -> bool:
    value = values.get(key, default)
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    if not isinstance(value, bool):
        raise ConfigError(f"[engine] {key} must be true or false, not {value!r}")
    return value


def _size(values: Mapping[str, Any], key: str, default: int) -> int:
    """Bytes as a number or with a unit ("512MB", "2 GiB")."""
    from partyflow.llm.models import parse_size

    value = values.get(key, default)
    try:
        size = parse_size(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[engine] {key} must be a size like 268435456 or '256MB', not {value!r}") from exc
    if size < 1024:
        raise ConfigError(f"[engine] {key} must be at least 1 KiB")
    return size


def _optional_int(values: Mapping[str, Any], key: str) -> int | None:
    return None if values.get(key) is None else int(_number(values, key, 0))
