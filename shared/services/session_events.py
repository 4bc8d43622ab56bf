"""What WhatsApp Web events write to the database, fenced by owner and epoch.

Each write first takes the session's fence: an UPDATE that matches only while the
writing worker still owns the session at the epoch it started it with, and only from
the process that holds that worker's lease (its ``lease_token``); a worker that lost
the session (reassigned while it was partitioned, a duplicated job, a second process
with the same id) changes nothing. The events a change makes (``shared.services.events``)
are written in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session as DbSession

from shared.models import WhatsappSession, utcnow
from shared.services import events
from shared.services.ownership import fence, hold_fence
from shared.statuses import MemoryStatus, SessionStatus, to_database
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

# Reasons of a ``disconnected`` event that are not failures worth reporting.
# "idle": a lazy session closed after its idle time (it opens again when needed).
QUIET_REASONS = frozenset({"stopped", "removed", "shutdown", "restart", "moved", "idle"})
# Reasons after which the stored login state is useless (the phone unlinked it).
LOGIN_DROPPING_REASONS = frozenset({"logout"})


def event_changes(event: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """The column changes an event implies (``None`` for events that write nothing)."""
    if event == "connecting":
        return {"status": SessionStatus.CONNECTING.value}
    if event == "qr":
        return {"status": SessionStatus.QRCODE.value, "qr_code": payload["qr"]}
    if event == "pairing_code":
        # Still waiting to be linked, now by a code: the QR is no longer on the page.
        return {"status": SessionStatus.QRCODE.value, "qr_code": None}
    if event == "authenticated":
        return {"status": SessionStatus.CONNECTED.value, "qr_code": None, "last_error": None}
    if event == "ready":
        return {
            "status": SessionStatus.CONNECTED.value,
            "qr_code": None,
            "last_error": None,
            "phone_number": payload.get("phone_number"),
            "push_name": payload.get("push_name"),
            "last_seen": utcnow(),
        }
    if event == "not_portable":
        # The status is unchanged: only why its login cannot move as data is shown.
        return {"last_error": payload.get("reason") or "login state not portable"}
    if event == "auth_failure":
        return {
            "status": SessionStatus.ERROR.value,
            "qr_code": None,
            "last_error": payload.get("reason") or "authentication failed",
        }
    if event == "disconnected":
        reason = payload.get("reason") or "disconnected"
        changes: dict[str, Any] = {"status": SessionStatus.DISCONNECTED.value, "qr_code": None}
        if reason not in QUIET_REASONS:
            changes["last_error"] = reason
        if reason in LOGIN_DROPPING_REASONS:
            changes["auth_state"] = None
            changes["auth_state_updated_at"] = None
        return changes
    return None


def pairing_code_data(uow: UnitOfWork, payload: dict[str, Any]) -> dict[str, Any]:
    """The ``session.pairing_code`` data: the code, its phone, and when the page renews it."""
    expires_at = utcnow() + timedelta(seconds=uow.settings.PAIRING_CODE_INTERVAL)
    return {"code": payload["code"], "phone": payload.get("phone"), "expires_at": expires_at.isoformat()}


def apply_event(
    uow: UnitOfWork,
    session_id: str,
    worker_id: str,
    epoch: int,
    event: str,
    payload: dict[str, Any],
    *,
    lease_token: str,
) -> bool:
    """Write what ``event`` means for the session; ``False`` if fenced out or no-op."""
    changes = event_changes(event, payload)
    if changes is None:
        return False

    def qr_event(db: DbSession) -> None:
        if event == "qr":
            events.emit(db, session_id, events.SESSION_QR, {"qr": payload["qr"]})
        elif event == "pairing_code":
            events.emit(db, session_id, events.SESSION_PAIRING_CODE, pairing_code_data(uow, payload))

    applied = _write_fenced(
        uow, session_id, worker_id, epoch, lease_token, changes, payload.get("reason") or event, qr_event
    )
    if applied:
        log.info(
            "session %s: %s -> %s%s",
            session_id,
            event,
            changes.get("status", "status unchanged"),
            f" ({changes['last_error']})" if changes.get("last_error") else "",
        )
    else:
        log.warning("session %s: %s from worker %s epoch %d fenced out", session_id, event, worker_id, epoch)
    return applied


def set_memory_status(
    uow: UnitOfWork,
    session_id: str,
    worker_id: str,
    epoch: int,
    status: MemoryStatus | str,
    error: str | None = None,
    *,
    lease_token: str,
) -> bool:
    """Write a worker-memory status (through the one mapping), fenced."""
    changes: dict[str, Any] = {"status": to_database(status).value}
    if error is not None:
        changes["last_error"] = error
    if changes["status"] != SessionStatus.QRCODE.value:
        changes["qr_code"] = None
    return _write_fenced(uow, session_id, worker_id, epoch, lease_token, changes, error or str(status))


def _write_fenced(
    uow: UnitOfWork,
    session_id: str,
    worker_id: str,
    epoch: int,
    lease_token: str,
    changes: dict[str, Any],
    reason: str,
    then: Callable[[DbSession], None] | None = None,
) -> bool:
    """Apply ``changes`` under the fence, with the status event and ``then``'s, in one transaction."""
    with uow:
        held = hold_fence(uow.db, session_id, worker_id, epoch, lease_token)
        if held is None:
            return False
        uow.db.execute(
            update(WhatsappSession)
            .where(WhatsappSession.id == session_id)
            .values(**changes)
            .execution_options(synchronize_session=False)
        )
        events.status_change(uow.db, session_id, held.status, changes.get("status", held.status), reason)
        if then is not None:
            then(uow.db)
        uow.commit()
    return True


