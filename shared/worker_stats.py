"""Figures that only workers know, kept in Redis for ``GET /metrics``.

The API never scrapes a worker process: each worker writes here and the metrics
collector reads here at scrape time, so every gunicorn worker answers the same.

- Per-worker gauges (Chromium resident memory, browser count), rewritten on every
  heartbeat with a TTL of a few leases: a dead worker's figures disappear by themselves.
- Counters (restores, failovers, login-state saves), by worker and outcome, in one hash.
- Duration histograms (restores, failovers): per-bucket counts, a sum and a count, so
  the collector can answer a cumulative Prometheus histogram.

Keys live under the deployment's ``BROKER_KEY_PREFIX``. Writing is best effort: a
Redis hiccup costs a figure, never a worker operation, so no function here raises.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import redis

from shared.config import Settings
from shared.live_state import _client

log = logging.getLogger(__name__)

# Restores and failovers take seconds (unpack a profile, launch Chromium, load the page)
# to minutes (a failover waits for the lease to run out and the sync to notice).
DURATION_BUCKETS: tuple[float, ...] = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, math.inf)

# A pending failover marker outlives any sensible restore; past this it is forgotten.
FAILOVER_MARKER_TTL = 3600

# Counter names (the ``what`` of the counters hash).
RESTORE = "restore"
FAILOVER = "failover"
LOGIN_STATE_SAVE = "login_state_save"


def _prefix(settings: Settings) -> str:
    return f"{settings.BROKER_KEY_PREFIX}zaphub:metrics:"


def _worker_key(settings: Settings, worker_id: str) -> str:
    return f"{_prefix(settings)}worker:{worker_id}"


def _workers_key(settings: Settings) -> str:
    return f"{_prefix(settings)}workers"


def _counters_key(settings: Settings) -> str:
    return f"{_prefix(settings)}counters"


def _histogram_key(settings: Settings, name: str) -> str:
    return f"{_prefix(settings)}histogram:{name}"


def _failover_key(settings: Settings, session_id: str) -> str:
    return f"{_prefix(settings)}failover-pending:{session_id}"


def stats_ttl(settings: Settings) -> float:
    """How long a worker's figures outlive its last heartbeat: a few leases."""
    return settings.WORKER_LEASE * 3


def publish_worker_stats(
    settings: Settings, worker_id: str, *, rss_bytes: int, browsers: int, ttl: float | None = None
) -> None:
    """Store this worker's Chromium figures for ``ttl`` seconds (default: a few leases)."""
    ttl = stats_ttl(settings) if ttl is None else ttl
    snapshot = {"rss_bytes": int(rss_bytes), "browsers": int(browsers), "at": time.time()}
    try:
        pipe = _client(settings).pipeline(transaction=False)
        pipe.set(_worker_key(settings, worker_id), json.dumps(snapshot), px=max(1, int(ttl * 1000)))
        pipe.sadd(_workers_key(settings), worker_id)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("worker %s: stats not published: %s", worker_id, type(exc).__name__)


