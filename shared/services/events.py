"""The events outbox: every change a company may want to hear of, written with the change.

:func:`emit` is called inside the transaction that makes the change, so the event row
and the change commit or roll back together. It gives the event

- the session's next sequence number (``whatsapp_sessions.event_seq`` + 1, so the
  numbers of a session have no gaps: a rolled-back change takes its number with it);
- a ULID greater than the company's previous one, taken under the company row's lock
  held to the commit, so a company's ids sort in commit order and a reader that
  resumes "after id X" never misses an event committed later with a smaller id;

and fans it out into one pending delivery per webhook endpoint that wants it. The
deliveries are handed to the dispatcher after the commit (``shared.webhooks.dispatch``).

Lock order: a caller holds the session row (its fence) before :func:`emit` takes the
company row; a transaction touching several sessions locks them all first.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session as DbSession

from shared.models import (
    Company,
    Event,
    Message,
    WebhookDelivery,
    WebhookEndpoint,
    WhatsappSession,
    new_id,
    utcnow,
)
from shared.send_state import SendState
from shared.ulid import next_ulid

log = logging.getLogger(__name__)

SESSION_STATUS = "session.status"
SESSION_QR = "session.qr"
SESSION_REMOVED = "session.removed"
SESSION_PAIRING_CODE = "session.pairing_code"
MESSAGE_RECEIVED = "message.received"
MESSAGE_SENT = "message.sent"
MESSAGE_ACK = "message.ack"
MESSAGE_FAILED = "message.failed"
EVENT_TYPES = (
    SESSION_STATUS,
    SESSION_QR,
    SESSION_REMOVED,
    SESSION_PAIRING_CODE,
    MESSAGE_RECEIVED,
    MESSAGE_SENT,
    MESSAGE_ACK,
    MESSAGE_FAILED,
)

# What links a phone to the session: only admins see these (like GET /session/<name>/qr).
ADMIN_ONLY_TYPES = frozenset({SESSION_QR, SESSION_PAIRING_CODE})

# Where a transaction keeps the ids of the deliveries it created, for after the commit.
PENDING_DELIVERIES = "zaphub.pending_deliveries"


def emit(db: DbSession, session_id: str, event_type: str, payload: dict[str, Any]) -> Event:
    """Append ``event_type`` for the session to the outbox, in the caller's transaction."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    seq, company_id, name = db.execute(
        update(WhatsappSession)
        .where(WhatsappSession.id == session_id)
        # Numbering an event is not a change of the session: updated_at (retention) stays.
        .values(event_seq=WhatsappSession.event_seq + 1, updated_at=WhatsappSession.updated_at)
        .returning(WhatsappSession.event_seq, WhatsappSession.company_id, WhatsappSession.name)
        .execution_options(synchronize_session=False)
    ).one()
    previous = db.scalar(select(Company.last_event_id).where(Company.id == company_id).with_for_update())
    event = Event(
        id=next_ulid(previous),
        company_id=company_id,
        session_id=session_id,
        session_name=name,
        seq=seq,
        type=event_type,
        payload=json.dumps(payload, separators=(",", ":"), default=str),
        created_at=utcnow(),
    )
    db.execute(
        update(Company)
        .where(Company.id == company_id)
        .values(last_event_id=event.id)
        .execution_options(synchronize_session=False)
    )
    db.add(event)
    fan_out(db, event)
    return event


def fan_out(
    db: DbSession, event: Event, endpoints: Iterable[WebhookEndpoint] | None = None, *, replay: bool = False
) -> list[str]:
    """One pending delivery of ``event`` per endpoint that wants it; their ids.

    Without ``endpoints``, every endpoint of the company that is not disabled (a paused
    endpoint keeps collecting what it will be sent when it resumes).
    """
    if endpoints is None:
        endpoints = db.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.company_id == event.company_id, WebhookEndpoint.status != "disabled"
            )
        )
    now = utcnow()
    created = []
    for endpoint in endpoints:
        if not wants(endpoint, event.type, event.session_name):
            continue
        delivery = WebhookDelivery(
            id=new_id(),
            company_id=event.company_id,
            endpoint_id=endpoint.id,
            event_id=event.id,
            state="pending",
            attempts=0,
            next_attempt_at=now,
            # Counted as enqueued now: the dispatcher publishes it right after the commit,
            # and the sweep enqueues it again if that message never runs.
            enqueued_at=now,
            created_at=now,
            replay=replay,
        )
        db.add(delivery)
        created.append(delivery)
    if created:
        db.info.setdefault(PENDING_DELIVERIES, []).extend(d.id for d in created)
    return [d.id for d in created]


def wants(endpoint: WebhookEndpoint, event_type: str, session_name: str) -> bool:
    """Whether ``endpoint`` subscribes to this type of event of this session."""
    types, names = endpoint.event_types_list, endpoint.session_names_list
    return (not types or event_type in types) and (not names or session_name in names)


def status_change(
    db: DbSession, session_id: str, old: str | None, new: str, reason: str | None
) -> Event | None:
    """A ``session.status`` event when the status really changed."""
    if old == new:
        return None
    return emit(db, session_id, SESSION_STATUS, {"old_status": old, "status": new, "reason": reason})


def events_after(
    db: DbSession,
    company_id: str,
    after: str | None,
    *,
    session_name: str | None = None,
    types: Iterable[str] | None = None,
    limit: int = 100,
) -> list[Event]:
    """The company's events after the id ``after`` (or from the oldest), oldest first."""
    query = select(Event).where(Event.company_id == company_id)
    if after is not None:
        query = query.where(Event.id > after)
    if session_name is not None:
        query = query.where(Event.session_name == session_name)
    types = list(types or [])
    if types:
        query = query.where(Event.type.in_(types))
    return list(db.scalars(query.order_by(Event.id).limit(limit)))


def message_data(message: Message) -> dict[str, Any]:
    """What a message event says of the message (the API's field names)."""
    return {
        "id": message.id,
        "direction": message.direction,
        "chat_id": message.chat_id,
        "sender": message.sender,
        "recipient": message.recipient,
        "body": message.body,
        "type": message.type,
        "ack": message.ack,
        "wa_message_id": message.wa_message_id,
        "wa_timestamp": message.wa_timestamp.isoformat() if message.wa_timestamp else None,
        "reply_to": message.reply_to_id,
        "quoted_wa_id": message.quoted_wa_id,
        "send_state": message.send_state,
        "error": message.error,
    }


def message_stored(db: DbSession, message: Message) -> Event:
    """The event of a message first stored from the page: received, or sent from the phone."""
    db.flush()  # the message's id, for the payload
    kind = MESSAGE_RECEIVED if message.direction == "in" else MESSAGE_SENT
    return emit(db, message.session_id, kind, {"message": message_data(message)})


def message_progress(db: DbSession, message: Message, ack_before: str, state_before: str | None) -> None:
    """The events of a stored message that moved: sent or failed, and its new ack."""
    if message.send_state != state_before:
        if message.send_state == SendState.SENT:
            emit(db, message.session_id, MESSAGE_SENT, {"message": message_data(message)})
        elif message.send_state == SendState.FAILED:
            emit(db, message.session_id, MESSAGE_FAILED, {"message": message_data(message)})
    if message.ack != ack_before:
        emit(
            db,
            message.session_id,
            MESSAGE_ACK,
            {"previous_ack": ack_before, "ack": message.ack, "message": message_data(message)},
        )
