"""The worker registry: registration, heartbeats, liveness and placement."""

from __future__ import annotations

import logging
import os
import secrets
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession

from shared.config import queue_for_worker
from shared.models import WhatsappSession, Worker, aware, utcnow
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)


class WorkerIdInUse(RuntimeError):
    """Another live process already runs as this worker id."""


def register_worker(
    uow: UnitOfWork, worker_id: str, *, hostname: str, pid: int, capacity: int, lease_seconds: float
) -> str:
    """Take the lease of ``worker_id`` for this process; returns the process's lease token.

    Raises :class:`WorkerIdInUse` while another process holds the lease (see
    :func:`held_by_another_process`). The token is random per process and never logged:
    heartbeats and every fenced write of this process carry it.
    """
    token = secrets.token_hex(16)
    with uow:
        worker = uow.db.get(Worker, worker_id, with_for_update=True)
        now = utcnow()
        if worker is None:
            worker = Worker(id=worker_id, queue=queue_for_worker(worker_id))
            uow.db.add(worker)
        elif held_by_another_process(worker, lease_seconds, hostname=hostname, pid=pid, now=now):
            age = (now - aware(worker.heartbeat_at)).total_seconds()
            raise WorkerIdInUse(
                f"worker id {worker_id!r} is in use by pid {worker.pid} on {worker.hostname} "
                f"(heartbeat {age:.1f}s ago); refusing to start a second process with the same WORKER_ID"
            )
        worker.hostname, worker.pid, worker.capacity = hostname, pid, capacity
        worker.started_at, worker.heartbeat_at, worker.stopped_at = now, now, None
        worker.lease_token = token
        try:
            uow.commit()
        except IntegrityError as exc:  # a twin inserted the row first
            raise WorkerIdInUse(f"worker id {worker_id!r} was just registered by another process") from exc
    log.info("worker %s registered (capacity %d, pid %d on %s)", worker_id, capacity, pid, hostname)
    return token


def held_by_another_process(
    worker: Worker, lease_seconds: float, *, hostname: str, pid: int, now: datetime | None = None
) -> bool:
    """Whether another process still holds ``worker``'s lease.

    The rule: the row counts as held when it has not stopped and its heartbeat is
    within the lease - unless it was recorded on this same host by a process that no
    longer exists (a SIGKILLed worker restarted at once need not wait for the lease).
    A process on another host cannot be checked, so only the lease decides there.
    """
    if not is_alive(worker, lease_seconds, now):
        return False
    if worker.hostname == hostname and worker.pid is not None:
        return worker.pid != pid and _process_exists(worker.pid)
    return True


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def heartbeat(uow: UnitOfWork, worker_id: str, lease_token: str) -> bool:
    """Refresh the heartbeat of ``worker_id``; ``False`` if this process lost the lease."""
    with uow:
        result = uow.db.execute(
            update(Worker)
            .where(Worker.id == worker_id, Worker.lease_token == lease_token)
            .values(heartbeat_at=utcnow(), stopped_at=None)
        )
        uow.commit()
    return result.rowcount == 1


def mark_stopped(uow: UnitOfWork, worker_id: str, lease_token: str) -> None:
    """Record a graceful stop: the worker is no longer live (only if this process holds it)."""
    with uow:
        result = uow.db.execute(
            update(Worker)
            .where(Worker.id == worker_id, Worker.lease_token == lease_token)
            .values(stopped_at=utcnow())
        )
        uow.commit()
    if result.rowcount == 1:
        log.info("worker %s stopped", worker_id)
    else:
        log.warning("worker %s stopped without its lease (another process holds it)", worker_id)


def is_alive(worker: Worker | None, lease_seconds: float, now: datetime | None = None) -> bool:
    """Whether ``worker`` heartbeated within the lease and has not stopped."""
    if worker is None or worker.stopped_at is not None or worker.heartbeat_at is None:
        return False
    now = now or utcnow()
    return now - aware(worker.heartbeat_at) <= timedelta(seconds=lease_seconds)


def live_workers(db: DbSession, lease_seconds: float) -> list[Worker]:
    """Every worker whose heartbeat is within the lease."""
    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    return list(db.scalars(select(Worker).where(is_live(cutoff)).order_by(Worker.id)))


def is_live(cutoff: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    """The SQL condition of a live worker: not stopped, and heartbeated at ``cutoff`` or later."""
    return and_(Worker.stopped_at.is_(None), Worker.heartbeat_at >= cutoff)


# Any constant works: it only has to be the same in every process placing sessions.
PLACEMENT_LOCK_KEY = 0x5A480001


def serialize_placements(db: DbSession) -> None:
    """Make concurrent placements take turns until the caller's transaction ends.

    On PostgreSQL a transaction-scoped advisory lock (worker rows stay unlocked, so
    heartbeats never wait on a placement); SQLite already has a single writer.
    """
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PLACEMENT_LOCK_KEY})


def worker_loads(db: DbSession) -> dict[str, int]:
    """Active sessions per owning worker, in one aggregate query."""
    rows = db.execute(
        select(WhatsappSession.worker_id, func.count())
        .where(WhatsappSession.is_active.is_(True), WhatsappSession.worker_id.is_not(None))
        .group_by(WhatsappSession.worker_id)
    )
    return {worker_id: count for worker_id, count in rows}


def choose_worker(db: DbSession, lease_seconds: float) -> Worker | None:
    """The least-loaded live worker that is under its capacity, or ``None``.

    Placements are serialized first, so each one sees the loads the previous one
    committed.
    """
    serialize_placements(db)
    live = live_workers(db, lease_seconds)
    loads = worker_loads(db)
    candidates = [w for w in live if loads.get(w.id, 0) < w.capacity]
    if not candidates:
        return None
    return min(candidates, key=lambda w: (loads.get(w.id, 0) / max(w.capacity, 1), w.id))
