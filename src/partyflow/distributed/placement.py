"""Node placement on Ray: classes that declare `RESOURCES` (or whose pack has `[packs.X] resources`) run on named
node actors that hold those resources, shared by every prompt worker of the cluster.

A resource no node of the cluster offers fails the node at once with the resource named, instead of leaving the
call pending forever (Ray's behaviour for an infeasible request).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from partyflow.engine.failures import NodeExecutionError
from partyflow.nodes.protocol import NodeDefinition

if TYPE_CHECKING:
    from partyflow.engine.engine import Engine

NODE_ACTOR_PREFIX = "partyflow-node-"


def declared_resources(definition: NodeDefinition, pack_resources: Mapping[str, Mapping[str, float]],
                       pack: str | None) -> dict[str, float]:
    """The class's `RESOURCES` (ComfyUI-style class attribute), else its pack's configured resources, else {}."""
    declared = getattr(definition.cls, "RESOURCES", None)
    if declared is None and pack is not None:
        declared = pack_resources.get(pack) or pack_resources.get(pack.rpartition(".")[2])
    if not declared:
        return {}
    if not isinstance(declared, Mapping):
        raise NodeExecutionError(f"{definition.class_type}.RESOURCES must be a dict like {{'GPU': 1}}, "
                                 f"not {declared!r}", exception_type="NodeDefinitionError")
    out = {}
    for name, amount in declared.items():
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            raise NodeExecutionError(f"{definition.class_type}.RESOURCES[{name!r}] must be a non-negative "
                                     f"number, not {amount!r}", exception_type="NodeDefinitionError")
        out[str(name)] = float(amount)
    return out


def actor_options(resources: Mapping[str, float]) -> dict[str, Any]:
    """Ray's spelling of a resource set: CPU, GPU and memory have their own options, the rest are custom."""
    options: dict[str, Any] = {"num_cpus": resources.get("CPU", 0)}
    if "GPU" in resources:
        options["num_gpus"] = resources["GPU"]
    if "memory" in resources:
        options["memory"] = resources["memory"]
    custom = {k: v for k, v in resources.items() if k not in ("CPU", "GPU", "memory")}
    if custom:
        options["resources"] = custom
    return options


def resource_key(resources: Mapping[str, float]) -> str:
    text = json.dumps(sorted(resources.items()))
    return NODE_ACTOR_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:12]


class RayNodePlacement:
    """The engine-side `NodePlacement` of a prompt worker (see engine.executor.NodePlacement)."""

    def __init__(self, engine: Engine, pack_resources: Mapping[str, Mapping[str, float]], namespace: str) -> None:
        self._engine = engine
        self._pack_resources = pack_resources
        self._namespace = namespace
        self._wanted: dict[type, dict[str, float]] = {}
        self._actors: dict[str, Any] = {}

    def resources(self, definition: NodeDefinition) -> dict[str, float]:
        known = self._wanted.get(definition.cls)
        if known is None:
            registry = self._engine.registry
            pack = registry.entry(definition.class_type).pack if definition.class_type in registry else None
            known = self._wanted[definition.cls] = declared_resources(definition, self._pack_resources, pack)
        return known

    def wants(self, definition: NodeDefinition) -> bool:
        try:
            return bool(self.resources(definition))
        except NodeExecutionError:
            return True  # `call` reports the malformed declaration against the node

    async def call(self, definition: NodeDefinition, prompt_id: str, node_id: str,
                   calls: list[dict[str, Any]]) -> tuple[list[Any], float]:
        resources = self.resources(definition)
        actor = self._actor(resources)
        outcome = await actor.call.remote(definition.class_type, prompt_id, node_id, calls)
        if outcome[0] == "error":
            raise NodeExecutionError(outcome[1], exception_type=outcome[2])
        return outcome[1], outcome[2]

    def _actor(self, resources: dict[str, float]) -> Any:
        import ray

        from partyflow.distributed.actors import NodeActor

        key = resource_key(resources)
        actor = self._actors.get(key)
        if actor is None:
            check_feasible(resources, ray.cluster_resources())
            remote = ray.remote(NodeActor).options(
                name=key, namespace=self._namespace, get_if_exists=True, lifetime="detached",
                max_restarts=-1, max_concurrency=64, **actor_options(resources))
            actor = self._actors[key] = remote.remote(str(self._engine.home.root), key)
        return actor


def check_feasible(resources: Mapping[str, float], cluster: Mapping[str, float]) -> None:
    for name, amount in resources.items():
        if amount > cluster.get(name, 0):
            offered = cluster.get(name, 0)
            raise NodeExecutionError(
                f"no node of the Ray cluster offers {amount:g} {name} (the cluster has {offered:g}); start a node "
                f"with it (ray start --resources='{{\"{name}\": {amount:g}}}') or change the node's RESOURCES",
                exception_type="InfeasibleResources")
