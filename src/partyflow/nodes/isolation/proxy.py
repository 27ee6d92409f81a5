"""Host-side stand-ins for the node classes of an isolated pack.

A proxy class carries the original's declarations (RETURN_TYPES, CATEGORY, OUTPUT_NODE, INPUT_IS_LIST, ... as the
worker reported them), so the registry, object_info, validation and the executor read it exactly like the real
class; only its behaviour is forwarded: INPUT_TYPES (live, because packs list files there), IS_CHANGED and
VALIDATE_INPUTS (on the class, with the original's parameter names so the engine passes the same arguments),
FUNCTION and check_lazy_status (on the instance the worker keeps for each proxy instance). Optional methods exist
on the proxy only when the original has them, because the engine asks `hasattr`.
"""

from __future__ import annotations

import inspect
import logging
import weakref
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from partyflow.nodes.host import current_host_or_none, current_scope
from partyflow.nodes.isolation.client import WorkerClient, WorkerError

__all__ = ["IsolatedNode", "make_proxy_class"]

logger = logging.getLogger("partyflow.isolation")


class IsolatedNode:
    """Base of every proxy class; one proxy instance stands for one node instance in the worker."""

    _pf_client: ClassVar[WorkerClient]
    _pf_class_type: ClassVar[str]
    _pf_pack: ClassVar[str]
    _pf_input_types: ClassVar[Mapping[str, Any]]

    def __init__(self) -> None:
        client = type(self)._pf_client
        self._pf_id = client.new_instance_id()
        weakref.finalize(self, client.release, self._pf_id)

    @classmethod
    def INPUT_TYPES(cls) -> Mapping[str, Any]:  # noqa: N802 - the node interface's name
        try:
            return cls._pf_client.request({"op": "input_types", "class_type": cls._pf_class_type},
                                          doing=f"reading {cls._pf_class_type}.INPUT_TYPES")
        except WorkerError as exc:  # keep object_info available while the worker cannot start
            logger.warning("isolated pack %s: %s; showing the INPUT_TYPES reported at load time", cls._pf_pack, exc)
            return cls._pf_input_types

    def _pf_call(self, method: str, kwargs: dict[str, Any]) -> Any:
        cls = type(self)
        scope = current_scope()
        host = current_host_or_none()

        def on_event(message: tuple[Any, ...]) -> None:
            if message[0] == "progress" and scope is not None:
                scope.report_progress(message[1], message[2], message[3])
            elif message[0] == "custom" and host is not None:
                host.emit_custom(message[1], message[2], message[3])

        scope_data = None if scope is None else {"prompt_id": scope.prompt_id, "node_id": scope.node_id,
                                                 "client_id": scope.client_id, "call_index": scope.call_index}
        request = {"op": "call", "class_type": cls._pf_class_type, "instance": self._pf_id, "method": method,
                   "kwargs": kwargs, "scope": scope_data}
        return cls._pf_client.request(request, values=kwargs, doing=f"running {cls._pf_class_type}.{method}",
                                      on_event=on_event, interrupt=scope.interrupt if scope is not None else None)


def make_proxy_class(client: WorkerClient, pack: str, info: Mapping[str, Any]) -> type:
    """A class with the reported declarations whose methods run in `client`'s worker."""
    class_type = str(info["class_type"])
    attrs: dict[str, Any] = dict(info["attributes"])
    attrs.update(_pf_client=client, _pf_class_type=class_type, _pf_pack=pack,
                 _pf_input_types=info["input_types"], __module__=f"custom_nodes.{pack}",
                 __doc__=f"{class_type} of isolated pack {pack!r}, running in the pack's own environment.")
    function = info.get("function")
    if isinstance(function, str):
        attrs["FUNCTION"] = function
        attrs[function] = _instance_method(function)
    if info.get("lazy_status"):
        attrs["check_lazy_status"] = _instance_method("check_lazy_status")
    for name, signature in dict(info.get("optional") or {}).items():
        attrs[name] = classmethod(_class_method(name, signature))
    return type(str(info.get("name") or class_type), (IsolatedNode,), attrs)


def _instance_method(method: str) -> Callable[..., Any]:
    def forward(self: IsolatedNode, **kwargs: Any) -> Any:
        return self._pf_call(method, kwargs)

    forward.__name__ = forward.__qualname__ = method
    return forward


def _class_method(method: str, signature: list[tuple[str, int, bool]] | None) -> Callable[..., Any]:
    def forward(cls: type[IsolatedNode], **kwargs: Any) -> Any:
        return cls._pf_client.request(
            {"op": "class_call", "class_type": cls._pf_class_type, "method": method, "kwargs": kwargs},
            values=kwargs, doing=f"running {cls._pf_class_type}.{method}")

    forward.__name__ = forward.__qualname__ = method
    if signature is not None:
        owner = inspect.Parameter("_pf_owner", inspect.Parameter.POSITIONAL_ONLY)
        params = [inspect.Parameter(name, inspect._ParameterKind(kind),
                                    default=None if has_default else inspect.Parameter.empty)
                  for name, kind, has_default in signature]
        try:
            forward.__signature__ = inspect.Signature([owner, *params])  # type: ignore[attr-defined]
        except ValueError:  # an unusual signature: accept everything, the worker applies the real one
            pass
    return forward
