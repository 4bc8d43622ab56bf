"""One delivery at a time, in-process, to a real local receiver: signatures, attempts, states.

Both databases. The webhook worker runs exactly this code (``webhook_delivery.deliver``);
the end-to-end tests run it in the real worker process.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from shared.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, utcnow
from shared.services import events, webhook_delivery, webhook_endpoints
from shared.uow import UnitOfWork
from tests.integration.test_messages_store import make_linked
from tests.webhook_stack import Receiver


@pytest.fixture
def hook_settings(settings):
    return settings.with_overrides(
        WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
        WEBHOOK_MAX_ATTEMPTS=3,
        WEBHOOK_RETRY_WINDOW_SECONDS=0.3,
        WEBHOOK_PAUSE_AFTER_FAILURES=100,
        WEBHOOK_READ_TIMEOUT=2,
    )


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def session_id(hook_settings, tenant) -> str:
    return make_linked(hook_settings, tenant.company_id).id


def endpoint(hook_settings, tenant, receiver, **kwargs):
    return webhook_endpoints.create_endpoint(
        UnitOfWork(hook_settings), tenant.company_id, url=receiver.url, **kwargs
    )


def emit(hook_settings, session_id, event_type=events.SESSION_QR, payload=None) -> list[str]:
    """Write one event; the ids of the deliveries it fanned out to."""
    with UnitOfWork(hook_settings) as uow:
        event = events.emit(uow.db, session_id, event_type, payload or {"qr": "2@x"})
        ids = list(uow.db.info.get(events.PENDING_DELIVERIES, []))
        uow.commit()
    return [event.id, *ids]


def deliver_until_done(hook_settings, delivery_id, rounds=10):
    """Attempt the delivery each time it is due, as the worker and the sweep would."""
    for _ in range(rounds):
        with UnitOfWork(hook_settings) as uow:
            uow.db.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id)
                .values(next_attempt_at=utcnow())
            )
            uow.commit()
        outcome = webhook_delivery.deliver(UnitOfWork(hook_settings), delivery_id)
        if outcome is None or outcome.state != "retrying":
            return outcome
    raise AssertionError("delivery never finished")


def delivery(hook_settings, delivery_id) -> WebhookDelivery:
    with UnitOfWork(hook_settings) as uow:
        row = uow.db.get(WebhookDelivery, delivery_id)
        row.attempt_rows  # noqa: B018 - load them before the session closes
        return row


def test_a_delivery_is_signed_and_recorded(hook_settings, tenant, receiver, session_id):
    created = endpoint(hook_settings, tenant, receiver)
    event_id, delivery_id = emit(hook_settings, session_id)
    outcome = webhook_delivery.deliver(UnitOfWork(hook_settings), delivery_id)
    assert outcome.state == "delivered"
    (request,) = receiver.requests
    assert request.headers["webhook-id"] == event_id
    body = Webhook(created.secret).verify(request.body, request.headers)
    assert body["id"] == event_id and body["type"] == "session.qr" and body["seq"] == 1
    assert body["session"] == {"id": session_id, "name": "vendas"} and body["data"] == {"qr": "2@x"}
    (attempt,) = delivery(hook_settings, delivery_id).attempt_rows
    assert (
        attempt.status_code == 200 and attempt.response_excerpt == "answered 200" and attempt.latency_ms > 0
    )


def test_only_subscribed_events_and_sessions_fan_out(hook_settings, tenant, receiver, session_id):
    endpoint(hook_settings, tenant, receiver, event_types=["message.received"])
    endpoint(hook_settings, tenant, receiver, sessions=["another"])
    wanted = endpoint(hook_settings, tenant, receiver, event_types=["session.qr"], sessions=["vendas"])
    _, *deliveries = emit(hook_settings, session_id)
    assert len(deliveries) == 1
    assert delivery(hook_settings, deliveries[0]).endpoint_id == wanted.id


def test_failures_retry_then_die_and_every_attempt_is_kept(hook_settings, tenant, receiver, session_id):
    receiver.default = 500
    endpoint(hook_settings, tenant, receiver)
    _, delivery_id = emit(hook_settings, session_id)
    first = webhook_delivery.deliver(UnitOfWork(hook_settings), delivery_id)
    assert first.state == "retrying" and first.retry_in > 0
    # Not due yet: a second copy of the task does nothing.
    assert webhook_delivery.deliver(UnitOfWork(hook_settings), delivery_id) is None
    assert deliver_until_done(hook_settings, delivery_id).state == "dead"
    row = delivery(hook_settings, delivery_id)
    assert row.state == "dead" and row.attempts == 3 and row.last_status_code == 500
    assert [a.status_code for a in row.attempt_rows] == [500, 500, 500]
    assert len(receiver.requests) == 3


def test_410_gone_disables_the_endpoint(hook_settings, tenant, receiver, session_id):
    receiver.default = 410
    created = endpoint(hook_settings, tenant, receiver)
    _, delivery_id = emit(hook_settings, session_id)
    assert webhook_delivery.deliver(UnitOfWork(hook_settings), delivery_id).state == "dead"
    found = webhook_endpoints.get_endpoint(UnitOfWork(hook_settings), tenant.company_id, created.id)
    assert found.status == "disabled" and "410" in found.status_reason
    # A disabled endpoint gets no new deliveries.
    assert emit(hook_settings, session_id)[1:] == []


def test_consecutive_failures_pause_the_endpoint_and_resuming_sends_what_waited(
    hook_settings, tenant, receiver, session_id
):
    settings = hook_settings.with_overrides(WEBHOOK_PAUSE_AFTER_FAILURES=2, WEBHOOK_MAX_ATTEMPTS=10)
    receiver.default = 503
    created = endpoint(settings, tenant, receiver)
    first = emit(settings, session_id)[1]
    second = emit(settings, session_id)[1]
    webhook_delivery.deliver(UnitOfWork(settings), first)
    webhook_delivery.deliver(UnitOfWork(settings), second)
    paused = webhook_endpoints.get_endpoint(UnitOfWork(settings), tenant.company_id, created.id)
    assert paused.status == "paused" and "2 failed attempts in a row" in paused.status_reason
    waiting = emit(settings, session_id)[1]  # still collected while paused
    assert webhook_delivery.deliver(UnitOfWork(settings), waiting) is None
    receiver.default = 200
    webhook_endpoints.update_endpoint(
        UnitOfWork(settings), tenant.company_id, created.id, {"status": "active"}
    )
    for delivery_id in (first, second, waiting):
        assert deliver_until_done(settings, delivery_id).state == "delivered"


def test_during_a_rotation_both_secrets_sign_and_afterwards_only_the_new(
    hook_settings, tenant, receiver, session_id
):
    created = endpoint(hook_settings, tenant, receiver)
    rotated = webhook_endpoints.rotate_secret(UnitOfWork(hook_settings), tenant.company_id, created.id, 600)
    webhook_delivery.deliver(UnitOfWork(hook_settings), emit(hook_settings, session_id)[1])
    during = receiver.requests[-1]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    Webhook(created.secret).verify(during.body, during.headers)
    Webhook(rotated.secret).verify(during.body, during.headers)
    with UnitOfWork(hook_settings) as uow:
        uow.db.execute(
            update(WebhookEndpoint).values(previous_secret_expires_at=utcnow() - timedelta(seconds=1))
        )
        uow.commit()
    webhook_delivery.deliver(UnitOfWork(hook_settings), emit(hook_settings, session_id)[1])
    after = receiver.requests[-1]
    Webhook(rotated.secret).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(created.secret).verify(after.body, after.headers)


def test_a_claimed_delivery_cannot_be_claimed_twice(hook_settings, tenant, receiver, session_id):
    endpoint(hook_settings, tenant, receiver)
    _, delivery_id = emit(hook_settings, session_id)
    assert webhook_delivery.claim(UnitOfWork(hook_settings), delivery_id) is not None
    assert webhook_delivery.claim(UnitOfWork(hook_settings), delivery_id) is None
    assert receiver.requests == []


def test_the_sweep_finds_due_deliveries_whose_message_was_lost(hook_settings, tenant, receiver, session_id):
    settings = hook_settings.with_overrides(WEBHOOK_REQUEUE_SECONDS=0)
    endpoint(settings, tenant, receiver)
    _, delivery_id = emit(settings, session_id)
    # Just published: not swept while its message may still run ...
    assert webhook_delivery.due_for_enqueue(UnitOfWork(hook_settings)) == []
    # ... but once the requeue time passed with no attempt, it is enqueued again, once.
    assert webhook_delivery.due_for_enqueue(UnitOfWork(settings)) == [delivery_id]
    assert webhook_delivery.due_for_enqueue(UnitOfWork(hook_settings)) == []


def test_replay_sends_delivered_events_again_under_the_same_id(
    hook_settings, tenant, receiver, session_id, client
):
    created = endpoint(hook_settings, tenant, receiver)
    sent = [emit(hook_settings, session_id) for _ in range(3)]
    for _, delivery_id in sent:
        webhook_delivery.deliver(UnitOfWork(hook_settings), delivery_id)
    result = webhook_endpoints.replay(
        UnitOfWork(hook_settings), tenant.company_id, created.id, session="vendas", after_seq=1
    )
    assert result.queued == 2 and not result.truncated
    for delivery_id in result.delivery_ids:
        webhook_delivery.deliver(UnitOfWork(hook_settings), delivery_id)
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert ids == [sent[0][0], sent[1][0], sent[2][0], sent[1][0], sent[2][0]]
    with UnitOfWork(hook_settings) as uow:
        replays = uow.db.scalars(select(WebhookDelivery).where(WebhookDelivery.replay.is_(True))).all()
        assert len(replays) == 2 and all(r.state == "delivered" for r in replays)
        assert uow.db.scalar(select(WebhookAttempt.id).limit(1)) is not None
