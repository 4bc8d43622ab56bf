"""A short-lived, in-process cache of API token → principal.

Every API request authenticates; without a cache each one starts with a database read
of its user. An entry is kept for at most ``TOKEN_CACHE_SECONDS`` after it was read from
the database, and is keyed by the token's SHA-256 hash (never the raw token). A revoke or
rotate drops the user's entries in the process that made it at once; other processes
(the other gunicorn workers, an API when the CLI revokes) see it when their entry
expires, so a revoked token is refused everywhere within ``TOKEN_CACHE_SECONDS``.
Unknown or revoked tokens are never cached: a failure is always read again.
"""

from __future__ import annotations

import time
from typing import Generic, TypeVar

T = TypeVar("T")


class TokenCache(Generic[T]):
    """Token hashes → principals, each entry valid ``ttl`` seconds, at most ``size`` entries."""

    def __init__(self, ttl: float, size: int) -> None:
        self.ttl = ttl
        self.size = size
        # Insertion-ordered: the first entry is the oldest, evicted first when full.
        self._entries: dict[str, tuple[float, str, T]] = {}

    def get(self, token_hash: str) -> T | None:
        """The principal cached for ``token_hash``, or ``None`` if absent or expired."""
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        expires, _user_id, principal = entry
        if time.monotonic() >= expires:
            self._entries.pop(token_hash, None)
            return None
        return principal

    def put(self, token_hash: str, user_id: str, principal: T, read_at: float) -> None:
        """Remember ``principal`` until ``ttl`` after ``read_at`` (monotonic, taken before the read)."""
        if self.ttl <= 0 or self.size <= 0:
            return
        while len(self._entries) >= self.size:
            self._entries.pop(next(iter(self._entries)), None)
        self._entries[token_hash] = (read_at + self.ttl, user_id, principal)

    def forget_user(self, user_id: str) -> None:
        """Drop every entry of ``user_id`` (its token was revoked or rotated)."""
        for key in [key for key, entry in self._entries.items() if entry[1] == user_id]:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()
