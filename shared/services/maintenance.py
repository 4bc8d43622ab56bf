"""Cleanup and sync: the housekeeping that beat schedules and admins can trigger.

A cleanup plan is computed the same way for the dry run (``GET /session/cleanup``)
and for the real run, so the preview tells exactly what the job will do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session as DbSession

from shared.config import CONTROL_QUEUE, Settings
from shared.jobs import JobKind, JobPublisher, JobStatus
from shared.models import Company, Event, Job, WhatsappSession, utcnow
from shared.services import events
from shared.services.jobs import enqueue
from shared.statuses import SessionStatus
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)


@dataclass
class CleanupPlan:
    """What a cleanup would change, as ids and names."""

    purge_sessions: list[WhatsappSession] = field(default_factory=list)
    stale_jobs: list[Job] = field(default_factory=list)
    stale_qr_sessions: list[WhatsappSession] = field(default_factory=list)
    # Ids of beat runs that changed nothing, past their retention.
    beat_job_ids: list[str] = field(default_factory=list)
    # Events older than EVENT_RETENTION_DAYS (their deliveries and attempts go with them).
    old_events: int = 0
    event_cutoff: datetime | None = None

    def metrics(self) -> dict[str, Any]:
        """Counts and names, suitable for a job result or a dry-run answer."""
        return {
            "sessions_to_purge": len(self.purge_sessions),
            "purge_session_names": sorted(s.name for s in self.purge_sessions),
            "stale_jobs": len(self.stale_jobs),
            "stale_qr_codes": len(self.stale_qr_sessions),
            "beat_jobs_purged": len(self.beat_job_ids),
            "events_purged": self.old_events,
        }


def _scoped(query, model, company_id: str | None):
    return query if company_id is None else query.where(model.company_id == company_id)


def plan_cleanup(db: DbSession, settings: Settings, company_id: str | None) -> CleanupPlan:
    """Compute the cleanup for one company (or every company when ``None``).

    Beat runs belong to no company, so only a global cleanup purges (and counts) them.
    """
    now = utcnow()
    retention_cutoff = now - timedelta(days=settings.CLEANUP_RETENTION_DAYS)
    job_cutoff = now - timedelta(seconds=settings.JOB_STALE_SECONDS)
    purge = db.scalars(
        _scoped(select(WhatsappSession), WhatsappSession, company_id).where(
            WhatsappSession.is_active.is_(False),
            WhatsappSession.status.in_([SessionStatus.DISCONNECTED.value, SessionStatus.ERROR.value]),
            WhatsappSession.updated_at < retention_cutoff,
        )
    )
    stale_jobs = db.scalars(
        _scoped(select(Job), Job, company_id).where(
            Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]),
            Job.created_at < job_cutoff,
        )
    )
    stale_qr = db.scalars(
        _scoped(select(WhatsappSession), WhatsappSession, company_id).where(
            WhatsappSession.qr_code.is_not(None),
            WhatsappSession.status != SessionStatus.QRCODE.value,
        )
    )
    beat_cutoff = now - timedelta(seconds=settings.BEAT_NOOP_RETENTION_SECONDS)
    beat_jobs = db.scalars(
        _scoped(select(Job.id), Job, company_id).where(
            Job.scheduled.is_(True), Job.noop.is_(True), Job.finished_at < beat_cutoff
        )
    )
    event_cutoff = now - timedelta(days=settings.EVENT_RETENTION_DAYS)
    old_events = db.scalar(
        _scoped(select(func.count()).select_from(Event), Event, company_id).where(
            Event.created_at < event_cutoff
        )
    )
    return CleanupPlan(
        list(purge), list(stale_jobs), list(stale_qr), list(beat_jobs), old_events or 0, event_cutoff
    )


def cleanup_preview(uow: UnitOfWork, company_id: str) -> dict[str, Any]:
    """What a cleanup of the company would do now (nothing is changed)."""
    with uow:
        return {"dry_run": True, **plan_cleanup(uow.db, uow.settings, company_id).metrics()}


def _enqueue_company_job(uow: UnitOfWork, publisher: JobPublisher, kind: JobKind, company_id: str) -> Job:
    """Enqueue a company job of ``kind`` unless one was asked for moments ago.

    Within ``MAINTENANCE_COALESCE_SECONDS`` of the previous request (that did not
    fail) the caller gets that job back: one company cannot flood the control queue.
    """
    window = timedelta(seconds=uow.settings.MAINTENANCE_COALESCE_SECONDS)
    with uow:
        # The company row lock makes concurrent requests of one company take turns.
        uow.db.get(Company, company_id, with_for_update=True)
        recent = uow.db.scalar(
            select(Job)
            .where(
                Job.company_id == company_id,
                Job.kind == kind.value,
                Job.status != JobStatus.FAILED.value,
                Job.created_at >= utcnow() - window,
            )
            .order_by(Job.created_at.desc())
            .limit(1)
        )
        if recent is not None:
            log.info("%s for company %s coalesced into job %s", kind.value, company_id, recent.id)
            return recent
        return enqueue(
            uow,
            publisher,
            kind=kind,
            queue=CONTROL_QUEUE,
            company_id=company_id,
            params={"company_id": company_id},
        )


def request_cleanup(uow: UnitOfWork, publisher: JobPublisher, company_id: str) -> Job:
    """Enqueue a cleanup of the company; its job result will hold the metrics."""
    return _enqueue_company_job(uow, publisher, JobKind.CLEANUP, company_id)


def request_sync(uow: UnitOfWork, publisher: JobPublisher, company_id: str) -> Job:
    """Enqueue a reconciliation of the company's sessions between memory and database."""
    return _enqueue_company_job(uow, publisher, JobKind.SYNC, company_id)


