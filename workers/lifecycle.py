"""Worker lifecycle in Celery signals: start the runtime, register, restore, stop.

On start a worker takes its id's lease in ``workers`` (refusing to start, before any
browser or job is touched, while another live process holds it), fails the jobs it was
running when it last went down, starts its browser runtime and background threads, and
restores the active sessions it owns (a few at a time, lazy ones left closed: see
``workers.restore`` and ``workers.lazy``). On a graceful shutdown it saves every login
state, closes its browsers and marks itself stopped.
"""

from __future__ import annotations

import logging
import os
import sys

from celery.signals import worker_init, worker_ready, worker_shutdown

from shared.config import get_settings
from shared.secrets import require_secret_keys
from shared.services import workers as worker_services
from shared.services.ownership import fail_interrupted_jobs
from shared.webhooks import dispatch as webhook_dispatch
from workers.celery_app import app as celery_app
from workers.context import WorkerContext, current, install
from workers.heartbeat import Periodic, start_background
from workers.legacy import import_on_start
from workers.maintenance import reconcile
from workers.restore import restorer

# Exit status of a worker that refused to start because its id is taken.
EXIT_ID_IN_USE = 3

log = logging.getLogger(__name__)
_background: list[Periodic] = []


@worker_init.connect
def on_worker_init(**_kwargs) -> None:
    """Before any task is consumed: runtime, registration, background threads."""
    try:
        settings = get_settings()
        require_secret_keys(settings)
        ctx = WorkerContext(settings)
        # The lease first: a twin of a live worker must not fail its jobs or open browsers.
        ctx.register()
        ctx.start()
        install(ctx)
        # The events this worker writes reach the webhook queue right after their commit.
        webhook_dispatch.install(webhook_dispatch.celery_publisher(celery_app))
        interrupted = fail_interrupted_jobs(ctx.uow(), ctx.worker_id)
        if interrupted:
            log.warning("worker %s: %d interrupted jobs marked failed", ctx.worker_id, interrupted)
        import_on_start(ctx)  # sessions of the old service, before anything restores sessions
        # Starting the browser runtime can outlast the lease on a busy host: beat once now,
        # so no placement takes this worker for dead before its heartbeat thread runs.
        if not ctx.heartbeat():
            raise worker_services.WorkerIdInUse(f"worker id {ctx.worker_id!r} was taken over while starting")
        _background.extend(start_background(ctx))
    except worker_services.WorkerIdInUse as exc:
        log.error("worker refused to start: %s", exc)
        print(f"zaphub worker refused to start: {exc}", file=sys.stderr, flush=True)
        os._exit(EXIT_ID_IN_USE)
    except Exception:
        # Celery swallows errors raised by signal handlers; a worker without its
        # browser runtime must not consume jobs it cannot run.
        log.exception("worker failed to start")
        os._exit(1)


@worker_ready.connect
def on_worker_ready(**_kwargs) -> None:
    """Bring back the active sessions this worker owns (load existing sessions)."""
    ctx = current()
    restored = reconcile(ctx)
    log.info(
        "worker %s ready on %s (%d sessions restored in %.2fs, at most %d at once)",
        ctx.worker_id,
        ctx.settings.worker_queue,
        restored["restored"],
        restored["restore_wall_seconds"],
        ctx.settings.RESTORE_CONCURRENCY,
    )


@worker_shutdown.connect
def on_worker_shutdown(**_kwargs) -> None:
    """Save login states, close browsers, and mark the worker stopped."""
    for thread in _background:
        thread.stop()
    try:
        ctx = current()
    except RuntimeError:
        return
    try:
        restorer(ctx).shutdown()  # queued restores would only open browsers to close them
        ctx.stop()
    finally:
        worker_services.mark_stopped(ctx.uow(), ctx.worker_id, ctx.token)
