"""Running session jobs on the worker that owns the session.

A task hands a job id here. The job is marked running, routed (run here, forward to
the owner, or refuse as stale), carried out against the live-session manager, and
closed as succeeded or failed with a readable result.

Planned closes (stop, restart) save a fresh login state of the live profile first, and
a restart or start on the worker that already ran the session at this epoch reuses the
live profile folder instead of rebuilding it from a possibly older stored archive.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from shared.jobs import JobKind, JobPublisher
from shared.login_state import LoginStateError
from shared.models import utcnow
from shared.services import jobs as job_services
from shared.services import session_events
from shared.services.ownership import Routing, Verdict, route_job
from shared.statuses import MemoryStatus
from workers.context import WorkerContext

log = logging.getLogger(__name__)


class JobNotVisible(Exception):
    """The job row is not committed yet (the API publishes just before committing)."""


def run_session_job(ctx: WorkerContext, publisher: JobPublisher, job_id: str) -> dict[str, Any] | None:
    """Carry out one session job; returns its result (``None`` when forwarded)."""
    job = job_services.start_job(ctx.uow(), job_id, ctx.worker_id)
    if job is None:
        raise JobNotVisible(job_id)
    if job.status in ("succeeded", "failed"):
        log.info("job %s already %s; duplicate delivery ignored", job_id, job.status)
        return job.result_dict
    kind = JobKind(job.kind)
    try:
        routing = route_job(ctx.uow(), publisher, job_id, ctx.worker_id)
        if routing.verdict is Verdict.FORWARDED:
            return None
        if routing.verdict is Verdict.GONE and kind is JobKind.REMOVE and job.params_dict.get("purge"):
            result = {"worker_id": ctx.worker_id, "purged": True, "note": "already purged"}
        elif routing.verdict is not Verdict.RUN:
            job_services.fail_job(ctx.uow(), job_id, routing.reason)
            return None
        else:
            result = _act(ctx, kind, job.session_id, routing, job.params_dict)
    except Exception as exc:
        log.exception("job %s (%s) of session %s failed", job_id, job.kind, job.session_id)
        job_services.fail_job(ctx.uow(), job_id, _readable(exc))
        return None
    job_services.finish_job(ctx.uow(), job_id, result)
    return result


def _act(
    ctx: WorkerContext, kind: JobKind, session_id: str, routing: Routing, params: dict[str, Any]
) -> dict[str, Any]:
    epoch = routing.epoch
    session = session_events.session_snapshot(ctx.uow(), session_id)
    ctx.adopt(session_id, epoch)
    if kind in (JobKind.CREATE, JobKind.START, JobKind.RESTART):
        if not session.is_active:
            return _result(ctx, session_id, epoch, note="session is inactive; not started")
        _open(ctx, session_id, epoch, fresh=kind is JobKind.RESTART)
    elif kind is JobKind.STOP:
        if session.is_active:  # reactivated after this stop was requested: the newer wish wins
            return _result(ctx, session_id, epoch, note="session is active again; not stopped")
        _close(ctx, session_id, epoch, reason="stopped", save=True)
    elif kind is JobKind.REMOVE:
        purge = bool(params.get("purge"))
        _close(ctx, session_id, epoch, reason="removed")
        ctx.manager.remove_local(session_id, timeout=ctx.settings.BROWSER_TIMEOUT)
        if not session_events.deactivate(
            ctx.uow(), session_id, ctx.worker_id, epoch, purge=purge, lease_token=ctx.token
        ):
            raise RuntimeError("the session moved to another worker while being removed; retry")
        ctx.forget(session_id)
        return {"worker_id": ctx.worker_id, "epoch": epoch, "status": "disconnected", "purged": purge}
    elif kind is JobKind.PAIR:
        return _pair(ctx, session_id, epoch, str(params.get("phone") or ""))
    return _result(ctx, session_id, epoch)


def _pair(ctx: WorkerContext, session_id: str, epoch: int, phone: str) -> dict[str, Any]:
    """Ask the session's page for a pairing code; the result carries it (never logged)."""
    interval = ctx.settings.PAIRING_CODE_INTERVAL
    code = ctx.manager.request_pairing_code(
        session_id, phone, interval=interval, timeout=ctx.settings.BROWSER_TIMEOUT
    )
    result = _result(ctx, session_id, epoch)
    expires_at = utcnow() + timedelta(seconds=interval)
    return result | {"code": code, "phone": phone, "expires_at": expires_at.isoformat()}


def _open(ctx: WorkerContext, session_id: str, epoch: int, fresh: bool) -> None:
    """Start (or, when ``fresh``, restart) the browser.

    The live profile folder is reused when this worker last ran it at this epoch;
    otherwise the profile comes from the stored login state.
    """
    login = session_events.load_login_state(ctx.uow(), session_id)
    timeout = ctx.settings.BROWSER_TIMEOUT
    tag = profile_tag(epoch)
    try:
        if fresh:
            ctx.manager.restart(
                session_id,
                login_state=login,
                timeout=timeout * 2,
                profile_tag=tag,
                save=_saver(ctx, session_id),
            )
        else:
            ctx.manager.start(session_id, login_state=login, timeout=timeout, profile_tag=tag)
    except LoginStateError as exc:
        # Keep nothing half-restored running: close it, then report the reason.
        _close(ctx, session_id, epoch, reason="restore failed")
        reason = f"stored login state is unusable: {exc}"
        session_events.set_memory_status(
            ctx.uow(), session_id, ctx.worker_id, epoch, MemoryStatus.ERROR, reason, lease_token=ctx.token
        )
        raise


def profile_tag(epoch: int) -> str:
    """The tag a profile folder is launched under: the owner epoch.

    Any run of the session elsewhere bumps the epoch, so a matching tag means this
    worker's folder is the newest copy of the login.
    """
    return f"epoch-{epoch}"


def _saver(ctx: WorkerContext, session_id: str):
    """The pre-close save: one fenced attempt (a database outage must not hold the close)."""
    return lambda archive: ctx.store_login_state(session_id, archive, patient=False)


def _close(ctx: WorkerContext, session_id: str, epoch: int, reason: str, save: bool = False) -> None:
    """Close the browser and record DISCONNECTED even if no event was due to say so.

    With ``save``, a connected session's login state is stored first.
    """
    ctx.manager.stop(
        session_id,
        reason=reason,
        timeout=ctx.settings.BROWSER_TIMEOUT,
        save=_saver(ctx, session_id) if save else None,
    )
    ctx.manager.flush_events()
    session_events.set_memory_status(
        ctx.uow(), session_id, ctx.worker_id, epoch, MemoryStatus.DISCONNECTED, lease_token=ctx.token
    )


def _result(ctx: WorkerContext, session_id: str, epoch: int, note: str | None = None) -> dict[str, Any]:
    state = ctx.manager.status(session_id) or {}
    result = {
        "worker_id": ctx.worker_id,
        "epoch": epoch,
        "status": state.get("status", MemoryStatus.DISCONNECTED.value),
    }
    if note:
        result["note"] = note
    return result


def _readable(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, LoginStateError) else text
