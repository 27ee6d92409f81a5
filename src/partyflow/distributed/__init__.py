"""Execution backends: where queued prompts (and resource-hungry nodes) run.

`local` (the default) runs everything in the server's own engine, exactly as before. `ray` keeps the durable queue
and the history in the server and hands each prompt to a pool of Ray actors, each holding an `Engine` over the
same home; nodes that declare `RESOURCES` run on Ray actors that hold those resources. Ray is imported only when
the ray backend is chosen, so `import partyflow` stays light.
"""

from partyflow.distributed.backend import ExecutionBackend, LocalBackend, make_backend
from partyflow.distributed.settings import BackendSettings

__all__ = ["BackendSettings", "ExecutionBackend", "LocalBackend", "make_backend"]
