"""The send queue of a session, as workers work through it and ``details`` shows it.

Outbound messages leave oldest first. Each send is two fenced commits around the
page call: ``sending`` with its WhatsApp id before, the result after; so a send that
dies half-way is recognisable (``sending`` with an id) and is looked up in the page
before it is ever sent again.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select

from shared.acks import Ack
from shared.models import Message, utcnow
from shared.send_state import UNSENT_STATES, SendState
from shared.services import events
from shared.services.inbox import apply_ack, page_ack, page_columns
from shared.services.ownership import hold_fence
from shared.services.send_queue import send_queue
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)


def next_send_not_before(uow: UnitOfWork, session_id: str) -> datetime | None:
    """When the session may send again (``None``: it never sent)."""
    with uow:
        return send_queue(uow.db, session_id, uow.settings).next_send_not_before


def message(uow: UnitOfWork, message_id: str) -> Message | None:
    """An outbound message by our id."""
    with uow:
        return uow.db.get(Message, message_id)


def oldest_unsent(uow: UnitOfWork, session_id: str) -> Message | None:
    """The next message the session must send: the oldest queued or half-sent one."""
    with uow:
        return uow.db.scalar(
            select(Message)
            .where(
                Message.session_id == session_id,
                Message.direction == "out",
                Message.send_state.in_(UNSENT_STATES),
            )
            .order_by(Message.created_at, Message.id)
            .limit(1)
        )


def _change(
    uow: UnitOfWork,
    session_id: str,
    worker_id: str,
    epoch: int,
    message_id: str,
    lease_token: str,
    states: tuple[str, ...],
    change,
) -> bool:
    """Apply ``change(message)`` under the fence while the message is in one of ``states``."""
    with uow:
        if hold_fence(uow.db, session_id, worker_id, epoch, lease_token) is None:
            log.warning(
                "session %s: send write from worker %s epoch %d fenced out", session_id, worker_id, epoch
            )
            return False
        row = uow.db.get(Message, message_id, with_for_update=True)
        if row is None or row.session_id != session_id or row.send_state not in states:
            return False
        ack_before, state_before = row.ack, row.send_state
        change(row)
        events.message_progress(uow.db, row, ack_before, state_before)
        uow.commit()
    return True


def mark_sending(
    uow: UnitOfWork,
    session_id: str,
    worker_id: str,
    epoch: int,
    message_id: str,
    *,
    wa_key_id: str,
    wa_message_id: str,
    lease_token: str,
) -> bool:
    """Record the WhatsApp id a queued message is about to be sent with (before the page call)."""

    def change(row: Message) -> None:
        row.send_state, row.wa_key_id, row.wa_message_id = SendState.SENDING, wa_key_id, wa_message_id
        row.sent_at = utcnow()

    return _change(uow, session_id, worker_id, epoch, message_id, lease_token, (SendState.QUEUED,), change)


def mark_resending(
    uow: UnitOfWork, session_id: str, worker_id: str, epoch: int, message_id: str, *, lease_token: str
) -> bool:
    """Record a new attempt of a half-done send (same WhatsApp id), for the rate."""

    def change(row: Message) -> None:
        row.sent_at = utcnow()

    return _change(uow, session_id, worker_id, epoch, message_id, lease_token, (SendState.SENDING,), change)


def mark_sent(
    uow: UnitOfWork,
    session_id: str,
    worker_id: str,
    epoch: int,
    message_id: str,
    payload: dict[str, Any] | None,
    *,
    lease_token: str,
) -> bool:
    """Record that the page has the message, with what it says about it (``payload``)."""

    def change(row: Message) -> None:
        data = payload or {}
        for name, value in page_columns(data).items():
            if value is not None and name not in ("chat_id", "wa_key_id"):
                setattr(row, name, value)
        ack = page_ack(data.get("ack", 1))
        apply_ack(row, ack)
        if row.ack == Ack.ERROR.value:
            row.send_state, row.error = SendState.FAILED, "WhatsApp refused the message"
        else:
            row.send_state, row.error = SendState.SENT, None

    # Already ``sent`` is fine too: the page's own event for it may have come first.
    states = (*UNSENT_STATES, SendState.SENT.value)
    return _change(uow, session_id, worker_id, epoch, message_id, lease_token, states, change)


def mark_failed(
    uow: UnitOfWork,
    session_id: str,
    worker_id: str,
    epoch: int,
    message_id: str,
    reason: str,
    *,
    lease_token: str,
) -> bool:
    """Give up on an unsent message: ERROR with ``reason``."""

    def change(row: Message) -> None:
        apply_ack(row, Ack.ERROR)
        row.send_state, row.error = SendState.FAILED, reason

    return _change(uow, session_id, worker_id, epoch, message_id, lease_token, UNSENT_STATES, change)


def quoted_wa_id(uow: UnitOfWork, message: Message) -> str | None:
    """The WhatsApp id of the message ``message`` replies to (known once that one was sent)."""
    if message.reply_to_id is None:
        return None
    with uow:
        return uow.db.scalar(select(Message.wa_message_id).where(Message.id == message.reply_to_id))
