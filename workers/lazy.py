"""Lazy sessions: a browser only while the session is needed.

A session whose config holds ``{"lazy": true}`` is not opened when its worker starts.
It opens when something needs it - a send (the send job opens it first), a restart or
start job, or the beat's periodic wake - and closes again, login state saved first,
after ``LAZY_IDLE_SECONDS`` with no activity (no event, no send).

While closed, the session receives nothing live: WhatsApp keeps its messages on the
phone and hands them over when the session next opens (the wake exists for that).
A closed lazy session is DISCONNECTED with no ``last_error``.
"""

from __future__ import annotations

import logging

from shared.services import session_events
from shared.services.lazy import lazy_ids, openable_ids
from shared.services.ownership import sessions_to_restore
from shared.statuses import MemoryStatus
from workers.context import WorkerContext
from workers.restore import restorer

log = logging.getLogger(__name__)


def open_lazy(ctx: WorkerContext, session_id: str, epoch: int, why: str) -> bool:
    """Open a closed lazy session in the background (through the restore pool).

    Returns whether it is open or opening now; ``False`` for a session that ended with
    an error here (opening it again would only fail again: a restart is the way back).
    """
    if restorer(ctx).in_flight(session_id):
        return True
    state = ctx.manager.status(session_id)
    if state is not None and state["status"] in (MemoryStatus.CONNECTING.value, MemoryStatus.CONNECTED.value):
        return True
    if state is not None and (state["live"] or state["status"] == MemoryStatus.ERROR.value):
        return False  # waiting for a scan, or failed here: a restart is the way back
    ctx.idle_closed.discard(session_id)
    _, new = restorer(ctx).submit(session_id, epoch, why=why)
    if new:
        log.info("session %s: opening the lazy session (%s)", session_id, why)
    return True


def open_if_lazy(ctx: WorkerContext, session_id: str, epoch: int, why: str) -> bool:
    """Open ``session_id`` if it is a linked lazy session; whether it is (being) opened."""
    if not openable_ids(ctx.uow(), [session_id]):
        return False
    ctx.adopt(session_id, epoch)
    return open_lazy(ctx, session_id, epoch, why)


def wake_all(ctx: WorkerContext) -> int:
    """Open every closed lazy session this worker owns, so what waited on the phone arrives.

    Each closes again after its idle time. Returns how many were asked to open.
    """
    owned = sessions_to_restore(ctx.uow(), ctx.worker_id)
    lazy = openable_ids(ctx.uow(), [session_id for session_id, _ in owned])
    woken = 0
    for session_id, epoch in owned:
        if session_id not in lazy:
            continue
        state = ctx.manager.status(session_id)
        if state is not None and state["live"]:
            ctx.touch(session_id)  # open already: keep it for another idle period
            continue
        ctx.adopt(session_id, epoch)
        woken += open_lazy(ctx, session_id, epoch, why="wake")
    if woken:
        log.info("worker %s: %d lazy sessions woken", ctx.worker_id, woken)
    return woken


def close_idle(ctx: WorkerContext) -> int:
    """Close the lazy sessions idle for ``LAZY_IDLE_SECONDS``, login state saved first."""
    if ctx.manager is None or ctx.stopping:
        return 0
    limit = ctx.settings.LAZY_IDLE_SECONDS
    tracked = ctx.tracked()
    candidates = [
        session_id
        for session_id in tracked
        if ctx.idle_seconds(session_id) >= limit
        and (state := ctx.manager.status(session_id))
        and state["live"]
        and state["status"] == MemoryStatus.CONNECTED.value
        and not restorer(ctx).in_flight(session_id)
    ]
    from workers.sending import session_lock  # here: the send path imports this module

    closed = 0
    for session_id in lazy_ids(ctx.uow(), candidates):
        lock = session_lock(session_id)
        if not lock.acquire(blocking=False):
            continue  # a send is going on: not idle after all
        try:
            closed += _close(ctx, session_id, tracked[session_id])
        finally:
            lock.release()
    return closed


def _close(ctx: WorkerContext, session_id: str, epoch: int) -> bool:
    idle = ctx.idle_seconds(session_id)
    if idle < ctx.settings.LAZY_IDLE_SECONDS:
        return False  # a message arrived meanwhile
    row = session_events.session_snapshot(ctx.uow(), session_id)
    if row is None or (row.worker_id, row.epoch) != (ctx.worker_id, epoch):
        return False  # moved: the reconcile closes it
    saved: list[bool] = []

    def save(archive: bytes) -> None:
        saved.append(ctx.store_login_state(session_id, archive, patient=False))

    ctx.idle_closed.add(session_id)
    ctx.manager.stop(session_id, reason="idle", timeout=ctx.settings.BROWSER_TIMEOUT, save=save)
    ctx.manager.flush_events()
    session_events.set_memory_status(
        ctx.uow(), session_id, ctx.worker_id, epoch, MemoryStatus.DISCONNECTED, lease_token=ctx.token
    )
    log.info(
        "session %s of company %s: lazy session closed after %.0fs idle (login state %s)",
        session_id,
        row.company_id,
        idle,
        "saved" if any(saved) else "NOT saved",
    )
    return True
