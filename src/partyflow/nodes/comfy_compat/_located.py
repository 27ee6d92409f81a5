"""Where ComfyUI's top-level host modules say they live: in the engine's home, never in partyflow's package.

Packs take `os.path.dirname(folder_paths.__file__)` (or `server.__file__`, `nodes.__file__`) as ComfyUI's root
and write beside it (web extensions, configs, downloads). Our modules drop their real `__file__` and answer it
through their module `__getattr__` with a path in the running engine's home, so such writes land in the home.
"""

from __future__ import annotations

from partyflow.nodes.host import current_host_or_none

__all__ = ["located_file"]


def located_file(module_file: str, basename: str) -> str:
    """`<home>/<basename>` for the engine importing or running the caller; the real file outside an engine."""
    host = current_host_or_none()
    return str(host.home.root / basename) if host is not None else module_file
