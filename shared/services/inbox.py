"""What the page's message events write: messages stored once, contacts, monotonic acks.

Workers call these from the session manager's event thread. Every write first takes
the session's fence (:func:`shared.services.ownership.hold_fence`): one UPDATE that matches only while the
writing process owns the session at its epoch, and that locks the session row until
the commit, so an owner change cannot slip in between the check and the write. A
fenced-out worker writes nothing.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from shared import acks
from shared.acks import Ack
from shared.models import Contact, Message, utcnow
from shared.send_state import UNSENT_STATES, SendState
from shared.services import events
from shared.services.messages import history_entry
from shared.services.ownership import hold_fence
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)


def page_ack(value: Any) -> Ack:
    """The ack of a page payload; an unknown value counts as PENDING."""
    try:
        return acks.from_page(value)
    except (KeyError, TypeError, ValueError):
        return Ack.PENDING


def apply_ack(message: Message, ack: Ack, at: datetime | None = None) -> bool:
    """Move ``message`` to ``ack`` if that is progress, recording when; ``True`` if it moved."""
    if not acks.advances(message.ack, ack):
        return False
    message.ack = ack.value
    message.ack_history = json.dumps([*message.ack_history_list, history_entry(ack, at)])
    return True


def page_columns(payload: dict[str, Any]) -> dict[str, Any]:
    """The message columns a page's ``message`` payload gives (``None`` where it says nothing)."""
    timestamp = payload.get("timestamp")
    return {
        "wa_key_id": _text(payload.get("id"), 64),
        "chat_id": _text(payload.get("chat_id"), 128),
        "sender": _text(payload.get("sender"), 128),
        "recipient": _text(payload.get("recipient"), 128),
        "wa_timestamp": datetime.fromtimestamp(int(timestamp), UTC) if timestamp else None,
        "type": _text(payload.get("type"), 32),
        "quoted_wa_id": _text(payload.get("quoted_wa_id"), 128),
    }


def _text(value: Any, size: int) -> str | None:
    return str(value)[:size] if value not in (None, "") else None


def record_message(
    uow: UnitOfWork, session_id: str, worker_id: str, epoch: int, payload: dict[str, Any], *, lease_token: str
) -> bool:
    """Store a message the page reported, once per WhatsApp id; ``False`` when fenced out.

    A message already stored (a replay after a reconnect, or one of our own sends whose
    row the send job created) is completed and its ack moved forward, never duplicated.
    """
    wa_id = _text(payload.get("wa_id"), 128)
    if wa_id is None:
        log.warning("session %s: message event without an id ignored", session_id)
        return False
    ack = page_ack(payload.get("ack"))
    columns = page_columns(payload)
    with uow:
        held = hold_fence(uow.db, session_id, worker_id, epoch, lease_token)
        if held is None:
            log.warning(
                "session %s: message from worker %s epoch %d fenced out", session_id, worker_id, epoch
            )
            return False
        contact = _upsert_contact(uow.db, held.company_id, session_id, payload.get("contact"))
        message = uow.db.scalar(
            select(Message).where(Message.session_id == session_id, Message.wa_message_id == wa_id)
        )
        if message is None:
            message = _new_message(held.company_id, session_id, wa_id, payload, columns, ack)
            message.reply_to_id = _local_id(uow.db, session_id, columns["quoted_wa_id"])
            message.contact_id = contact.id if contact is not None else None
            uow.db.add(message)
            events.message_stored(uow.db, message)
        else:
            ack_before, state_before = message.ack, message.send_state
            for name, value in columns.items():
                if value is not None and getattr(message, name) is None:
                    setattr(message, name, value)
            apply_ack(message, ack)
            _sent_if_confirmed(message)
            if contact is not None:
                message.contact_id = contact.id
            events.message_progress(uow.db, message, ack_before, state_before)
        uow.commit()
    return True


def _sent_if_confirmed(message: Message) -> None:
    """A send of ours that WhatsApp took (ack past PENDING) counts as sent.

    One the page still holds PENDING does not: it may never leave if the page dies.
    """
    if message.send_state in UNSENT_STATES and message.ack not in (Ack.PENDING.value, Ack.ERROR.value):
        message.send_state, message.error = SendState.SENT, None


def _new_message(
    company_id: str, session_id: str, wa_id: str, payload: dict[str, Any], columns: dict[str, Any], ack: Ack
) -> Message:
    from_me = bool(payload.get("from_me"))
    return Message(
        company_id=company_id,
        session_id=session_id,
        direction="out" if from_me else "in",
        body=str(payload.get("body") or ""),
        wa_message_id=wa_id,
        **{**columns, "type": columns["type"] or "chat"},
        ack=ack.value,
        ack_history=json.dumps([history_entry(ack)]),
        # Sent from the phone itself: it left without us.
        send_state=SendState.SENT if from_me else None,
    )


def _local_id(db: DbSession, session_id: str, wa_id: str | None) -> str | None:
    if wa_id is None:
        return None
    return db.scalar(
        select(Message.id).where(Message.session_id == session_id, Message.wa_message_id == wa_id)
    )


def _upsert_contact(db: DbSession, company_id: str, session_id: str, data: Any) -> Contact | None:
    """Insert or refresh the contact a payload names (the session row lock serialises this)."""
    if not isinstance(data, dict) or not _text(data.get("number"), 32):
        return None
    number = _text(data.get("number"), 32)
    contact = db.scalar(select(Contact).where(Contact.session_id == session_id, Contact.number == number))
    if contact is None:
        contact = Contact(company_id=company_id, session_id=session_id, number=number)
        db.add(contact)
    for name in ("name", "push_name"):
        value = _text(data.get(name), 128)
        if value is not None:
            setattr(contact, name, value)
    db.flush()
    return contact


def record_ack(
    uow: UnitOfWork, session_id: str, worker_id: str, epoch: int, payload: dict[str, Any], *, lease_token: str
) -> bool:
    """Move a stored message's ack forward; ``False`` when fenced out, unknown or not progress."""
    wa_id = _text(payload.get("wa_id"), 128)
    ack = page_ack(payload.get("ack"))
    with uow:
        if hold_fence(uow.db, session_id, worker_id, epoch, lease_token) is None:
            log.warning("session %s: ack from worker %s epoch %d fenced out", session_id, worker_id, epoch)
            return False
        message = uow.db.scalar(
            select(Message).where(Message.session_id == session_id, Message.wa_message_id == wa_id)
        )
        if message is None:
            return False
        ack_before, state_before = message.ack, message.send_state
        if not apply_ack(message, ack):
            return False
        if ack is Ack.ERROR and message.send_state in UNSENT_STATES + (SendState.SENT,):
            message.send_state, message.error = SendState.FAILED, "WhatsApp reported a delivery failure"
        else:
            _sent_if_confirmed(message)
        message.updated_at = utcnow()
        events.message_progress(uow.db, message, ack_before, state_before)
        uow.commit()
    return True
