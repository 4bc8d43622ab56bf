"""Recording jobs and advancing them: queued → running → succeeded/failed."""

from __future__ import annotations

import functools
import json
import logging
import time
from typing import Any

from sqlalchemy import Executable, Select, Update, bindparam, func, select, update
from sqlalchemy.orm import Session as DbSession

from shared.config import Settings
from shared.db import renewed_deadline
from shared.errors import NotFound
from shared.job_notices import announce_finished, wait_for_jobs
from shared.jobs import FINISHED_JOB_STATUSES, JobKind, JobPublisher, JobStatus
from shared.models import Job, utcnow
from shared.uow import AutocommitUnitOfWork, UnitOfWork

log = logging.getLogger(__name__)


def record_job(
    db: DbSession,
    *,
    kind: JobKind,
    queue: str,
    company_id: str | None,
    session_id: str | None = None,
    params: dict[str, Any] | None = None,
    scheduled: bool = False,
    flush: bool = True,
) -> Job:
    """Add a queued job row to the open transaction (the caller commits).

    ``scheduled`` marks a run started by beat rather than by a client. Without ``flush``
    the row is only added: the caller's next flush inserts it (with what it set meanwhile).
    """
    job = Job(
        kind=JobKind(kind).value,
        queue=queue,
        company_id=company_id,
        session_id=session_id,
        params=json.dumps(params or {}),
        status=JobStatus.QUEUED.value,
        scheduled=scheduled,
    )
    db.add(job)
    if flush:
        db.flush()
    return job


def enqueue(
    uow: UnitOfWork,
    publisher: JobPublisher,
    *,
    kind: JobKind,
    queue: str,
    company_id: str | None,
    session_id: str | None = None,
    params: dict[str, Any] | None = None,
) -> Job:
    """Record a job, publish it, and commit — or raise and leave nothing written.

    The message goes out before the commit so that a broker outage rolls the whole
    request back; a worker that sees the message before the row is visible reads it
    again (see :func:`start_job`).
    """
    # Not flushed yet: publish() marks the row published and inserts it in one statement.
    job = record_job(
        uow.db,
        kind=kind,
        queue=queue,
        company_id=company_id,
        session_id=session_id,
        params=params,
        flush=False,
    )
    publish(uow.db, publisher, job, queue)
    uow.commit()
    log.info(
        "job %s (%s) queued on %s for company %s session %s", job.id, job.kind, queue, company_id, session_id
    )
    return job


def publish(db: DbSession, publisher: JobPublisher, job: Job, queue: str) -> None:
    """Put ``job`` on ``queue`` and record when, in the open transaction (the caller commits).

    Sync republishes a job still queued long after its last publish, so every publish
    leaves its mark on the row. The row is flushed first: a database error then stops
    us before anything reaches the broker.
    """
    job.queue = queue
    job.published_at = utcnow()
    job.publish_count = (job.publish_count or 0) + 1
    db.flush()
    publisher.publish(JobKind(job.kind), job.id, queue)


def get_job(uow: UnitOfWork, company_id: str, job_id: str, wait: float = 0.0) -> Job:
    """A job of ``company_id``; another company's job is reported as missing.

    With ``wait`` (seconds) an unfinished job is waited for, up to that long, woken by
    the job's finish notice (see :mod:`shared.job_notices`); what it is then is returned.
    """
    if wait <= 0:
        return _company_job(uow, company_id, job_id)

    # No read before subscribing: the wait's own first read (just after it subscribed)
    # answers a finished or missing job as well, one SELECT fewer for an unfinished one.
    def read() -> tuple[bool, Job]:
        # Each read gets a budget of its own: the waiting in between is no database work.
        with renewed_deadline(read_budget(uow.settings)):
            again = _company_job(uow, company_id, job_id)
        return again.status in FINISHED_JOB_STATUSES, again

    return wait_for_jobs(uow.settings, [job_id], wait, read)


def await_job(settings: Settings, company_id: str, job_id: str, wait: float) -> Job:
    """:func:`get_job` with ``wait``, for a caller that just enqueued the job in a transaction of
    its own: each read is one autocommitted statement on a session of its own (no ``BEGIN`` or
    ``ROLLBACK`` round trips, no connection held while waiting)."""
    return get_job(AutocommitUnitOfWork(settings), company_id, job_id, wait=wait)


def _company_job(uow: UnitOfWork, company_id: str, job_id: str) -> Job:
    with uow:
        job = uow.db.scalar(_company_job_statement(), {"job_id": job_id, "company_id": company_id})
        if job is None:
            raise NotFound(f"job {job_id!r} not found")
        return job


@functools.cache
def _company_job_statement() -> Select:
    # Built once: a long-poll reads its job again on every notice.
    return select(Job).where(Job.id == bindparam("job_id"), Job.company_id == bindparam("company_id"))


def read_budget(settings: Settings) -> float:
    """The database budget of one read while waiting for jobs: a statement and a connect."""
    return settings.DB_STATEMENT_TIMEOUT + settings.DB_CONNECT_TIMEOUT