def save_login_state(
    uow: UnitOfWork, session_id: str, worker_id: str, epoch: int, archive: bytes, *, lease_token: str
) -> bool:
    """Store the session's login-state archive (already encrypted), fenced."""
    with uow:
        result = uow.db.execute(
            fence(session_id, worker_id, epoch, lease_token).values(
                auth_state=archive, auth_state_updated_at=utcnow()
            )
        )
        uow.commit()
    if result.rowcount == 1:
        log.info("session %s: login state saved (%d bytes)", session_id, len(archive))
    return result.rowcount == 1


def load_login_state(uow: UnitOfWork, session_id: str) -> bytes | None:
    """The stored login-state archive of a session, if any."""
    with uow:
        return uow.db.scalar(select(WhatsappSession.auth_state).where(WhatsappSession.id == session_id))


def deactivate(
    uow: UnitOfWork, session_id: str, worker_id: str, epoch: int, purge: bool, *, lease_token: str
) -> bool:
    """After a remove: mark the row inactive and stopped, or delete it when purging."""

    def removed(db: DbSession) -> None:
        events.emit(db, session_id, events.SESSION_REMOVED, {"purged": purge, "reason": "removed"})
        if purge:
            db.execute(delete(WhatsappSession).where(WhatsappSession.id == session_id))

    # The fence both checks ownership and locks the row for the events and the delete.
    changes = {"is_active": False, "status": SessionStatus.DISCONNECTED.value, "qr_code": None}
    return _write_fenced(uow, session_id, worker_id, epoch, lease_token, changes, "removed", removed)


def session_snapshot(uow: UnitOfWork, session_id: str) -> WhatsappSession | None:
    """The session row (without its login-state blob)."""
    with uow:
        return uow.db.get(WhatsappSession, session_id)


def without_login_state(uow: UnitOfWork, session_ids: list[str]) -> set[str]:
    """Which of ``session_ids`` have no stored login state yet."""
    if not session_ids:
        return set()
    with uow:
        return set(
            uow.db.scalars(
                select(WhatsappSession.id).where(
                    WhatsappSession.id.in_(session_ids), WhatsappSession.auth_state_updated_at.is_(None)
                )
            )
        )
