"""Worker-side housekeeping: reconcile memory with the database, and sync.

``reconcile`` runs in every worker on a timer (and once at start, to restore the
sessions it owns); ``sync`` runs as a job on the ``control`` queue. Cleanup lives in
:mod:`workers.cleanup`.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.jobs import JobPublisher
from shared.services import session_events
from shared.services.ownership import (
    fail_stranded_jobs,
    orphaned_sessions,
    placement_hold,
    republish_lost_jobs,
    requeue_orphans,
    sessions_to_restore,
)
from shared.statuses import to_database
from workers.context import WorkerContext
from workers.runner import profile_tag

log = logging.getLogger(__name__)


def reconcile(ctx: WorkerContext, restore: bool = True, company_id: str | None = None) -> dict[str, int]:
    """Bring this worker's memory and the database in step.

    Sessions this worker no longer owns are closed; sessions it owns that should be
    live are started from their stored login state; memory statuses are written back.
    With ``company_id`` only that company's live sessions are looked at (and counted):
    a company's sync neither touches nor reports anyone else's sessions.
    """
    manager = ctx.manager
    closed = restored = corrected = 0
    for session_id, epoch in ctx.tracked().items():
        row = session_events.session_snapshot(ctx.uow(), session_id)
        if company_id is not None and (row is None or row.company_id != company_id):
            continue  # a purged row has no company left: the periodic reconcile closes it
        if row is None or (row.worker_id, row.epoch) != (ctx.worker_id, epoch) or not row.is_active:
            manager.stop(session_id, reason="moved")
            manager.flush_events()  # its last events still carry our epoch
            ctx.forget(session_id)
            closed += 1
            continue
        state = manager.status(session_id)
        if state and state["live"] and to_database(state["status"]).value != row.status:
            error = state.get("last_error") if state["status"] == "error" else None
            corrected += session_events.set_memory_status(
                ctx.uow(), session_id, ctx.worker_id, epoch, state["status"], error, lease_token=ctx.token
            )
    if restore:
        for session_id, epoch in sessions_to_restore(ctx.uow(), ctx.worker_id):
            state = manager.status(session_id)
            if state is not None and (state["live"] or state["status"] in ("disconnected", "error")):
                # Live already, or ended here (conflict, logout, given up after crashes)
                # before the database caught up: not ours to bring back.
                continue
            ctx.adopt(session_id, epoch)
            try:
                # After this worker's own restart its folder, if still tagged with the
                # epoch, is newer than any archive (a SIGKILL saves nothing).
                manager.start(
                    session_id,
                    session_events.load_login_state(ctx.uow(), session_id),
                    timeout=ctx.settings.BROWSER_TIMEOUT,
                    profile_tag=profile_tag(epoch),
                )
                restored += 1
            except Exception as exc:
                reason = f"restore failed: {exc}"
                log.warning("session %s: %s", session_id, reason)
                session_events.set_memory_status(
                    ctx.uow(), session_id, ctx.worker_id, epoch, "error", error=reason, lease_token=ctx.token
                )
    if closed or restored or corrected:
        log.info(
            "worker %s reconciled: %d closed, %d restored, %d statuses corrected",
            ctx.worker_id,
            closed,
            restored,
            corrected,
        )
    return {"closed": closed, "restored": restored, "corrected": corrected}


def sync(ctx: WorkerContext, publisher: JobPublisher, company_id: str | None) -> dict[str, Any]:
    """Recover what dead workers and lost messages left behind, for one company or all.

    Fails the jobs of dead workers, republishes jobs whose message was lost, re-places
    sessions whose owner is dead (they restore from the database), then reconciles
    this worker's memory. Right after a database outage nothing is done (see
    :func:`placement_hold`); the result says why in ``skipped``.
    """
    hold = placement_hold(ctx.uow())
    if hold is not None:
        log.warning("sync for company %s skipped on worker %s: %s", company_id or "*", ctx.worker_id, hold)
        return _sync_result(skipped=hold)
    stranded = fail_stranded_jobs(ctx.uow(), company_id)
    republished = republish_lost_jobs(ctx.uow(), publisher, company_id)
    requeued = requeue_orphans(ctx.uow(), publisher, orphaned_sessions(ctx.uow(), company_id))
    local = reconcile(ctx, restore=False, company_id=company_id)
    return _sync_result(
        stranded_jobs_failed=stranded,
        jobs_republished=len(republished),
        orphans_requeued=len(requeued),
        orphan_sessions=sorted(session.name for session, _ in requeued),
        start_jobs=[job_id for _, job_id in requeued],
        **{f"local_{k}": v for k, v in local.items()},
    )


def _sync_result(**values: Any) -> dict[str, Any]:
    # One shape for every sync result, skipped or not.
    result: dict[str, Any] = {
        "skipped": None,
        "stranded_jobs_failed": 0,
        "jobs_republished": 0,
        "orphans_requeued": 0,
        "orphan_sessions": [],
        "start_jobs": [],
        "local_closed": 0,
        "local_restored": 0,
        "local_corrected": 0,
    }
    result.update(values)
    return result
