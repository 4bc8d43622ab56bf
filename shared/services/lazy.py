"""Lazy sessions: which sessions of a worker open their browser only when needed.

A session is lazy when its ``config`` holds ``{"lazy": true}`` (checked by
:func:`shared.validation.encode_config`). No column: the flag travels with the config.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from shared.models import WhatsappSession
from shared.uow import UnitOfWork
from shared.validation import is_lazy


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
