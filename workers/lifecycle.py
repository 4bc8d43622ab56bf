"""Worker lifecycle in Celery signals: start the runtime, register, restore, stop.

On start a worker registers in ``workers``, starts its heartbeat and browser runtime,
and restores the active sessions it owns. On a graceful shutdown it saves every login
state, closes its browsers and marks itself stopped.
"""

from __future__ import annotations

import logging
import os
import socket

from celery.signals import worker_init, worker_ready, worker_shutdown

from shared.config import get_settings
from shared.services import workers as worker_services
from workers.context import WorkerContext, current, install
from workers.heartbeat import Heartbeat
from workers.maintenance import reconcile

log = logging.getLogger(__name__)
_heartbeat: Heartbeat | None = None


@worker_init.connect
def on_worker_init(**_kwargs) -> None:
    """Before any task is consumed: start the browser runtime, register, heartbeat."""
    global _heartbeat
    settings = get_settings()
    ctx = WorkerContext(settings)
    ctx.start()
    install(ctx)
    worker_services.register_worker(
        ctx.uow(),
        ctx.worker_id,
        hostname=socket.gethostname(),
        pid=os.getpid(),
        capacity=settings.WORKER_CAPACITY,
    )
    _heartbeat = Heartbeat(ctx)
    _heartbeat.start()


@worker_ready.connect
def on_worker_ready(**_kwargs) -> None:
    """Bring back the active sessions this worker owns (load existing sessions)."""
    ctx = current()
    restored = reconcile(ctx)
    log.info(
        "worker %s ready on %s (%d sessions restored)",
        ctx.worker_id,
        ctx.settings.worker_queue,
        restored["restored"],
    )


@worker_shutdown.connect
def on_worker_shutdown(**_kwargs) -> None:
    """Save login states, close browsers, and mark the worker stopped."""
    if _heartbeat is not None:
        _heartbeat.stop()
    try:
        ctx = current()
    except RuntimeError:
        return
    ctx.stop()
    worker_services.mark_stopped(ctx.uow(), ctx.worker_id)
