"""The worker registry: registration, heartbeats, liveness and placement."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session as DbSession

from shared.config import queue_for_worker
from shared.models import WhatsappSession, Worker, utcnow
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)


def register_worker(uow: UnitOfWork, worker_id: str, *, hostname: str, pid: int, capacity: int) -> None:
    """Record that ``worker_id`` started (or restarted) and is alive now."""
    with uow:
        worker = uow.db.get(Worker, worker_id)
        now = utcnow()
        if worker is None:
            worker = Worker(id=worker_id, queue=queue_for_worker(worker_id))
            uow.db.add(worker)
        worker.hostname, worker.pid, worker.capacity = hostname, pid, capacity
        worker.started_at, worker.heartbeat_at, worker.stopped_at = now, now, None
        uow.commit()
    log.info("worker %s registered (capacity %d)", worker_id, capacity)


def heartbeat(uow: UnitOfWork, worker_id: str) -> None:
    """Refresh the heartbeat of ``worker_id``."""
    with uow:
        worker = uow.db.get(Worker, worker_id)
        if worker is not None:
            worker.heartbeat_at = utcnow()
            worker.stopped_at = None
            uow.commit()


def mark_stopped(uow: UnitOfWork, worker_id: str) -> None:
    """Record a graceful stop: the worker is no longer live."""
    with uow:
        worker = uow.db.get(Worker, worker_id)
        if worker is not None:
            worker.stopped_at = utcnow()
            uow.commit()
    log.info("worker %s stopped", worker_id)


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes even for timezone-aware columns.
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def is_alive(worker: Worker | None, lease_seconds: float, now: datetime | None = None) -> bool:
    """Whether ``worker`` heartbeated within the lease and has not stopped."""
    if worker is None or worker.stopped_at is not None or worker.heartbeat_at is None:
        return False
    now = now or utcnow()
    return now - _aware(worker.heartbeat_at) <= timedelta(seconds=lease_seconds)


def live_workers(db: DbSession, lease_seconds: float) -> list[Worker]:
    """Every worker whose heartbeat is within the lease."""
    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    return list(
        db.scalars(
            select(Worker)
            .where(Worker.stopped_at.is_(None), Worker.heartbeat_at >= cutoff)
            .order_by(Worker.id)
        )
    )


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
