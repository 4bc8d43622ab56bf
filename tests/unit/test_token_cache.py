"""The token cache: entries expire ``ttl`` after their read, a revoke drops them, size is bounded."""

import time

from shared.token_cache import TokenCache


def test_an_entry_lives_ttl_seconds_from_its_read():
    cache = TokenCache(ttl=5, size=10)
    cache.put("fresh", "u1", "alice", read_at=time.monotonic())
    cache.put("stale", "u2", "bob", read_at=time.monotonic() - 5)
    assert cache.get("fresh") == "alice"
    assert cache.get("stale") is None
    assert cache.get("unknown") is None


def test_forgetting_a_user_drops_all_its_entries():
    cache = TokenCache(ttl=60, size=10)
    now = time.monotonic()
    cache.put("t1", "u1", "alice", read_at=now)
    cache.put("t2", "u1", "alice", read_at=now)
    cache.put("t3", "u2", "bob", read_at=now)
    cache.forget_user("u1")
    assert (cache.get("t1"), cache.get("t2"), cache.get("t3")) == (None, None, "bob")


def test_the_oldest_entry_goes_when_full_and_zero_ttl_caches_nothing():
    cache = TokenCache(ttl=60, size=2)
    now = time.monotonic()
    for n in range(3):
        cache.put(f"t{n}", f"u{n}", n, read_at=now)
    assert (cache.get("t0"), cache.get("t1"), cache.get("t2")) == (None, 1, 2)
    off = TokenCache(ttl=0, size=2)
    off.put("t", "u", "x", read_at=now)
    assert off.get("t") is None
