"""Celery tasks: short adapters from a job id to the domain code.

Each task has an explicit name (so queued messages survive refactoring), takes only
primitive ids, and is idempotent: a redelivered job that already finished is a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from shared.config import CONTROL_QUEUE, queue_for_worker
from shared.jobs import CeleryPublisher, JobKind
from shared.services import jobs as job_services
from shared.services import maintenance as maintenance_services
from shared.services.lazy import owners_of_lazy_sessions
from workers import cleanup as cleanup_work
from workers import lazy, maintenance
from workers.celery_app import app
from workers.context import WorkerContext, current
from workers.runner import JobNotVisible, run_session_job
from workers.sending import SendLater, run_send_job

log = logging.getLogger(__name__)

RETRY = {
    "autoretry_for": (JobNotVisible,),
    "retry_backoff": 0.2,
    "retry_backoff_max": 2,
    "max_retries": 20,
    "retry_jitter": False,
}


def _publisher() -> CeleryPublisher:
    return CeleryPublisher(app)


@app.task(name="zaphub.session.assign", **RETRY)
def assign_session(job_id: str) -> None:
    """Place a new session on the least-loaded live worker and start it there."""
    run_session_job(current(), _publisher(), job_id)


@app.task(name="zaphub.session.start", **RETRY)
def start_session(job_id: str) -> None:
    """Open the session's WhatsApp Web (from its stored login state when there is one)."""
    run_session_job(current(), _publisher(), job_id)


@app.task(name="zaphub.session.restart", **RETRY)
def restart_session(job_id: str) -> None:
    """Close the browser, clear the session's local files, and start again."""
    run_session_job(current(), _publisher(), job_id)


@app.task(name="zaphub.session.stop", **RETRY)
def stop_session(job_id: str) -> None:
    """Close the session's browser; it stays assigned to its worker."""
    run_session_job(current(), _publisher(), job_id)


@app.task(name="zaphub.session.remove", **RETRY)
def remove_session(job_id: str) -> None:
    """Close, deactivate, delete local files; purge the row when asked."""
    run_session_job(current(), _publisher(), job_id)


@app.task(name="zaphub.session.pair", **RETRY)
def pair_session(job_id: str) -> None:
    """Ask the session's QR page for a pairing code (linking by phone number)."""
    run_session_job(current(), _publisher(), job_id)


# A send tries this many times (not connected yet, the page failed) before its message is
# ERROR; waiting its turn (the session's pace, another send) is not counted.
SEND_MAX_FAILURES = 60


@app.task(name="zaphub.message.send", bind=True, **RETRY)
def send_message(self, job_id: str, failures: int = 0) -> None:
    """Send the session's unsent messages in order, up to and including this job's own."""
    try:
        run_send_job(current(), _publisher(), job_id, last_attempt=failures >= SEND_MAX_FAILURES)
    except SendLater as later:
        failures += 0 if later.patient else 1
        raise self.retry(
            args=[job_id], kwargs={"failures": failures}, countdown=later.countdown, max_retries=None
        ) from None


def _run_maintenance(job_id: str, work: Callable[[WorkerContext, dict[str, Any]], dict[str, Any]]) -> None:
    """Run a maintenance job: ``work`` gets the worker context and the job's parameters."""
    ctx = current()
    job = job_services.start_job(ctx.uow(), job_id, ctx.worker_id)
    if job is None:
        raise JobNotVisible(job_id)
    if job.status != "running":
        return
    try:
        result = work(ctx, job.params_dict)
    except Exception as exc:
        log.exception("job %s (%s) failed", job_id, job.kind)
        job_services.fail_job(ctx.uow(), job_id, f"{type(exc).__name__}: {exc}")
        return
    # A beat run that changed nothing is kept only for a while (cleanup purges it).
    noop = job.scheduled and maintenance_services.changed_nothing(result)
    job_services.finish_job(ctx.uow(), job_id, result, noop=noop)


@app.task(name="zaphub.maintenance.cleanup", **RETRY)
def cleanup(job_id: str) -> None:
    """Purge old sessions, jobs and events, fail abandoned jobs, clear stale QR codes, then
    have every live worker clean up its own disk and processes (see :mod:`workers.cleanup`).
    """
    _run_maintenance(
        job_id,
        lambda ctx, params: cleanup_work.cleanup(
            ctx, _publisher(), params.get("company_id"), parent_id=job_id
        ),
    )


@app.task(name="zaphub.maintenance.worker_cleanup", **RETRY)
def worker_cleanup(job_id: str) -> None:
    """One worker's part of a cleanup or of its dry run: stray folders, leftover browsers, stale locks.

    Published on ``worker.<id>``; a copy that reached another worker (sync republishes a
    dead worker's queued job on ``control``) fails instead of cleaning the wrong disk.
    """

    def work(ctx: WorkerContext, params: dict[str, Any]) -> dict[str, Any]:
        meant_for = params.get("worker_id")
        if meant_for not in (None, ctx.worker_id):
            raise RuntimeError(f"meant for worker {meant_for}, not {ctx.worker_id}")
        return cleanup_work.local_cleanup(ctx, params.get("company_id"), dry_run=bool(params.get("dry_run")))

    _run_maintenance(job_id, work)


@app.task(name="zaphub.maintenance.sync", **RETRY)
def sync(job_id: str) -> None:
    """Re-place sessions of dead workers and reconcile memory with the database."""
    _run_maintenance(
        job_id, lambda ctx, params: maintenance.sync(ctx, _publisher(), params.get("company_id"))
    )


def _scheduled(kind: JobKind) -> str:
    ctx = current()
    with ctx.uow() as uow:
        job = job_services.record_job(uow.db, kind=kind, queue=CONTROL_QUEUE, company_id=None, scheduled=True)
        uow.commit()
    return job.id


@app.task(name="zaphub.beat.cleanup")
def scheduled_cleanup() -> None:
    """Beat: a cleanup across every company, recorded as a job."""
    cleanup.run(_scheduled(JobKind.CLEANUP))


@app.task(name="zaphub.beat.sync")
def scheduled_sync() -> None:
    """Beat: a sync across every company, recorded as a job."""
    sync.run(_scheduled(JobKind.SYNC))


@app.task(name="zaphub.beat.lazy_wake")
def scheduled_lazy_wake() -> None:
    """Beat: ask every worker that owns lazy sessions to open them (see ``workers.lazy``)."""
    ctx = current()
    interval = ctx.settings.LAZY_WAKE_INTERVAL
    for worker_id in sorted(owners_of_lazy_sessions(ctx.uow())):
        # Expires with the next tick: a dead owner's queue does not pile up wakes.
        wake_lazy_sessions.apply_async(queue=queue_for_worker(worker_id), expires=interval)


@app.task(name="zaphub.lazy.wake")
def wake_lazy_sessions() -> int:
    """Open this worker's closed lazy sessions so the messages that waited arrive."""
    return lazy.wake_all(current())
