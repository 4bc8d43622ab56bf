"""Lazy sessions: which sessions of a worker open their browser only when needed.

A session is lazy when its ``config`` holds ``{"lazy": true}`` (checked by
:func:`shared.validation.encode_config`). No column: the flag travels with the config.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from shared.models import WhatsappSession
from shared.statuses import SessionStatus
from shared.uow import UnitOfWork
from shared.validation import is_lazy

# A lazy session in these statuses is open or opening already.
_OPEN = (SessionStatus.CONNECTING.value, SessionStatus.QRCODE.value, SessionStatus.CONNECTED.value)


def lazy_ids(uow: UnitOfWork, session_ids: Iterable[str]) -> set[str]:
    """The lazy ones among ``session_ids``."""
    ids = list(session_ids)
    if not ids:
        return set()
    with uow:
        rows = uow.db.execute(
            select(WhatsappSession.id, WhatsappSession.config).where(WhatsappSession.id.in_(ids))
        )
        return {session_id for session_id, config in rows if is_lazy(config)}


def owners_of_lazy_sessions(uow: UnitOfWork) -> set[str]:
    """Workers that own at least one active lazy session (the beat wakes each of them)."""
    with uow:
        rows = uow.db.execute(
            select(WhatsappSession.worker_id, WhatsappSession.config).where(
                WhatsappSession.is_active.is_(True), WhatsappSession.worker_id.is_not(None)
            )
        )
        return {worker_id for worker_id, config in rows if is_lazy(config)}


def openable(session: WhatsappSession) -> bool:
    """Whether ``session`` is a linked lazy session that is closed quietly or open.

    Not one that ended with a reason (logout, conflict, error): opening it again would
    only show a QR nobody scans. Not one never linked: nothing to restore.
    """
    quiet = session.status == SessionStatus.DISCONNECTED.value and session.last_error is None
    return (
        is_lazy(session.config)
        and session.is_active
        and session.auth_state is not None
        and (quiet or session.status in _OPEN)
    )


def openable_ids(uow: UnitOfWork, session_ids: Iterable[str]) -> set[str]:
    """The openable lazy sessions among ``session_ids`` (see :func:`openable`)."""
    ids = list(session_ids)
    if not ids:
        return set()
    with uow:
        rows = uow.db.scalars(select(WhatsappSession).where(WhatsappSession.id.in_(ids)))
        return {session.id for session in rows if openable(session)}
