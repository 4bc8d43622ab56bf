"""Live state of sessions, as the owning worker sees it, shared through Redis.

Workers write a short-lived snapshot of each session they run on every heartbeat;
the API reads it for ``GET /session/<name>/details``. A snapshot that is not renewed
expires, so a dead worker's sessions stop showing as live by themselves. QR texts and
login state never go there.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from typing import Any

import redis

from shared.config import Settings

log = logging.getLogger(__name__)

PUBLISHED_FIELDS = ("status", "live", "phone_number", "push_name", "last_error")


@lru_cache(maxsize=8)
def _connect(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)


def _client(settings: Settings) -> redis.Redis:
    # One connection pool per Redis, not a new one per heartbeat or request.
    return _connect(settings.REDIS_URL, settings.BROKER_TIMEOUT)


def _key(settings: Settings, session_id: str) -> str:
    return f"{settings.BROKER_KEY_PREFIX}zaphub:live:{session_id}"


def publish(settings: Settings, worker_id: str, states: dict[str, dict[str, Any]], ttl: float) -> None:
    """Store each session's live state for ``ttl`` seconds."""
    pipe = _client(settings).pipeline(transaction=False)
    for session_id, state in states.items():
        snapshot = {name: state.get(name) for name in PUBLISHED_FIELDS}
        snapshot["worker_id"] = worker_id
        pipe.set(_key(settings, session_id), json.dumps(snapshot), px=int(ttl * 1000))
    pipe.execute()


def read(settings: Settings, session_id: str) -> dict[str, Any] | None:
    """The session's live state, or ``None`` if no worker reports it (or Redis is down)."""
    try:
        raw = _client(settings).get(_key(settings, session_id))
    except redis.RedisError as exc:
        log.warning("live state of session %s unavailable: %s", session_id, type(exc).__name__)
        return None
    return json.loads(raw) if raw else None
