"""Session services: create, find, update, remove, restart, stats, QR, pairing codes.

Every function takes the caller's ``company_id`` and never looks outside it: another
company's session is reported exactly like a missing one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession

from shared import live_state
from shared.config import CONTROL_QUEUE, queue_for_worker
from shared.db import renewed_deadline
from shared.errors import Conflict, NotFound
from shared.jobs import FINISHED_JOB_STATUSES, JobKind, JobPublisher, JobStatus
from shared.models import Job, WhatsappSession, Worker
from shared.services.jobs import enqueue, recent_jobs
from shared.services.send_queue import SendQueue, send_queue
from shared.services.workers import is_alive
from shared.session_views import SessionView, find_view, page_views
from shared.statuses import SessionStatus
from shared.uow import UnitOfWork
from shared.validation import check_phone_number, check_session_name, encode_config

log = logging.getLogger(__name__)


@dataclass
class SessionPage:
    """One page of a company's sessions."""

    items: list[SessionView]
    total: int
    page: int
    per_page: int


@dataclass
class SessionJob:
    """A session together with the job that was enqueued for it (if any)."""

    session: WhatsappSession
    job: Job | None = None

    def __getattr__(self, name: str) -> Any:
        # Lets a serializer read the session's fields straight off the pair.
        return getattr(self.session, name)


@dataclass
class SessionDetails:
    """Everything known about one session."""

    session: WhatsappSession
    owner: Worker | None
    owner_alive: bool
    live: dict[str, Any] | None = None
    jobs: list[Job] = field(default_factory=list)
    send_queue: SendQueue | None = None


def find_session(db: DbSession, company_id: str, name: str, *, lock: bool = False) -> WhatsappSession:
    """The session ``name`` of ``company_id`` or :class:`NotFound`."""
    query = select(WhatsappSession).where(
        WhatsappSession.company_id == company_id, WhatsappSession.name == name
    )
    if lock:
        query = query.with_for_update()
    session = db.scalar(query)
    if session is None:
        raise NotFound(f"session {name!r} not found")
    return session


def queue_for_session(db: DbSession, session: WhatsappSession, lease_seconds: float) -> str:
    """The owner's queue when the owner is live, else ``control`` (which reassigns)."""
    if session.worker_id and is_alive(db.get(Worker, session.worker_id), lease_seconds):
        return queue_for_worker(session.worker_id)
    return CONTROL_QUEUE


def _enqueue_for_session(
    uow: UnitOfWork, publisher: JobPublisher, session: WhatsappSession, kind: JobKind, **params: Any
) -> Job:
    """Enqueue a job for ``session`` on its owner's queue, pinned to its current epoch."""
    return enqueue(
        uow,
        publisher,
        kind=kind,
        queue=queue_for_session(uow.db, session, uow.settings.WORKER_LEASE),
        company_id=session.company_id,
        session_id=session.id,
        params={**params, "epoch": session.epoch},
    )


def create_session(
    uow: UnitOfWork, publisher: JobPublisher, company_id: str, name: str, config: dict[str, Any] | None = None
) -> SessionJob:
    """Create a session and enqueue its assignment to a worker."""
    check_session_name(name)
    config_text = encode_config(config or {})
    with uow:
        exists = uow.db.scalar(
            select(WhatsappSession.id).where(
                WhatsappSession.company_id == company_id, WhatsappSession.name == name
            )
        )
        if exists:
            raise Conflict(f"session {name!r} already exists")
        session = WhatsappSession(
            company_id=company_id,
            name=name,
            config=config_text,
            status=SessionStatus.DISCONNECTED.value,
            is_active=True,
            epoch=0,
        )
        uow.db.add(session)
        try:
            uow.db.flush()
        except IntegrityError as exc:  # a concurrent create of the same name won the race
            raise Conflict(f"session {name!r} already exists") from exc
        job = enqueue(
            uow,
            publisher,
            kind=JobKind.CREATE,
            queue=CONTROL_QUEUE,
            company_id=company_id,
            session_id=session.id,
        )
        log.info("session %s (%s) created for company %s", session.id, name, company_id)
        return SessionJob(session, job)


