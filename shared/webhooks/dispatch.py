"""Hand new webhook deliveries to the broker right after the transaction that made them commits.

:func:`shared.services.events.fan_out` notes the ids of the deliveries it creates on
the database session; this module's ``after_commit`` hook passes them to a background
thread that publishes one delivery task each. Publishing off the committing thread
means a slow or absent broker never delays the change itself (a session worker's
event thread, say). A publish that fails is only logged: the delivery row is the
truth, and the sweep enqueues it again (``shared.services.webhook_delivery``).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from celery import Celery
from sqlalchemy import event
from sqlalchemy.orm import Session as DbSession

from shared.config import WEBHOOKS_QUEUE
from shared.services.events import PENDING_DELIVERIES

log = logging.getLogger(__name__)

DELIVER_TASK = "zaphub.webhook.deliver"
SWEEP_TASK = "zaphub.webhook.sweep"

Publish = Callable[[str], None]

_publish: Publish | None = None
# Made by install(), not at import: gunicorn's master imports this module before the
# gevent worker monkey-patches, and a real SimpleQueue that the (green) dispatch thread
# waits on would block the whole worker.
_queue: queue.SimpleQueue[str] | None = None
_thread: threading.Thread | None = None
_lock = threading.Lock()


def install(publish: Publish) -> None:
    """Publish each committed delivery's id with ``publish`` from now on (one per process)."""
    global _publish, _thread, _queue
    with _lock:
        if _queue is None:
            _queue = queue.SimpleQueue()
        _publish = publish
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, args=(_queue,), name="webhook-dispatch", daemon=True)
            _thread.start()


def _run(pending: queue.SimpleQueue[str]) -> None:
    while True:
        delivery_id = pending.get()
        publish = _publish
        if publish is None:
            continue
        try:
            publish(delivery_id)
        except Exception as exc:  # the sweep enqueues it again
            log.warning("webhook delivery %s not published (%s); the sweep will enqueue it", delivery_id, exc)


@event.listens_for(DbSession, "after_commit")
def _after_commit(db: DbSession) -> None:
    ids = db.info.pop(PENDING_DELIVERIES, None)
    if ids and _publish is not None and _queue is not None:
        for delivery_id in ids:
            _queue.put(delivery_id)


@event.listens_for(DbSession, "after_rollback")
def _after_rollback(db: DbSession) -> None:
    db.info.pop(PENDING_DELIVERIES, None)


def celery_publisher(celery: Celery) -> Publish:
    """A :data:`Publish` that sends the delivery task to the ``webhooks`` queue."""

    def publish(delivery_id: str) -> None:
        celery.send_task(DELIVER_TASK, args=[delivery_id], queue=WEBHOOKS_QUEUE)

    return publish
