"""Cleanup and sync: the housekeeping that beat schedules and admins can trigger.

A cleanup plan is computed the same way for the dry run (``GET /session/cleanup``)
and for the real run, so the preview tells exactly what the job will do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session as DbSession

from shared.config import CONTROL_QUEUE, Settings
from shared.jobs import JobKind, JobPublisher, JobStatus
from shared.models import Job, WhatsappSession, utcnow
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

    def metrics(self) -> dict[str, Any]:
        """Counts and names, suitable for a job result or a dry-run answer."""
        return {
            "sessions_to_purge": len(self.purge_sessions),
            "purge_session_names": sorted(s.name for s in self.purge_sessions),
            "stale_jobs": len(self.stale_jobs),
            "stale_qr_codes": len(self.stale_qr_sessions),
        }


def _scoped(query, model, company_id: str | None):
    return query if company_id is None else query.where(model.company_id == company_id)


def plan_cleanup(db: DbSession, settings: Settings, company_id: str | None) -> CleanupPlan:
    """Compute the cleanup for one company (or every company when ``None``)."""
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
    return CleanupPlan(list(purge), list(stale_jobs), list(stale_qr))


def cleanup_preview(uow: UnitOfWork, company_id: str) -> dict[str, Any]:
    """What a cleanup of the company would do now (nothing is changed)."""
    with uow:
        return {"dry_run": True, **plan_cleanup(uow.db, uow.settings, company_id).metrics()}


def _enqueue_company_job(uow: UnitOfWork, publisher: JobPublisher, kind: JobKind, company_id: str) -> Job:
    with uow:
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
            uow.db.execute(
                delete(WhatsappSession).where(WhatsappSession.id.in_([s.id for s in plan.purge_sessions]))
            )
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
        if plan.stale_qr_sessions:
            uow.db.execute(
                update(WhatsappSession)
                .where(WhatsappSession.id.in_([s.id for s in plan.stale_qr_sessions]))
                .values(qr_code=None)
            )
        uow.commit()
    log.info("cleanup for company %s: %s", company_id or "*", metrics)
    return metrics