def find_all_by_company(
    uow: UnitOfWork,
    company_id: str,
    *,
    status: str | None = None,
    is_active: bool | None = None,
    page: int = 1,
    per_page: int = 20,
) -> SessionPage:
    """A page of the company's sessions, newest first, optionally filtered."""
    with uow:
        status_value = None if status is None else SessionStatus(status.upper()).value
        items, total = page_views(
            uow.db.connection(),
            company_id,
            status=status_value,
            is_active=is_active,
            offset=(page - 1) * per_page,
            limit=per_page,
        )
        if total is None:
            total = 0 if page == 1 else count_sessions(uow.db, company_id, status_value, is_active)
        return SessionPage(items=items, total=total, page=page, per_page=per_page)


def count_sessions(db: DbSession, company_id: str, status: str | None, is_active: bool | None) -> int:
    """How many sessions of the company match the filters (a page past the last one has no rows)."""
    conditions = [WhatsappSession.company_id == company_id]
    if status is not None:
        conditions.append(WhatsappSession.status == status)
    if is_active is not None:
        conditions.append(WhatsappSession.is_active.is_(is_active))
    return db.scalar(select(func.count()).select_from(WhatsappSession).where(*conditions)) or 0


def find_by_company(uow: UnitOfWork, company_id: str, name: str) -> SessionView:
    """One session of the company, by name, as a read-only view."""
    with uow:
        view = find_view(uow.db.connection(), company_id, name)
        if view is None:
            raise NotFound(f"session {name!r} not found")
        return view


def session_details(uow: UnitOfWork, company_id: str, name: str) -> SessionDetails:
    """The session row, its owner and liveness, its live state, recent jobs and send queue."""
    with uow:
        session = find_session(uow.db, company_id, name)
        owner = uow.db.get(Worker, session.worker_id) if session.worker_id else None
        return SessionDetails(
            session=session,
            owner=owner,
            owner_alive=is_alive(owner, uow.settings.WORKER_LEASE),
            live=live_state.read(uow.settings, session.id),
            jobs=recent_jobs(uow.db, session.id),
            send_queue=send_queue(uow.db, session.id, uow.settings),
        )


def update_session(
    uow: UnitOfWork, publisher: JobPublisher, company_id: str, name: str, changes: dict[str, Any]
) -> SessionJob:
    """Rename, reconfigure, or (de)activate a session.

    Deactivating stops its browser; reactivating starts it again (each through a job).
    """
    with uow:
        session = find_session(uow.db, company_id, name, lock=True)
        if "name" in changes and changes["name"] != session.name:
            new_name = check_session_name(changes["name"])
            taken = uow.db.scalar(
                select(WhatsappSession.id).where(
                    WhatsappSession.company_id == company_id, WhatsappSession.name == new_name
                )
            )
            if taken:
                raise Conflict(f"session {new_name!r} already exists")
            session.name = new_name
        if "config" in changes:
            session.config = encode_config(changes["config"])
        activation = "is_active" in changes and changes["is_active"] != session.is_active
        if activation:
            session.is_active = bool(changes["is_active"])
        try:
            uow.db.flush()
        except IntegrityError as exc:  # a concurrent rename took the name first
            raise Conflict(f"session {session.name!r} already exists") from exc
        job = None
        if activation:
            kind = JobKind.START if session.is_active else JobKind.STOP
            job = _enqueue_for_session(uow, publisher, session, kind)
        else:
            uow.commit()
        log.info("session %s of company %s updated: %s", session.id, company_id, sorted(changes))
        return SessionJob(session, job)


def remove_session(
    uow: UnitOfWork, publisher: JobPublisher, company_id: str, name: str, purge: bool = False
) -> SessionJob:
    """Deactivate a session now and enqueue closing its browser (and purging the row)."""
    with uow:
        session = find_session(uow.db, company_id, name, lock=True)
        session.is_active = False
        job = _enqueue_for_session(uow, publisher, session, JobKind.REMOVE, purge=purge)
        return SessionJob(session, job)


def restart_session(uow: UnitOfWork, publisher: JobPublisher, company_id: str, name: str) -> SessionJob:
    """Enqueue a full restart (close, clear local files, start from the stored login)."""
    with uow:
        session = find_session(uow.db, company_id, name, lock=True)
        if not session.is_active:
            raise Conflict(f"session {name!r} is inactive; set is_active=true to start it")
        job = _enqueue_for_session(uow, publisher, session, JobKind.RESTART)
        return SessionJob(session, job)


