"""The visible state of a session's send queue (for ``details`` and the workers' pace)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from shared.config import Settings
from shared.models import Message, aware, utcnow
from shared.send_state import UNSENT_STATES


@dataclass
class SendQueue:
    """What is waiting to be sent for a session."""

    pending: int
    oldest_pending_age: float | None
    next_send_not_before: datetime | None


def send_interval(settings: Settings) -> float:
    """Seconds between two sends of one session (without the jitter)."""
    return 60.0 / max(settings.SEND_RATE_PER_MINUTE, 0.001)


def send_queue(db: DbSession, session_id: str, settings: Settings) -> SendQueue:
    """Pending count, age of the oldest pending message, and the earliest next send.

    The rate counts from ``sent_at``, kept in the database, so a session that moves to
    another worker keeps its pace.
    """
    pending, oldest = db.execute(
        select(func.count(), func.min(Message.created_at)).where(
            Message.session_id == session_id,
            Message.direction == "out",
            Message.send_state.in_(UNSENT_STATES),
        )
    ).one()
    last = aware(db.scalar(select(func.max(Message.sent_at)).where(Message.session_id == session_id)))
    return SendQueue(
        pending=pending,
        oldest_pending_age=(utcnow() - aware(oldest)).total_seconds() if oldest else None,
        next_send_not_before=last + timedelta(seconds=send_interval(settings)) if last else None,
    )
