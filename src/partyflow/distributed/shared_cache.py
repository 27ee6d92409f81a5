"""Node outputs shared by every prompt worker of a Ray pool (`[engine] ray_shared_cache`, issue 15 item 5).

Each worker keeps its engine's own cache (the `cache` setting: classic, lru:N) and puts this one behind it: a
local miss asks the pool's `SharedCacheStore` actor, keyed by the very signatures the engine computes (class,
constant inputs, IS_CHANGED, and the signatures of upstream nodes), so a result one worker computed is reused by
another exactly when the local engine would have reused it. The store is bounded in bytes and evicts the least
recently used entries; values travel pickled, and outputs that cannot be pickled simply stay local.

The cache is best-effort: a store that is slow or gone makes lookups misses (the node runs), never failures.
"""

from __future__ import annotations

import logging
import pickle
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from partyflow.engine.cache import NodeResult, OutputCache

logger = logging.getLogger("partyflow.distributed")

CACHE_ACTOR = "partyflow-shared-cache"
DEFAULT_BYTES = 256 * 2**20
_LOOKUP_TIMEOUT_S = 5.0
_FLUSH_TIMEOUT_S = 10.0


class SharedCacheStore:
    """The pool's cache: pickled node results by signature, least recently used evicted beyond `max_bytes`.

    One entry may take at most a quarter of the budget, so one huge output cannot flush everything else.
    """

    def __init__(self, max_bytes: int = DEFAULT_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0
        self.stored = 0
        self.evicted = 0
        self.refused = 0

    def get(self, key: str) -> bytes | None:
        data = self._entries.get(key)
        if data is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return data

    def get_many(self, keys: list[str]) -> dict[str, bytes]:
        """The entries of `keys` this store holds (one round trip for a whole prompt)."""
        found = {}
        for key in keys:
            data = self.get(key)
            if data is not None:
                found[key] = data
        return found

    def put_many(self, items: list[tuple[str, bytes]]) -> int:
        return sum(self.put(key, data) for key, data in items)

    def put(self, key: str, data: bytes) -> bool:
        if len(data) > self.max_bytes // 4:
            self.refused += 1
            return False
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old)
        self._entries[key] = data
        self._bytes += len(data)
        self.stored += 1
        while self._bytes > self.max_bytes and self._entries:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped)
            self.evicted += 1
        return True

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def stats(self) -> dict[str, int]:
        return {"entries": len(self._entries), "bytes": self._bytes, "max_bytes": self.max_bytes,
                "hits": self.hits, "misses": self.misses, "stored": self.stored, "evicted": self.evicted,
                "refused": self.refused}


class SharedOutputCache:
    """An engine `OutputCache` in a prompt worker: its own cache first, then the pool's store.

    Round trips are what this costs, so there are two per prompt: the executor hands `prefetch` every signature of
    the prompt before its walk (the store's hits land in the local cache, its misses are remembered, so the walk
    never waits on the store), and the prompt's new results go to the store in one call when it ends, before its
    result reaches the server (the next prompt, on any worker, finds them). `get` asks the store itself only for
    signatures it was not given (nodes a prompt creates as it runs).
    """

    def __init__(self, inner: OutputCache, store: Any, worker_id: str) -> None:
        self.inner = inner
        self.store = store
        self.worker_id = worker_id
        self.hits = 0
        self.unshareable = 0
        self._pending: list[tuple[str, bytes]] = []
        self._missing: set[str] = set()  # asked this prompt, not in the store then
        self._fetched: set[str] = set()  # prefetched from the store, not used yet
        self._running = 0
        self._lock = threading.Lock()
        self._warned = False

    def begin_prompt(self) -> None:
        self.inner.begin_prompt()
        with self._lock:
            self._running += 1

    def prefetch(self, keys: list[str]) -> None:
        wanted = [key for key in keys if self.inner.get(key) is None]
        if not wanted:
            return
        found = self._call("get_many", wanted)
        if found is None:
            return
        fetched = []
        for key, data in found.items():
            value = self._decode(data)
            if value is not None:
                self.inner.put(key, value)
                fetched.append(key)
        with self._lock:
            self._fetched.update(fetched)
            self._missing.update(key for key in wanted if key not in found)

    def get(self, key: str) -> NodeResult | None:
        value = self.inner.get(key)
        if value is not None:
            if key in self._fetched:  # prefetched from the store: a shared hit once the walk uses it
                with self._lock:
                    self._fetched.discard(key)
                self.hits += 1
            return value
        if key in self._missing:
            return None
        data = self._call("get", key)
        value = self._decode(data) if data is not None else None
        if value is not None:
            self.inner.put(key, value)
            self.hits += 1
        return value

    def put(self, key: str, value: NodeResult) -> None:
        self.inner.put(key, value)
        try:
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # open clients, locks, generators: the result stays on this worker
            self.unshareable += 1
            return
        with self._lock:
            self._pending.append((key, data))

    def end_prompt(self, used: Iterable[str], *, unchanged: bool = False) -> None:
        self.inner.end_prompt(used, unchanged=unchanged)
        self.flush()
        with self._lock:
            self._running = max(self._running - 1, 0)
            if self._running == 0:  # misses go stale as other workers compute: forget them between prompts
                self._missing.clear()
                self._fetched.clear()

    def flush(self) -> None:
        """Send every result put so far to the store and wait until it has them (bounded: a stuck store only
        loses sharing)."""
        with self._lock:
            pending, self._pending = self._pending, []
        if pending:
            self._call("put_many", pending, timeout=_FLUSH_TIMEOUT_S)

    def clear(self) -> None:
        self.inner.clear()
        try:
            self.store.clear.remote()
        except Exception as exc:
            self._warn(exc)

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def _call(self, method: str, argument: Any, timeout: float = _LOOKUP_TIMEOUT_S) -> Any:
        import ray

        try:
            return ray.get(getattr(self.store, method).remote(argument), timeout=timeout)
        except Exception as exc:
            self._warn(exc)
            return None

    def _decode(self, data: bytes) -> NodeResult | None:
        try:
            value = pickle.loads(data)
        except Exception:  # written by another partyflow version, or a class this worker lacks: a miss
            return None
        return value

    def _warn(self, exc: BaseException) -> None:
        if not self._warned:  # once per worker: the log is for the operator, not one line per node
            self._warned = True
            logger.warning("the shared node cache is unavailable (%s); nodes run instead of reusing results",
                           exc)
