"""Chats and contacts of a session, as the API lists them.

A chat is every message of the session with the same ``chat_id``. Its unread count
is the number of its inbound messages whose ack is not READ or PLAYED yet, i.e. that
the linked phone has not read. Each listing costs a fixed number of queries whatever
the page size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, select

from shared.acks import READ_ACKS
from shared.models import Contact, Message
from shared.services.sessions import find_session
from shared.uow import UnitOfWork


@dataclass
class Chat:
    """One chat of a session: its last message, counts and contact."""

    chat_id: str
    last_message: Message | None
    last_message_at: datetime
    message_count: int
    unread_count: int
    contact: Contact | None


@dataclass
class Page:
    """One page of a listing."""

    items: list
    total: int
    page: int
    per_page: int


def contact_number(chat_id: str) -> str | None:
    """The phone number of a one-to-one chat (``None`` for groups)."""
    user, _, server = chat_id.partition("@")
    return user if server == "c.us" else None


def list_chats(uow: UnitOfWork, company_id: str, name: str, *, page: int = 1, per_page: int = 20) -> Page:
    """The session's chats, most recently active first."""
    with uow:
        session = find_session(uow.db, company_id, name)
        in_session = and_(Message.session_id == session.id, Message.chat_id.is_not(None))
        unread = func.sum(
            case(
                (and_(Message.direction == "in", Message.ack.not_in([a.value for a in READ_ACKS])), 1),
                else_=0,
            )
        )
        last_at = func.max(Message.created_at)
        total = uow.db.scalar(select(func.count(func.distinct(Message.chat_id))).where(in_session)) or 0
        rows = uow.db.execute(
            select(Message.chat_id, last_at, func.count(), unread)
            .where(in_session)
            .group_by(Message.chat_id)
            .order_by(last_at.desc(), Message.chat_id)
            .offset((page - 1) * per_page)
            .limit(per_page)
        ).all()
        chat_ids = [row[0] for row in rows]
        newest: dict[str, Message] = {}
        if rows:
            # Candidates: messages stored at a chat's last time (ties are rare; keep the max id).
            for message in uow.db.scalars(
                select(Message).where(
                    in_session,
                    Message.chat_id.in_(chat_ids),
                    Message.created_at.in_([row[1] for row in rows]),
                )
            ):
                best = newest.get(message.chat_id)
                if best is None or (message.created_at, message.id) > (best.created_at, best.id):
                    newest[message.chat_id] = message
        numbers = [number for number in map(contact_number, chat_ids) if number]
        contacts = {
            contact.number: contact
            for contact in (
                uow.db.scalars(
                    select(Contact).where(Contact.session_id == session.id, Contact.number.in_(numbers))
                )
                if numbers
                else []
            )
        }
    items = [
        Chat(
            chat_id=chat_id,
            last_message=newest.get(chat_id),
            last_message_at=at,
            message_count=count,
            unread_count=int(unread_count or 0),
            contact=contacts.get(contact_number(chat_id) or ""),
        )
        for chat_id, at, count, unread_count in rows
    ]
    return Page(items=items, total=total, page=page, per_page=per_page)


def list_contacts(uow: UnitOfWork, company_id: str, name: str, *, page: int = 1, per_page: int = 20) -> Page:
    """The session's contacts, by number."""
    with uow:
        session = find_session(uow.db, company_id, name)
        condition = Contact.session_id == session.id
        total = uow.db.scalar(select(func.count()).select_from(Contact).where(condition)) or 0
        items = list(
            uow.db.scalars(
                select(Contact)
                .where(condition)
                .order_by(Contact.number, Contact.id)
                .offset((page - 1) * per_page)
                .limit(per_page)
            )
        )
    return Page(items=items, total=total, page=page, per_page=per_page)
