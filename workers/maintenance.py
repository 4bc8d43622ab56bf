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
from shared.services.lazy import lazy_ids
from shared.services.ownership import (
    fail_stranded_jobs,
    orphaned_sessions,
    placement_hold,
    republish_lost_jobs,
    requeue_orphans,
    sessions_to_restore,
)
from shared.statuses import MemoryStatus, SessionStatus, to_database
from workers.context import WorkerContext
from workers.restore import restorer

log = logging.getLogger(__name__)


def reconcile(ctx: WorkerContext, restore: bool = True, company_id: str | None = None) -> dict[str, Any]:
    """Bring this worker's memory and the database in step.

    Sessions this worker no longer owns are closed; sessions it owns that should be
    live are started from their stored login state, at most ``RESTORE_CONCURRENCY`` at
    once (see :mod:`workers.restore`), lazy ones excepted (see :mod:`workers.lazy`);
    memory statuses are written back. The result also holds each restore's duration
    (``restore_seconds``) and the restore's wall time.
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
    outcome: dict[str, object] = {"durations": {}, "wall_seconds": 0.0}
    if restore:
        pool = restorer(ctx)
        owned = sessions_to_restore(ctx.uow(), ctx.worker_id)
        lazy = lazy_ids(ctx.uow(), [session_id for session_id, _ in owned])
        due: list[tuple[str, int]] = []
        for session_id, epoch in owned:
            if pool.in_flight(session_id):
                continue  # being restored (or opened for a send) right now: never twice
            state = manager.status(session_id)
            reopen = session_id in ctx.idle_closed and session_id not in lazy  # lazy no more
            if state is not None and (
                state["live"] or (state["status"] in ("disconnected", "error") and not reopen)
            ):
                # Live already, or ended here (conflict, logout, given up after crashes)
                # before the database caught up: not ours to bring back.
                continue
            if session_id in lazy:
                _leave_closed(
                    ctx, session_id, epoch, first=state is None and ctx.epoch_of(session_id) is None
                )
                continue
            ctx.idle_closed.discard(session_id)
            due.append((session_id, epoch))
        if due:
            log.info(
                "worker %s: restoring %d sessions, at most %d at once",
                ctx.worker_id,
                len(due),
                pool.slots,
            )
            outcome = pool.restore_all(due)
            restored = int(outcome["restored"])
    if closed or restored or corrected:
        log.info(
            "worker %s reconciled: %d closed, %d restored in %.2fs (per session: %s), %d statuses corrected",
            ctx.worker_id,
            closed,
            restored,
            outcome["wall_seconds"],
            outcome["durations"],
            corrected,
        )
    return {
        "closed": closed,
        "restored": restored,
        "corrected": corrected,
        "restore_seconds": outcome["durations"],
        "restore_wall_seconds": outcome["wall_seconds"],
    }


def _leave_closed(ctx: WorkerContext, session_id: str, epoch: int, first: bool) -> None:
    """A lazy session is not opened by a restore: track it, and say it is closed.

    Tracked, so its jobs and writes are fenced at this epoch and its profile folder is
    kept. Only the first time (at start): later the session's own events say it.
    """
    ctx.adopt(session_id, epoch)
    if not first:
        return
    row = session_events.session_snapshot(ctx.uow(), session_id)
    if row is not None and row.status != SessionStatus.DISCONNECTED.value:
        # No browser runs it here yet: CONNECTED (say after a SIGKILL) would be a lie.
        session_events.set_memory_status(
            ctx.uow(), session_id, ctx.worker_id, epoch, MemoryStatus.DISCONNECTED, lease_token=ctx.token
        )
    log.info("session %s of company %s: lazy, left closed until needed", session_id, row and row.company_id)


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
        **{f"local_{k}": local[k] for k in ("closed", "restored", "corrected")},
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