def apply_cleanup(uow: UnitOfWork, company_id: str | None) -> dict[str, Any]:
    """Carry out the cleanup plan in one transaction and return its metrics."""
    with uow:
        plan = plan_cleanup(uow.db, uow.settings, company_id)
        metrics = {"dry_run": False, **plan.metrics()}
        if plan.purge_sessions:
            purged = sorted(s.id for s in plan.purge_sessions)
            # Every row locked before the first event takes its company's lock (events' lock order).
            uow.db.execute(
                select(WhatsappSession.id)
                .where(WhatsappSession.id.in_(purged))
                .order_by(WhatsappSession.id)
                .with_for_update()
            ).all()
            for session_id in purged:
                events.emit(uow.db, session_id, events.SESSION_REMOVED, {"purged": True, "reason": "cleanup"})
            uow.db.execute(delete(WhatsappSession).where(WhatsappSession.id.in_(purged)))
        if plan.stale_jobs:
            uow.db.execute(
                update(Job)
                .where(Job.id.in_([j.id for j in plan.stale_jobs]))
                .values(
                    status=JobStatus.FAILED.value,
                    error="abandoned: no worker finished it in time",
                    finished_at=utcnow(),
                )
            )
        if plan.beat_job_ids:
            uow.db.execute(delete(Job).where(Job.id.in_(plan.beat_job_ids)))
        if plan.old_events:
            uow.db.execute(
                _scoped(delete(Event), Event, company_id).where(Event.created_at < plan.event_cutoff)
            )
        if plan.stale_qr_sessions:
            uow.db.execute(
                update(WhatsappSession)
                .where(WhatsappSession.id.in_([s.id for s in plan.stale_qr_sessions]))
                .values(qr_code=None)
            )
        uow.commit()
    log.info("cleanup for company %s: %s", company_id or "*", metrics)
    return metrics


def changed_nothing(result: dict[str, Any]) -> bool:
    """Whether a maintenance result reports no change at all: every count is zero."""
    return all(
        value == 0 for value in result.values() if isinstance(value, int) and not isinstance(value, bool)
    )
