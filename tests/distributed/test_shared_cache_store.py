"""The shared cache's store on its own (no Ray): bounded in bytes, least recently used evicted first."""

import pytest

from partyflow.config import ConfigError
from partyflow.distributed.settings import BackendSettings
from partyflow.distributed.shared_cache import SharedCacheStore


def test_the_store_evicts_the_least_recently_used_beyond_its_bytes() -> None:
    store = SharedCacheStore(max_bytes=400)
    for key in "abc":
        assert store.put(key, bytes(100))
    assert store.get("a") == bytes(100)  # a is now the most recent: b goes first
    assert store.put("d", bytes(100)) and store.put("e", bytes(100))
    assert store.get("b") is None and store.get("a") is not None
    stats = store.stats()
    assert stats["entries"] == 4 and stats["bytes"] == 400 and stats["evicted"] == 1
    assert stats["hits"] == 2 and stats["misses"] == 1


def test_one_entry_may_not_take_more_than_a_quarter_of_the_store() -> None:
    store = SharedCacheStore(max_bytes=400)
    assert store.put("small", bytes(10))
    assert not store.put("huge", bytes(101))
    assert store.get("huge") is None and store.get("small") is not None
    assert store.stats()["refused"] == 1


def test_replacing_an_entry_keeps_the_byte_count_right() -> None:
    store = SharedCacheStore(max_bytes=1000)
    store.put("k", bytes(100))
    store.put("k", bytes(50))
    assert store.stats()["bytes"] == 50
    store.clear()
    assert store.stats()["entries"] == 0 and store.stats()["bytes"] == 0


def test_the_settings_switch_and_size() -> None:
    on = BackendSettings.from_raw({"engine": {"backend": "ray"}}, env={})
    assert on.shared_cache is True and on.shared_cache_bytes == 256 * 2**20
    off = BackendSettings.from_raw({"engine": {"ray_shared_cache": False, "ray_shared_cache_bytes": "64MiB"}}, env={})
    assert off.shared_cache is False and off.shared_cache_bytes == 64 * 2**20
    with pytest.raises(ConfigError, match="ray_shared_cache must be true or false"):
        BackendSettings.from_raw({"engine": {"ray_shared_cache": "maybe"}}, env={})
    with pytest.raises(ConfigError, match="ray_shared_cache_bytes"):
        BackendSettings.from_raw({"engine": {"ray_shared_cache_bytes": "lots"}}, env={})
