"""Webhook tasks: short adapters from a delivery id to ``shared.services.webhook_delivery``.

They run on the ``webhooks`` queue, in webhook worker processes of their own, so a
slow receiver never holds up a session job.
"""

from __future__ import annotations

import logging

from shared.config import WEBHOOKS_QUEUE
from shared.services import webhook_delivery
from shared.uow import UnitOfWork
from shared.webhooks.dispatch import DELIVER_TASK, SWEEP_TASK
from workers.webhook_app import app

log = logging.getLogger(__name__)


@app.task(name=DELIVER_TASK)
def deliver(delivery_id: str) -> None:
    """One attempt of a delivery; a soon retry is enqueued with its countdown, a later one by the sweep."""
    uow = UnitOfWork()
    outcome = webhook_delivery.deliver(uow, delivery_id)
    if outcome is None or outcome.retry_in is None:
        return
    if outcome.retry_in <= uow.settings.WEBHOOK_REQUEUE_SECONDS:
        deliver.apply_async((delivery_id,), countdown=outcome.retry_in, queue=WEBHOOKS_QUEUE)
        webhook_delivery.mark_enqueued(uow, delivery_id)


@app.task(name=SWEEP_TASK)
def sweep() -> int:
    """Enqueue every due delivery that has no live broker message; how many."""
    ids = webhook_delivery.due_for_enqueue(UnitOfWork())
    for delivery_id in ids:
        deliver.apply_async((delivery_id,), queue=WEBHOOKS_QUEUE)
    if ids:
        log.info("webhook sweep enqueued %d due deliveries", len(ids))
    return len(ids)
