"""Cleanup and sync: the housekeeping that beat schedules and admins can trigger.

A cleanup plan is computed the same way for the dry run (``GET /session/cleanup``)
and for the real run, so the preview tells exactly what the job will do.

A cleanup has two halves. The database half (old sessions, stale jobs and QR codes,
old jobs and events) runs once, in the cleanup job on the ``control`` queue. The local
half (profile folders, leftover Chromium processes, stale profile locks) can only be
done by the worker whose disk and processes they are, so the cleanup job fans out one
``worker_cleanup`` child job per live worker, on that worker's own queue
``worker.<id>``, and waits up to ``CLEANUP_WORKER_WAIT`` for them: its result sums the
workers' counts and keeps each worker's detail, and names the live workers that did
not answer in time. The control job (not the API) fans out, so beat's global cleanup
reaches every worker exactly like a company's.

The dry run fans out the same child jobs with ``dry_run`` and waits (in the request)
up to ``CLEANUP_PREVIEW_WAIT``: its local numbers are each worker's plan at the moment
it answered, never older, computed by the very code that the real run applies.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    DateTime,
    Select,
    and_,
    bindparam,
    delete,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session as DbSession

from shared.config import CONTROL_QUEUE, Settings, queue_for_worker
from shared.db import renewed_deadline
from shared.job_notices import wait_for_jobs
from shared.jobs import FINISHED_JOB_STATUSES, JobKind, JobPublisher, JobStatus
from shared.models import Company, Event, Job, WhatsappSession, Worker, utcnow
from shared.services import events
from shared.services.jobs import enqueue, read_budget
from shared.services.workers import is_live, live_workers
from shared.statuses import SessionStatus
from shared.uow import AutocommitUnitOfWork, UnitOfWork

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
    # Finished jobs older than JOB_RETENTION_DAYS (beat's no-op runs are counted above, not here).
    old_jobs: int = 0
    job_cutoff: datetime | None = None
    beat_cutoff: datetime | None = None

    def metrics(self) -> dict[str, Any]:
        """Counts and names, suitable for a job result or a dry-run answer."""
        return {
            "sessions_to_purge": len(self.purge_sessions),
            "purge_session_names": sorted(s.name for s in self.purge_sessions),
            "stale_jobs": len(self.stale_jobs),
            "stale_qr_codes": len(self.stale_qr_sessions),
            "beat_jobs_purged": len(self.beat_job_ids),
            "events_purged": self.old_events,
            "jobs_purged": self.old_jobs,
        }


def _scoped(query, model, company_id: str | None):
    return query if company_id is None else query.where(model.company_id == company_id)


@dataclass(frozen=True)
class _Cutoffs:
    """The moments a cleanup started at ``now`` measures age against."""

    retention: datetime
    stale_job: datetime
    beat: datetime
    event: datetime
    old_job: datetime

    @classmethod
    def at(cls, settings: Settings, now: datetime) -> _Cutoffs:
        return cls(
            retention=now - timedelta(days=settings.CLEANUP_RETENTION_DAYS),
            stale_job=now - timedelta(seconds=settings.JOB_STALE_SECONDS),
            beat=now - timedelta(seconds=settings.BEAT_NOOP_RETENTION_SECONDS),
            event=now - timedelta(days=settings.EVENT_RETENTION_DAYS),
            old_job=now - timedelta(days=settings.JOB_RETENTION_DAYS),
        )


def _cleanup_queries(cut: _Cutoffs, company_id: str | None) -> dict[str, Any]:
    """The selects of each part of a cleanup plan (rows, ids or a count), by part."""
    return {
        "purge": _scoped(select(WhatsappSession), WhatsappSession, company_id).where(
            WhatsappSession.is_active.is_(False),
            WhatsappSession.status.in_([SessionStatus.DISCONNECTED.value, SessionStatus.ERROR.value]),
            WhatsappSession.updated_at < cut.retention,
        ),
        "stale_jobs": _scoped(select(Job), Job, company_id).where(
            Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]),
            Job.created_at < cut.stale_job,
        ),
        "stale_qr": _scoped(select(WhatsappSession), WhatsappSession, company_id).where(
            WhatsappSession.qr_code.is_not(None),
            WhatsappSession.status != SessionStatus.QRCODE.value,
        ),
        # Beat runs belong to no company: a company's cleanup has none to look for.
        "beat_jobs": select(Job.id).where(
            Job.scheduled.is_(True),
            Job.noop.is_(True),
            Job.finished_at < cut.beat,
            *(() if company_id is None else (false(),)),
        ),
        "old_events": _scoped(select(Event.id), Event, company_id).where(Event.created_at < cut.event),
        "old_jobs": _scoped(select(Job.id), Job, company_id).where(*_old_jobs(cut.old_job, cut.beat)),
    }


def plan_cleanup(db: DbSession, settings: Settings, company_id: str | None) -> CleanupPlan:
    """Compute the cleanup for one company (or every company when ``None``).

    Beat runs belong to no company, so only a global cleanup purges (and counts) them.
    """
    cut = _Cutoffs.at(settings, utcnow())
    queries = _cleanup_queries(cut, company_id)

    def count(query) -> int:
        return db.scalar(select(func.count()).select_from(query.subquery())) or 0

    return CleanupPlan(
        list(db.scalars(queries["purge"])),
        list(db.scalars(queries["stale_jobs"])),
        list(db.scalars(queries["stale_qr"])),
        list(db.scalars(queries["beat_jobs"])),
        count(queries["old_events"]),
        cut.event,
        count(queries["old_jobs"]),
        cut.old_job,
        cut.beat,
    )


@dataclass(frozen=True)
class CleanupSurvey:
    """What a cleanup learns before it starts: whether its database half has work, and who is live."""

    due: bool
    live_workers: list[str]


def survey_cleanup(uow: UnitOfWork, company_id: str | None) -> CleanupSurvey:
    """Whether the database half of a cleanup would change anything now, and the live workers
    (the fan-out's), in one autocommitted read.

    Most cleanups find nothing: the ``EXISTS … OR EXISTS …`` probe then replaces the
    plan's six selects and their transaction, and shares its round trip with the
    live-worker list. A row that turns due just after is the next cleanup's, exactly as
    if it had turned due after the plan; a worker that turns live just after gets no
    part, exactly as if it had started after the fan-out.
    """
    now = utcnow()
    params = asdict(_Cutoffs.at(uow.settings, now)) | {
        "company_id": company_id,
        "live_cutoff": now - timedelta(seconds=uow.settings.WORKER_LEASE),
    }
    with AutocommitUnitOfWork(uow.settings) as single:
        rows = single.db.execute(_survey(company_id is not None), params).all()
    # One row per live worker, or a single row with no worker: the probe is on every row.
    return CleanupSurvey(due=bool(rows[0].due), live_workers=[row.id for row in rows if row.id is not None])


def nothing_to_clean(uow: UnitOfWork, company_id: str | None) -> bool:
    """Whether the database half of a cleanup would change nothing now (see :func:`survey_cleanup`)."""
    return not survey_cleanup(uow, company_id).due


@functools.cache
def _survey(scoped: bool) -> Select:
    """The statement of :func:`survey_cleanup`, built once per process (a company's, or global):
    its cutoffs and company are bound parameters, so a cleanup builds no expression tree.

    ``SELECT <probe> AS due, workers.id FROM (SELECT 1) LEFT JOIN workers ON <live>``: the
    uncorrelated probe is computed once, and the outer join keeps one row when none is live.
    """
    cut = _Cutoffs(**{f.name: bindparam(f.name, type_=DateTime(timezone=True)) for f in fields(_Cutoffs)})
    queries = _cleanup_queries(cut, bindparam("company_id") if scoped else None)
    probe = or_(*(query.exists() for query in queries.values())).label("due")
    one = select(literal(1).label("one")).subquery("one")
    live = is_live(bindparam("live_cutoff", type_=DateTime(timezone=True)))
    return select(probe, Worker.id).select_from(one.outerjoin(Worker, live)).order_by(Worker.id)


def _old_jobs(cutoff: datetime, beat_cutoff: datetime) -> tuple:
    """Conditions of a finished job past its retention, other than a beat no-op run purged already.

    Unfinished jobs are never deleted (stale ones are failed first and go a retention later).
    """
    return (
        Job.status.in_(sorted(FINISHED_JOB_STATUSES)),
        Job.finished_at < cutoff,
        # Implied (a job finishes after it is created), and lets a company's scan use its
        # (company, created) index for the old rows only instead of reading all its jobs.
        Job.created_at < cutoff,
        not_(and_(Job.scheduled.is_(True), Job.noop.is_(True), Job.finished_at < beat_cutoff)),
    )


# The counts each worker's part of a cleanup reports; the cleanup result holds their sums.
LOCAL_METRICS: tuple[str, ...] = ("profile_folders_removed", "browsers_killed", "stale_locks_removed")


def cleanup_preview(
    uow: UnitOfWork, company_id: str, publisher: JobPublisher | None = None
) -> dict[str, Any]:
    """What a cleanup of the company would do now (nothing is changed).

    With a ``publisher`` every live worker is asked for its local plan too (a
    ``worker_cleanup`` job with ``dry_run``), waiting at most ``CLEANUP_PREVIEW_WAIT``;
    without one only the database side is planned.
    """
    with uow:
        preview = {"dry_run": True, **plan_cleanup(uow.db, uow.settings, company_id).metrics()}
    if publisher is None:
        return preview
    children = fan_out_worker_cleanups(uow, publisher, company_id, dry_run=True)
    return preview | gather_worker_cleanups(uow, children, uow.settings.CLEANUP_PREVIEW_WAIT)


def fan_out_worker_cleanups(
    uow: UnitOfWork,
    publisher: JobPublisher,
    company_id: str | None,
    *,
    dry_run: bool,
    parent_id: str | None = None,
    exclude: str | None = None,
    live: list[str] | None = None,
) -> dict[str, str]:
    """Enqueue one ``worker_cleanup`` job on the own queue of every live worker: worker id → job id.

    ``exclude`` names a worker left out: the one running the cleanup does its part itself.
    ``live`` is the live workers as the caller read them a moment ago (read here when not given).

    Each child is committed and published on its own, so one worker's dead queue never
    holds back the others; it carries its worker's id, so a copy moved to ``control`` by
    sync is refused rather than run on another worker's disk.
    """
    if live is None:
        with AutocommitUnitOfWork(uow.settings) as single:
            live = [w.id for w in live_workers(single.db, uow.settings.WORKER_LEASE)]
    workers = [worker_id for worker_id in live if worker_id != exclude]
    children: dict[str, str] = {}
    for worker_id in workers:
        with uow:
            children[worker_id] = enqueue(
                uow,
                publisher,
                kind=JobKind.WORKER_CLEANUP,
                queue=queue_for_worker(worker_id),
                company_id=company_id,
                params={
                    "company_id": company_id,
                    "dry_run": dry_run,
                    "parent_id": parent_id,
                    "worker_id": worker_id,
                },
            ).id
    log.info(
        "cleanup%s for company %s fanned out to workers %s",
        " (dry run)" if dry_run else "",
        company_id or "*",
        sorted(children) or "(none live)",
    )
    return children


def gather_worker_cleanups(
    uow: UnitOfWork, children: dict[str, str], timeout: float, done_here: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Wait up to ``timeout`` for the child jobs, then add up what they report.

    ``done_here`` holds parts done without a child job (worker id → its result, or
    ``{"status": "failed", "error": ...}``); they count like the children's.

    The wait is woken by each child's finish notice (see :mod:`shared.job_notices`).
    Returns the sums of :data:`LOCAL_METRICS`, ``workers`` (each worker's own result, or
    its error when its part failed) and ``workers_unanswered`` (live workers whose part
    had not finished in time; their counts are not in the sums). The rows of the children
    that answered are deleted: what they said is in the returned result.
    """
    budget = read_budget(uow.settings)
    ids = list(children.values())

    def read() -> tuple[bool, dict[str, Job]]:
        if not ids:
            return True, {}
        with renewed_deadline(budget), uow:
            found = {job.id: job for job in uow.db.scalars(select(Job).where(Job.id.in_(ids)))}
        done = len(found) == len(ids) and all(job.status in FINISHED_JOB_STATUSES for job in found.values())
        return done, found

    jobs = wait_for_jobs(uow.settings, ids, timeout, read)
    sums = dict.fromkeys(LOCAL_METRICS, 0)
    detail: dict[str, Any] = {}
    unanswered: list[str] = []
    for worker_id, result in (done_here or {}).items():
        if result.get("status") == JobStatus.FAILED.value:
            detail[worker_id] = result
            continue
        detail[worker_id] = {"status": JobStatus.SUCCEEDED.value, **result}
        for name in LOCAL_METRICS:
            sums[name] += int(result.get(name, 0))
    for worker_id, job_id in sorted(children.items()):
        job = jobs.get(job_id)
        if job is None or job.status not in FINISHED_JOB_STATUSES:
            unanswered.append(worker_id)
        elif job.status == JobStatus.FAILED.value:
            detail[worker_id] = {"status": job.status, "error": job.error}
        else:
            result = job.result_dict or {}
            detail[worker_id] = {"status": job.status, **result}
            for name in LOCAL_METRICS:
                sums[name] += int(result.get(name, 0))
    answered = [children[worker_id] for worker_id in detail if worker_id in children]
    if answered:
        # Their results now live in the cleanup's own result (or the dry-run answer): the
        # child rows would only pile up (a dry run per GET). Late ones stay until retention.
        with renewed_deadline(budget), uow:
            uow.db.execute(delete(Job).where(Job.id.in_(answered)))
            uow.commit()
    if unanswered:
        log.warning("cleanup: workers %s did not answer within %.1fs", unanswered, timeout)
    return {**sums, "workers": detail, "workers_unanswered": unanswered}


def session_owners(uow: UnitOfWork, session_ids: list[str]) -> dict[str, tuple[str, str | None]]:
    """Company and owner worker of each of ``session_ids`` that has a row (id → (company, worker))."""
    if not session_ids:
        return {}
    with uow:
        rows = uow.db.execute(
            select(WhatsappSession.id, WhatsappSession.company_id, WhatsappSession.worker_id).where(
                WhatsappSession.id.in_(session_ids)
            )
        )
        return {session_id: (company, worker) for session_id, company, worker in rows}


@functools.cache
def _coalescing_statements() -> tuple[Select, Select]:
    """The company lock and the read of its latest job of a kind, built once per process."""
    lock = select(Company.id).where(Company.id == bindparam("company_id")).with_for_update()
    latest = (
        select(Job)
        .where(
            Job.company_id == bindparam("company_id"),
            Job.kind == bindparam("kind"),
            Job.status != JobStatus.FAILED.value,
            Job.created_at >= bindparam("since", type_=DateTime(timezone=True)),
        )
        .order_by(Job.created_at.desc())
        .limit(1)
    )
    return lock, latest


def _enqueue_company_job(uow: UnitOfWork, publisher: JobPublisher, kind: JobKind, company_id: str) -> Job:
    """Enqueue a company job of ``kind`` unless one was asked for moments ago.

    Within ``MAINTENANCE_COALESCE_SECONDS`` of the previous request (that did not
    fail) the caller gets that job back: one company cannot flood the control queue.
    """
    window = timedelta(seconds=uow.settings.MAINTENANCE_COALESCE_SECONDS)
    lock, latest = _coalescing_statements()
    with uow:
        # The company row lock makes concurrent requests of one company take turns. The
        # read after it is a statement of its own: only then does its snapshot (READ
        # COMMITTED) see the job that the request it waited for committed.
        uow.db.execute(lock, {"company_id": company_id})
        recent = uow.db.scalar(
            latest, {"company_id": company_id, "kind": kind.value, "since": utcnow() - window}
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


def apply_cleanup(uow: UnitOfWork, company_id: str | None, *, due: bool | None = None) -> dict[str, Any]:
    """Carry out the cleanup plan in one transaction and return its metrics.

    ``due`` is what :func:`survey_cleanup` said a moment ago (probed here when not given):
    with nothing due, no plan is made and no transaction opened.
    """
    if due is None:
        due = not nothing_to_clean(uow, company_id)
    if not due:
        # Debug only: the fan-out's line and the job's finish say that this cleanup ran.
        log.debug("cleanup for company %s: nothing to do in the database", company_id or "*")
        return {"dry_run": False, **CleanupPlan().metrics()}
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
        if plan.old_jobs:
            uow.db.execute(
                _scoped(delete(Job), Job, company_id).where(*_old_jobs(plan.job_cutoff, plan.beat_cutoff))
            )
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
