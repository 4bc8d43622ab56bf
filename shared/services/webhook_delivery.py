"""Delivering one event to one endpoint: claim, sign, POST, record; and the sweep that re-enqueues.

A delivery is claimed with one conditional UPDATE (due, not claimed by a live attempt,
endpoint active), so two copies of its task never post at once; a task killed
mid-attempt leaves a claim that simply runs out. Every attempt is stored. The outcome
moves the delivery on: delivered; retrying later (exponential backoff with jitter over
``WEBHOOK_RETRY_WINDOW_SECONDS``); dead once out of attempts. 410 Gone disables the
endpoint; ``WEBHOOK_PAUSE_AFTER_FAILURES`` failures in a row pause it.

The outbox is the truth: :func:`due_for_enqueue` finds deliveries that are due but
have no message on the broker that ran (Redis flushed, a publish lost, a worker
killed), and the beat sweep enqueues them again. At least once, never lost.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session as DbSession

from shared.config import Settings
from shared.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint, aware, utcnow
from shared.sealing import unseal
from shared.uow import UnitOfWork
from shared.webhooks import http
from shared.webhooks.backoff import next_delay
from shared.webhooks.signing import signature_headers
from shared.webhooks.targets import parse_networks

log = logging.getLogger(__name__)

OPEN_STATES = ("pending", "retrying")
SWEEP_BATCH = 1000


@dataclass(frozen=True)
class Claimed:
    """What one attempt needs, read under the claim."""

    delivery_id: str
    endpoint_id: str
    company_id: str
    url: str
    event_id: str
    body: str
    secrets: list[str]


@dataclass(frozen=True)
class Outcome:
    """Where an attempt left the delivery; ``retry_in`` seconds when it will be tried again."""

    state: str
    retry_in: float | None = None


def envelope(event: Event) -> dict:
    """The JSON body posted for ``event`` (the same for every attempt and replay)."""
    return {
        "id": event.id,
        "type": event.type,
        "timestamp": event.created_at.isoformat(),
        "company_id": event.company_id,
        "session": {"id": event.session_id, "name": event.session_name},
        "seq": event.seq,
        "data": event.payload_dict,
    }


def _signing_secrets(settings: Settings, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    secrets = [unseal(settings, endpoint.secret)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and aware(expires) > now:
        secrets.append(unseal(settings, endpoint.previous_secret))
    return secrets


def claim(uow: UnitOfWork, delivery_id: str) -> Claimed | None:
    """Take the delivery for one attempt, or ``None`` (not due, taken, finished, endpoint not active)."""
    settings = uow.settings
    now = utcnow()
    # Longer than any attempt can take (connect, a slow answer, a bounded body read); a
    # claim that outlives its attempt only delays a retry.
    hold = 2 * (settings.WEBHOOK_CONNECT_TIMEOUT + settings.WEBHOOK_READ_TIMEOUT) + 5
    with uow:
        taken = uow.db.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.state.in_(OPEN_STATES),
                WebhookDelivery.next_attempt_at <= now,
                (WebhookDelivery.locked_until.is_(None)) | (WebhookDelivery.locked_until < now),
                WebhookDelivery.endpoint_id.in_(
                    select(WebhookEndpoint.id).where(WebhookEndpoint.status == "active")
                ),
            )
            .values(locked_until=now + timedelta(seconds=hold))
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:
            return None
        delivery = uow.db.get(WebhookDelivery, delivery_id)
        endpoint = uow.db.get(WebhookEndpoint, delivery.endpoint_id)
        event = uow.db.get(Event, delivery.event_id)
        claimed = Claimed(
            delivery_id=delivery.id,
            endpoint_id=endpoint.id,
            company_id=delivery.company_id,
            url=endpoint.url,
            event_id=event.id,
            body=json.dumps(envelope(event), separators=(",", ":")),
            secrets=_signing_secrets(settings, endpoint, now),
        )
        uow.commit()
    return claimed


def attempt(settings: Settings, claimed: Claimed) -> http.AttemptResult:
    """POST the claimed delivery once, signed with every secret that currently signs."""
    headers = signature_headers(claimed.secrets, claimed.event_id, utcnow(), claimed.body)
    return http.post(
        claimed.url,
        claimed.body.encode(),
        headers,
        allowed_networks=parse_networks(settings.WEBHOOK_ALLOWED_NETWORKS),
        connect_timeout=settings.WEBHOOK_CONNECT_TIMEOUT,
        read_timeout=settings.WEBHOOK_READ_TIMEOUT,
    )


def record(uow: UnitOfWork, claimed: Claimed, result: http.AttemptResult) -> Outcome:
    """Store the attempt and move the delivery (and the endpoint's failure count) on.

    Only the delivery row is locked. The endpoint's failure count moves by atomic
    UPDATEs, and a success on a healthy endpoint does not write it at all, so
    deliveries to one endpoint never queue behind each other's transactions.
    """
    settings = uow.settings
    now = utcnow()
    with uow:
        delivery = uow.db.get(WebhookDelivery, claimed.delivery_id, with_for_update=True)
        if delivery is None:  # deleted with its endpoint meanwhile
            return Outcome("deleted")
        uow.db.add(
            WebhookAttempt(
                delivery_id=delivery.id,
                attempted_at=now,
                status_code=result.status_code,
                latency_ms=round(result.latency_ms, 1),
                response_excerpt=result.response_excerpt,
                error=result.error,
            )
        )
        delivery.attempts += 1
        delivery.last_status_code, delivery.last_error = result.status_code, result.error
        delivery.locked_until = None
        outcome = _advance(uow.db, settings, delivery, result, now)
        uow.commit()
    log.info(
        "company %s: webhook %s event %s attempt %d -> %s (%s)",
        claimed.company_id,
        claimed.endpoint_id,
        claimed.event_id,
        delivery.attempts,
        outcome.state,
        result.status_code if result.status_code is not None else result.error,
    )
    return outcome


def _endpoint_update(endpoint_id: str):
    return (
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id)
        .execution_options(synchronize_session=False)
    )


def _advance(
    db: DbSession, settings: Settings, delivery: WebhookDelivery, result: http.AttemptResult, now: datetime
) -> Outcome:
    endpoint_id = delivery.endpoint_id
    if result.ok:
        delivery.state, delivery.delivered_at = "delivered", now
        db.execute(
            _endpoint_update(endpoint_id)
            .where(WebhookEndpoint.consecutive_failures != 0)
            .values(consecutive_failures=0)
        )
        return Outcome("delivered")
    failures = db.execute(
        _endpoint_update(endpoint_id)
        .values(consecutive_failures=WebhookEndpoint.consecutive_failures + 1)
        .returning(WebhookEndpoint.consecutive_failures)
    ).scalar()
    failure = f"HTTP {result.status_code}" if result.status_code is not None else result.error
    if result.gone:
        db.execute(
            _endpoint_update(endpoint_id).values(
                status="disabled", status_reason=f"the receiver answered 410 Gone at {now.isoformat()}"
            )
        )
        delivery.state = "dead"
        log.warning("company %s: webhook %s disabled (410 Gone)", delivery.company_id, endpoint_id)
        return Outcome("dead")
    if failures is not None and failures >= settings.WEBHOOK_PAUSE_AFTER_FAILURES:
        reason = f"paused after {failures} failed attempts in a row; last: {failure}"
        paused = db.execute(
            _endpoint_update(endpoint_id)
            .where(WebhookEndpoint.status == "active")
            .values(status="paused", status_reason=reason)
        )
        if paused.rowcount:
            log.warning("company %s: webhook %s %s", delivery.company_id, endpoint_id, reason)
    delay = next_delay(
        delivery.attempts, settings.WEBHOOK_MAX_ATTEMPTS, settings.WEBHOOK_RETRY_WINDOW_SECONDS
    )
    if delay is None:
        delivery.state = "dead"
        return Outcome("dead")
    delivery.state = "retrying"
    delivery.next_attempt_at = now + timedelta(seconds=delay)
    delivery.enqueued_at = None
    return Outcome("retrying", delay)


def deliver(uow: UnitOfWork, delivery_id: str) -> Outcome | None:
    """One attempt of the delivery, if it can be claimed now (``None`` if not)."""
    claimed = claim(uow, delivery_id)
    if claimed is None:
        return None
    return record(uow, claimed, attempt(uow.settings, claimed))


def mark_enqueued(uow: UnitOfWork, delivery_id: str) -> None:
    """Note that a message for the delivery was put on the broker now."""
    with uow:
        uow.db.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(enqueued_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        uow.commit()


def due_for_enqueue(uow: UnitOfWork) -> list[str]:
    """Due deliveries with no recent broker message, marked enqueued now; their ids.

    "No recent message": never enqueued since it became due, or enqueued longer than
    ``WEBHOOK_REQUEUE_SECONDS`` ago without being attempted (the message was lost).
    """
    now = utcnow()
    cutoff = now - timedelta(seconds=uow.settings.WEBHOOK_REQUEUE_SECONDS)
    with uow:
        ids = list(
            uow.db.scalars(
                select(WebhookDelivery.id)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(
                    WebhookDelivery.state.in_(OPEN_STATES),
                    WebhookDelivery.next_attempt_at <= now,
                    (WebhookDelivery.locked_until.is_(None)) | (WebhookDelivery.locked_until < now),
                    (WebhookDelivery.enqueued_at.is_(None)) | (WebhookDelivery.enqueued_at <= cutoff),
                    WebhookEndpoint.status == "active",
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(SWEEP_BATCH)
                .with_for_update(skip_locked=True, of=WebhookDelivery)
            )
        )
        if ids:
            uow.db.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(ids))
                .values(enqueued_at=now)
                .execution_options(synchronize_session=False)
            )
        uow.commit()
    return ids