def recent_jobs(db: DbSession, session_id: str, limit: int = 10) -> list[Job]:
    """The newest jobs of a session."""
    return list(
        db.scalars(
            select(Job).where(Job.session_id == session_id).order_by(Job.created_at.desc()).limit(limit)
        )
    )


def start_job(uow: UnitOfWork, job_id: str, worker_id: str) -> Job | None:
    """Mark a job running on ``worker_id``; ``None`` if the row is still not visible.

    The API publishes a job just before committing its row, so a quick worker may look
    before the commit: the row is read again a few times over ``JOB_VISIBLE_WAIT``
    (the commit is normally a millisecond away) before giving up to a Celery retry.
    A job that already finished is returned unchanged, so a redelivered message is a no-op.
    The claim is one autocommitted ``UPDATE … RETURNING`` (see :class:`AutocommitUnitOfWork`).
    """
    deadline = time.monotonic() + uow.settings.JOB_VISIBLE_WAIT
    # The API's commit is about one WAL flush (well under a millisecond) behind its publish.
    pause = 0.0005
    while True:
        job = _start(uow, job_id, worker_id)
        if job is not None or time.monotonic() >= deadline:
            return job
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _start(uow: UnitOfWork, job_id: str, worker_id: str) -> Job | None:
    # One autocommitted UPDATE … RETURNING claims the row: no BEGIN, SELECT … FOR UPDATE, COMMIT.
    with AutocommitUnitOfWork(uow.settings) as single:
        # SQLite has one writer: the UPDATE would wait out the API's open transaction, a read does not.
        if single.db.get_bind().dialect.name == "sqlite" and single.db.get(Job, job_id) is None:
            return None
        claimed = _claim(single, job_id, worker_id)
        if claimed is not None:
            return claimed
        # Not claimed: finished already (returned unchanged), not visible yet (None), or
        # committed just after the UPDATE looked (claimed now).
        found = single.db.get(Job, job_id)
        if found is None or found.status in FINISHED_JOB_STATUSES:
            return found
        return _claim(single, job_id, worker_id) or single.db.get(Job, job_id, populate_existing=True)


def _claim(single: UnitOfWork, job_id: str, worker_id: str) -> Job | None:
    """Mark an unfinished job running on ``worker_id``, in one statement; ``None`` if none matched."""
    return single.db.scalar(
        _claim_statement(),
        {"job_id": job_id, "worker_id": worker_id, "now": utcnow()},
        execution_options={"populate_existing": True},
    )


# The claim and the close are built once per process, with bound parameters: every job runs
# both, and building an ORM UPDATE (and its bulk-update bookkeeping) costs more than sending it.
@functools.cache
def _claim_statement() -> Executable:
    table = Job.__table__
    claim = (
        update(table)
        .where(table.c.id == bindparam("job_id"), table.c.status.not_in(sorted(FINISHED_JOB_STATUSES)))
        .values(
            status=JobStatus.RUNNING.value,
            worker_id=bindparam("worker_id"),
            started_at=func.coalesce(table.c.started_at, bindparam("now", type_=table.c.started_at.type)),
        )
        .returning(*table.c)
    )
    # Loaded as a Job, like a query's rows (one that is in the session already is refreshed).
    return select(Job).from_statement(claim)


@functools.cache
def _close_statement() -> Update:
    table = Job.__table__
    return (
        update(table)
        .where(table.c.id == bindparam("job_id"), table.c.status.not_in(sorted(FINISHED_JOB_STATUSES)))
        .values(
            status=bindparam("status"),
            result=bindparam("result"),
            error=bindparam("error"),
            noop=bindparam("noop"),
            finished_at=bindparam("finished_at", type_=table.c.finished_at.type),
        )
        .returning(table.c.id)
    )


def finish_job(
    uow: UnitOfWork, job_id: str, result: dict[str, Any] | None = None, *, noop: bool = False
) -> None:
    """Mark a job succeeded with its result; ``noop`` when it changed nothing."""
    _close_job(uow, job_id, JobStatus.SUCCEEDED, result=result, noop=noop)


def fail_job(uow: UnitOfWork, job_id: str, error: str) -> None:
    """Mark a job failed with a readable error."""
    _close_job(uow, job_id, JobStatus.FAILED, error=error)


def _close_job(
    uow: UnitOfWork,
    job_id: str,
    status: JobStatus,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    noop: bool = False,
) -> None:
    # One autocommitted UPDATE: the status, result and finish time are durable together.
    with AutocommitUnitOfWork(uow.settings) as single:
        closed = single.db.scalar(
            _close_statement(),
            {
                "job_id": job_id,
                "status": status.value,
                "result": json.dumps(result) if result is not None else None,
                "error": error,
                "noop": noop,
                "finished_at": utcnow(),
            },
        )
    if closed is None:  # missing, or finished already (a duplicate delivery)
        return
    announce_finished(uow.settings, job_id, status.value)
    log.info("job %s %s%s", job_id, status.value, f": {error}" if error else "")