def read_worker_stats(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every live worker's figures (worker id → snapshot); empty if Redis is down."""
    client = _client(settings)
    try:
        ids = sorted(member.decode() for member in client.smembers(_workers_key(settings)))
        if not ids:
            return {}
        raws = client.mget([_worker_key(settings, worker_id) for worker_id in ids])
        expired = [worker_id for worker_id, raw in zip(ids, raws, strict=True) if raw is None]
        if expired:
            # The set only names candidates; a worker whose figure expired is dropped from it.
            client.srem(_workers_key(settings), *expired)
    except redis.RedisError as exc:
        log.warning("worker stats unavailable: %s", type(exc).__name__)
        return {}
    return {worker_id: json.loads(raw) for worker_id, raw in zip(ids, raws, strict=True) if raw is not None}


def _count(settings: Settings, what: str, worker_id: str, ok: bool, seconds: float | None = None) -> None:
    outcome = "ok" if ok else "failed"
    try:
        pipe = _client(settings).pipeline(transaction=False)
        pipe.hincrby(_counters_key(settings), f"{what}|{worker_id}|{outcome}", 1)
        if seconds is not None and ok:
            # Only completed operations have a meaningful duration.
            key = _histogram_key(settings, what)
            bucket = next(i for i, bound in enumerate(DURATION_BUCKETS) if seconds <= bound)
            pipe.hincrby(key, f"b{bucket}", 1)
            pipe.hincrbyfloat(key, "sum", float(seconds))
            pipe.hincrby(key, "count", 1)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("worker %s: %s not counted: %s", worker_id, what, type(exc).__name__)


def record_restore(settings: Settings, worker_id: str, seconds: float, ok: bool) -> None:
    """Count a session start from stored login state (and its duration when it came back)."""
    _count(settings, RESTORE, worker_id, ok, seconds)


def record_failover(settings: Settings, worker_id: str, seconds: float, ok: bool) -> None:
    """Count a session brought back on ``worker_id`` after its owner died."""
    _count(settings, FAILOVER, worker_id, ok, seconds)


def record_login_state_save(settings: Settings, worker_id: str, ok: bool) -> None:
    """Count one login-state save (``ok``) or a save that did not land."""
    _count(settings, LOGIN_STATE_SAVE, worker_id, ok)


def mark_failover_pending(settings: Settings, session_id: str) -> None:
    """Note that ``session_id`` lost its owner now; the worker that restores it ends the failover."""
    try:
        _client(settings).set(_failover_key(settings, session_id), repr(time.time()), ex=FAILOVER_MARKER_TTL)
    except redis.RedisError as exc:
        log.warning("session %s: failover start not noted: %s", session_id, type(exc).__name__)


def take_failover_pending(settings: Settings, session_id: str) -> float | None:
    """Seconds since ``session_id`` lost its owner, if a failover is pending (and clear it)."""
    try:
        raw = _client(settings).getdel(_failover_key(settings, session_id))
    except redis.RedisError as exc:
        log.warning("session %s: failover marker unreadable: %s", session_id, type(exc).__name__)
        return None
    return None if raw is None else max(0.0, time.time() - float(raw))


@dataclass(frozen=True)
class Histogram:
    """A duration histogram as stored: cumulative bucket counts, sum and count."""

    buckets: list[tuple[float, int]]
    sum: float
    count: int


@dataclass(frozen=True)
class Counters:
    """The worker-side counters: ``(what, worker, outcome) → value``, and the histograms."""

    values: dict[tuple[str, str, str], int]
    histograms: dict[str, Histogram]


def read_counters(settings: Settings) -> Counters:
    """Every counter and histogram (all zero if Redis is down or nothing happened yet)."""
    client = _client(settings)
    values: dict[tuple[str, str, str], int] = {}
    histograms: dict[str, Histogram] = {}
    try:
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(_counters_key(settings))
        for name in (RESTORE, FAILOVER):
            pipe.hgetall(_histogram_key(settings, name))
        raw_counters, *raw_histograms = pipe.execute()
    except redis.RedisError as exc:
        log.warning("worker counters unavailable: %s", type(exc).__name__)
        raw_counters, raw_histograms = {}, [{}, {}]
    for field, value in raw_counters.items():
        what, worker_id, outcome = field.decode().split("|")
        values[(what, worker_id, outcome)] = int(value)
    for name, raw in zip((RESTORE, FAILOVER), raw_histograms, strict=True):
        fields = {k.decode(): v for k, v in raw.items()}
        running, cumulative = 0, []
        for index, bound in enumerate(DURATION_BUCKETS):
            running += int(fields.get(f"b{index}", 0))
            cumulative.append((bound, running))
        histograms[name] = Histogram(cumulative, float(fields.get("sum", 0.0)), int(fields.get("count", 0)))
    return Counters(values, histograms)
