"""Job-finished notices over Redis pub/sub, and waiting for jobs with them.

When a job finishes, the worker publishes a notice on the job's own channel (under
``BROKER_KEY_PREFIX``) right after the commit. Whoever waits for the job — a client's
``GET /jobs/<id>?wait=``, a cleanup gathering its workers' parts — subscribes first,
then reads the rows, and reads them again when a notice arrives or every
``JOB_WAIT_RECHECK_SECONDS`` otherwise. The table stays the only truth: a notice only
says "read again", so a lost notice (Redis restarted, a job failed by sync or cleanup,
which do not announce) delays the answer by at most one recheck, never loses it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import redis

from shared.config import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# One client (and its connection pool) per Redis URL and process, made on first use:
# under gunicorn's gevent worker that is after the monkey-patching.
_clients: dict[str, redis.Redis] = {}
# Subscribers between two waits, connected and subscribed to nothing, per Redis URL: a
# wait takes one instead of opening a connection of its own each time.
_idle: dict[str, list] = {}
IDLE_SUBSCRIBERS = 32


def _client(settings: Settings) -> redis.Redis:
    client = _clients.get(settings.REDIS_URL)
    if client is None:
        client = redis.Redis.from_url(
            settings.REDIS_URL,
            socket_connect_timeout=settings.BROKER_TIMEOUT,
            socket_timeout=settings.BROKER_TIMEOUT,
        )
        _clients[settings.REDIS_URL] = client
    return client


def channel(settings: Settings, job_id: str) -> str:
    """The pub/sub channel of one job's finish."""
    return f"{settings.BROKER_KEY_PREFIX}zaphub:job-finished:{job_id}"


def announce_finished(settings: Settings, job_id: str, status: str) -> None:
    """Tell whoever waits that ``job_id`` finished (best effort: waiters recheck anyway)."""
    try:
        _client(settings).publish(channel(settings, job_id), status)
    except (redis.RedisError, OSError) as exc:
        log.warning("job %s: finish notice not published (%s); waiters will recheck", job_id, exc)


@contextmanager
def _subscribed(settings: Settings, job_ids: list[str]) -> Iterator[Callable[[float], None]]:
    """Subscribe to the jobs' channels; yields ``pause(seconds)``, which returns early on a notice.

    Without Redis the pause is a plain sleep, so waiting degrades to polling the table.
    """
    pubsub = None
    try:
        if not job_ids:
            raise redis.RedisError("nothing to subscribe to")
        idle = _idle.get(settings.REDIS_URL)
        pubsub = idle.pop() if idle else _client(settings).pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(*(channel(settings, job_id) for job_id in job_ids))
    except (redis.RedisError, OSError) as exc:
        if job_ids:
            log.warning("job notices unavailable (%s); waiting by rechecking only", exc)
        pubsub = None

    def pause(seconds: float) -> None:
        nonlocal pubsub
        if pubsub is None:
            time.sleep(seconds)
            return
        try:
            pubsub.get_message(timeout=seconds)
        except (redis.RedisError, OSError) as exc:
            log.warning("job notices lost (%s); waiting by rechecking only", exc)
            _close(pubsub)
            pubsub = None

    try:
        yield pause
    finally:
        if pubsub is not None:
            _release(settings, pubsub)


def _release(settings: Settings, pubsub) -> None:
    """Keep a subscriber for the next wait, unsubscribed (a notice that still comes for
    one of these jobs only makes that wait read the table once more)."""
    idle = _idle.setdefault(settings.REDIS_URL, [])
    if len(idle) >= IDLE_SUBSCRIBERS:
        _close(pubsub)
        return
    try:
        pubsub.unsubscribe()
    except (redis.RedisError, OSError):
        _close(pubsub)
        return
    idle.append(pubsub)


def _close(pubsub) -> None:
    try:
        pubsub.close()
    except (redis.RedisError, OSError):
        pass


def wait_for_jobs(
    settings: Settings, job_ids: list[str], timeout: float, read: Callable[[], tuple[bool, T]]
) -> T:
    """Call ``read`` until it says done (``(True, value)``) or ``timeout`` passes; its last value.

    ``read`` is called once at once (after subscribing, so no finish can slip between),
    again on every notice of one of ``job_ids``, and at least every
    ``JOB_WAIT_RECHECK_SECONDS``.
    """
    deadline = time.monotonic() + max(timeout, 0.0)
    with _subscribed(settings, job_ids) as pause:
        while True:
            done, value = read()
            remaining = deadline - time.monotonic()
            if done or remaining <= 0:
                return value
            pause(min(remaining, settings.JOB_WAIT_RECHECK_SECONDS))
