"""Background threads of a worker: the heartbeat, and the slower housekeeping.

The heartbeat thread only beats (and shares live state), so a long browser operation
can never delay it past the lease and make other workers take this one's sessions.
Reconciling and saving login states run on threads of their own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from shared.services import workers as worker_services
from workers.context import WorkerContext
from workers.maintenance import reconcile

log = logging.getLogger(__name__)


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
        worker_services.heartbeat(ctx.uow(), ctx.worker_id)
        ctx.publish_live_state(ttl=settings.HEARTBEAT_INTERVAL * 3)

    threads = [
        Periodic("heartbeat", settings.HEARTBEAT_INTERVAL, beat),
        Periodic("reconcile", settings.SYNC_INTERVAL, lambda: reconcile(ctx)),
        Periodic("login-state-saver", settings.LOGIN_STATE_SAVE_INTERVAL, ctx.save_all_login_states),
    ]
    for thread in threads:
        thread.start()
    return threads