def request_pairing_code(
    uow: UnitOfWork, publisher: JobPublisher, company_id: str, name: str, phone: str
) -> Job:
    """Enqueue asking the session's QR page for a code to link ``phone`` by number.

    Only a session waiting to be linked (QRCODE) can; the job's result holds the code.
    """
    check_phone_number(phone)
    with uow:
        session = find_session(uow.db, company_id, name, lock=True)
        if session.status == SessionStatus.CONNECTED.value:
            raise Conflict(f"session {name!r} is already linked to a phone (status CONNECTED)")
        if session.status != SessionStatus.QRCODE.value:
            raise Conflict(
                f"session {name!r} is not waiting to be linked (status {session.status}); "
                "a pairing code can be asked only while its QR code is up (status QRCODE)"
            )
        return _enqueue_for_session(uow, publisher, session, JobKind.PAIR, phone=phone)


def wait_for_job(uow: UnitOfWork, job_id: str, timeout: float, interval: float = 0.1) -> Job:
    """The job once it finished, or as it is after ``timeout`` seconds.

    Polls only the job's status (one short query each time, connections from the pool);
    the whole row is read once at the end.
    """
    deadline = time.monotonic() + max(timeout, 0.0)
    budget = uow.settings.DB_STATEMENT_TIMEOUT + uow.settings.DB_CONNECT_TIMEOUT
    while True:
        with renewed_deadline(budget), uow:
            status = uow.db.scalar(select(Job.status).where(Job.id == job_id))
        if status in FINISHED_JOB_STATUSES or time.monotonic() >= deadline:
            break
        time.sleep(min(interval, max(deadline - time.monotonic(), 0.0)))
        interval = min(interval * 1.5, 0.5)
    with renewed_deadline(budget), uow:
        job = uow.db.get(Job, job_id)
        if job is None:
            raise NotFound(f"job {job_id!r} not found")
        return job


def pairing_code(
    uow: UnitOfWork, publisher: JobPublisher, company_id: str, name: str, phone: str
) -> dict[str, Any] | Job:
    """Ask for a pairing code and wait ``PAIRING_CODE_WAIT`` for it.

    The code (``{code, phone, expires_at}``) once the worker answered, else the job to
    follow; a job that failed (the page refused) is a :class:`Conflict` with its error.
    """
    job = request_pairing_code(uow, publisher, company_id, name, phone)
    job = wait_for_job(uow, job.id, uow.settings.PAIRING_CODE_WAIT)
    if job.status == JobStatus.SUCCEEDED.value:
        return job.result_dict
    if job.status == JobStatus.FAILED.value:
        raise Conflict(f"no pairing code for session {name!r}: {job.error}")
    return job


def current_qr(uow: UnitOfWork, company_id: str, name: str) -> WhatsappSession:
    """The session, if it is waiting for a scan with a QR code; else :class:`Conflict`."""
    with uow:
        session = find_session(uow.db, company_id, name)
        if session.status != SessionStatus.QRCODE.value or not session.qr_code:
            raise Conflict(f"session {name!r} has no QR code to scan (status {session.status})")
        return session


def session_stats(uow: UnitOfWork, company_id: str) -> dict[str, Any]:
    """Counts by status, active/inactive and per worker, from one aggregate query."""
    with uow:
        rows = uow.db.execute(
            select(WhatsappSession.status, WhatsappSession.is_active, WhatsappSession.worker_id, func.count())
            .where(WhatsappSession.company_id == company_id)
            .group_by(WhatsappSession.status, WhatsappSession.is_active, WhatsappSession.worker_id)
        ).all()
    by_status = {status.value: 0 for status in SessionStatus}
    by_worker: dict[str, int] = {}
    active = inactive = 0
    for status, is_active_flag, worker_id, count in rows:
        by_status[status] = by_status.get(status, 0) + count
        if is_active_flag:
            active += count
        else:
            inactive += count
        by_worker[worker_id or "unassigned"] = by_worker.get(worker_id or "unassigned", 0) + count
    return {
        "total": active + inactive,
        "active": active,
        "inactive": inactive,
        "by_status": by_status,
        "by_worker": by_worker,
    }
