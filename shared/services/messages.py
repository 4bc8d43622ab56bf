"""Messages as the API sees them: send one, list them, read one with its acks.

Every function takes the caller's ``company_id`` and finds the session by name within
it, so another company's session is reported exactly like a missing one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession

from shared.acks import Ack
from shared.cursors import decode_cursor, encode_cursor
from shared.errors import Conflict, InvalidInput, NotFound
from shared.jobs import JobKind, JobPublisher
from shared.models import Job, Message, WhatsappSession, utcnow
from shared.send_state import SendState
from shared.services import lazy
from shared.services.jobs import publish, record_job
from shared.services.sessions import find_session, queue_for_session
from shared.statuses import SessionStatus
from shared.uow import UnitOfWork
from shared.validation import chat_id_for, check_idempotency_key, check_text

log = logging.getLogger(__name__)


@dataclass
class MessageJob:
    """An outbound message and the job that sends it."""

    message: Message
    job: Job | None


@dataclass
class MessagePage:
    """A page of messages, newest first; ``next_cursor`` reads on (``None``: the end)."""

    items: list[Message]
    next_cursor: str | None
    limit: int


def history_entry(ack: Ack | str, at: datetime | None = None) -> dict[str, str]:
    """One entry of a message's ack history."""
    return {"ack": Ack(ack).value, "at": (at or utcnow()).isoformat()}


def send_message(
    uow: UnitOfWork,
    publisher: JobPublisher,
    company_id: str,
    name: str,
    to: str,
    text: str,
    reply_to: str | None = None,
    idempotency_key: str | None = None,
) -> MessageJob:
    """Queue a text to ``to`` and enqueue its send job, in one unit of work.

    With ``idempotency_key``, a request already made with that key for this session
    returns the first message and its job; nothing is queued or sent again.
    """
    chat_id = chat_id_for(to)
    check_text(text)
    if idempotency_key is not None:
        check_idempotency_key(idempotency_key)
    with uow:
        session = find_session(uow.db, company_id, name)
        if idempotency_key is not None:
            earlier = _by_idempotency_key(uow.db, session.id, idempotency_key)
            if earlier is not None:
                return _replay(uow.db, earlier, chat_id, text)
        # A linked lazy session may be closed: its send job opens it first.
        if session.status != SessionStatus.CONNECTED.value and not (
            session.status != SessionStatus.QRCODE.value and lazy.openable(session)
        ):
            raise Conflict(f"session is {session.status}: messages are sent only while it is CONNECTED")
        quoted = None
        if reply_to is not None:
            quoted = uow.db.scalar(
                select(Message).where(Message.session_id == session.id, Message.id == reply_to)
            )
            if quoted is None:
                raise InvalidInput("reply_to", "reply_to is not a message of this session")
        message = _outbound(session, chat_id, text, quoted, idempotency_key)
        uow.db.add(message)
        try:
            uow.db.flush()
        except IntegrityError:
            # A concurrent request with the same key won the race: answer with its message.
            uow.rollback()
            earlier = _by_idempotency_key(uow.db, session.id, idempotency_key) if idempotency_key else None
            if earlier is None:
                raise
            return _replay(uow.db, earlier, chat_id, text)
        job = record_job(
            uow.db,
            kind=JobKind.SEND,
            queue=queue_for_session(uow.db, session, uow.settings.WORKER_LEASE),
            company_id=company_id,
            session_id=session.id,
            params={"epoch": session.epoch, "message_id": message.id},
        )
        message.job_id = job.id
        # Published before the commit: a broker outage rolls the message back too.
        publish(uow.db, publisher, job, job.queue)
        uow.commit()
    log.info(
        "message %s queued for session %s of company %s (job %s)", message.id, session.id, company_id, job.id
    )
    return MessageJob(message, job)


def _outbound(
    session: WhatsappSession, chat_id: str, text: str, quoted: Message | None, idempotency_key: str | None
) -> Message:
    return Message(
        company_id=session.company_id,
        session_id=session.id,
        direction="out",
        body=text,
        chat_id=chat_id,
        sender=f"{session.phone_number}@c.us" if session.phone_number else None,
        recipient=chat_id,
        type="chat",
        ack=Ack.PENDING.value,
        ack_history=json.dumps([history_entry(Ack.PENDING)]),
        reply_to_id=quoted.id if quoted else None,
        quoted_wa_id=quoted.wa_message_id if quoted else None,
        idempotency_key=idempotency_key,
        send_state=SendState.QUEUED,
    )


def _by_idempotency_key(db: DbSession, session_id: str, key: str) -> Message | None:
    return db.scalar(select(Message).where(Message.session_id == session_id, Message.idempotency_key == key))


def _replay(db: DbSession, earlier: Message, chat_id: str, text: str) -> MessageJob:
    """The first answer to a retried request, if it really is the same request."""
    if (earlier.chat_id, earlier.body) != (chat_id, text):
        raise Conflict("Idempotency-Key was already used for a different message in this session")
    return MessageJob(earlier, db.get(Job, earlier.job_id) if earlier.job_id else None)


def list_messages(
    uow: UnitOfWork,
    company_id: str,
    name: str,
    *,
    chat: str | None = None,
    direction: str | None = None,
    since: datetime | None = None,
    before: str | None = None,
    limit: int = 50,
) -> MessagePage:
    """A page of the session's messages, newest first (by the time they were stored).

    Keyset pagination on ``(created_at, id)``: a cursor marks a position, so messages
    stored meanwhile appear on no later page and shift nothing.
    """
    position = decode_cursor(uow.settings, before) if before is not None else None
    chat_id = chat_id_for(chat, "chat") if chat is not None else None
    with uow:
        session = find_session(uow.db, company_id, name)
        conditions = [Message.session_id == session.id]
        if chat_id is not None:
            conditions.append(Message.chat_id == chat_id)
        if direction is not None:
            conditions.append(Message.direction == direction)
        if since is not None:
            conditions.append(Message.created_at >= since)
        if position is not None:
            at, row_id = position
            conditions.append(
                or_(Message.created_at < at, and_(Message.created_at == at, Message.id < row_id))
            )
        rows = list(
            uow.db.scalars(
                select(Message)
                .where(*conditions)
                .order_by(Message.created_at.desc(), Message.id.desc())
                .limit(limit + 1)
            )
        )
    items = rows[:limit]
    more = len(rows) > limit
    cursor = encode_cursor(uow.settings, items[-1].created_at, items[-1].id) if more else None
    return MessagePage(items=items, next_cursor=cursor, limit=limit)


def get_message(uow: UnitOfWork, company_id: str, name: str, message_id: str) -> Message:
    """One message of the session, with its ack history."""
    with uow:
        session = find_session(uow.db, company_id, name)
        message = uow.db.scalar(
            select(Message).where(Message.session_id == session.id, Message.id == message_id)
        )
        if message is None:
            raise NotFound(f"message {message_id!r} not found")
        return message
