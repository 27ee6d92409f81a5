"""ComfyUI's `comfy_api.feature_flags`: what the server and a connected client support."""

from __future__ import annotations

from typing import Any

__all__ = ["SERVER_FEATURE_FLAGS", "get_connection_feature", "get_server_features", "supports_feature"]

SERVER_FEATURE_FLAGS: dict[str, Any] = {"supports_preview_metadata": False, "max_upload_size": 100 * 1024 * 1024}


def get_server_features() -> dict[str, Any]:
    return dict(SERVER_FEATURE_FLAGS)


def get_connection_feature(sockets_metadata: Any, sid: str, feature_name: str, default: Any = False) -> Any:
    """A client's advertised feature; partyflow does not record per-client flags, so the default."""
    if isinstance(sockets_metadata, dict):
        return sockets_metadata.get(sid, {}).get("feature_flags", {}).get(feature_name, default)
    return default


def supports_feature(sockets_metadata: Any, sid: str, feature_name: str) -> bool:
    return get_connection_feature(sockets_metadata, sid, feature_name, False) is True
