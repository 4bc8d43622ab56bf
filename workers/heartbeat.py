"""Background threads of a worker: the heartbeat, and the slower housekeeping.

The heartbeat thread only beats (and shares live state), so a long browser operation
can never delay it past the lease and make other workers take this one's sessions.
Reconciling, saving login states and closing idle lazy sessions run on threads of
their own.

A heartbeat that finds another process holding this worker's lease means this process
must stop acting at once: it closes its browsers and exits non-zero.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from shared.worker_stats import publish_worker_stats
from workers.browser.memory import chromium_memory
from workers.context import WorkerContext
from workers.lazy import close_idle
from workers.maintenance import reconcile

log = logging.getLogger(__name__)

# Exit status of a worker process that lost its lease to another process.
EXIT_LEASE_LOST = 4


class Periodic(threading.Thread):
    """Calls ``work`` every ``interval`` seconds until stopped; errors are logged, not fatal."""

    def __init__(self, name: str, interval: float, work: Callable[[], object]) -> None:
        super().__init__(name=name, daemon=True)
        self.interval = interval
        self.work = work
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                self.work()
            except Exception:  # a database blip must not end the loop for good
                log.exception("%s round failed", self.name)

    def stop(self, timeout: float = 10) -> None:
        """Stop after the current round."""
        self._stop_event.set()
        self.join(timeout=timeout)


def start_background(ctx: WorkerContext) -> list[Periodic]:
    """Start the heartbeat, reconcile and login-state threads of ``ctx``."""
    settings = ctx.settings

    def beat() -> None:
        if not ctx.heartbeat():
            lose_lease(ctx)
        ctx.publish_live_state(ttl=settings.HEARTBEAT_INTERVAL * 3)
        # For GET /metrics; expires a few leases after this worker stops beating.
        publish_worker_stats(settings, ctx.worker_id, **chromium_memory(settings.SESSIONS_DIR))

    def housekeeping() -> None:
        reconcile(ctx)
        ctx.save_missing_login_states()

    threads = [
        Periodic("heartbeat", settings.HEARTBEAT_INTERVAL, beat),
        Periodic("reconcile", settings.SYNC_INTERVAL, housekeeping),
        Periodic("login-state-saver", settings.LOGIN_STATE_SAVE_INTERVAL, ctx.save_all_login_states),
        # Looks often enough that a lazy session closes close to its idle time.
        Periodic("lazy-idle", min(max(settings.LAZY_IDLE_SECONDS / 4, 0.5), 10.0), lambda: close_idle(ctx)),
    ]
    for thread in threads:
        thread.start()
    return threads


def lose_lease(ctx: WorkerContext) -> None:
    """Another process holds this worker id's lease: close every browser and exit."""
    log.error(
        "worker %s lost its lease to another process with the same WORKER_ID; closing browsers and exiting",
        ctx.worker_id,
    )
    try:
        ctx.abandon()
    finally:
        # Not sys.exit: this is a background thread, and Celery must not go on consuming.
        os._exit(EXIT_LEASE_LOST)
