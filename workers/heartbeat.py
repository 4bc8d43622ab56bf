"""The heartbeat thread: proves this worker is alive, and keeps it in step.

It runs apart from the task threads so a long browser operation never delays the
heartbeat past the lease (which would make other workers take its sessions).
"""

from __future__ import annotations

import logging
import threading
import time

from shared.services import workers as worker_services
from workers.context import WorkerContext
from workers.maintenance import reconcile

log = logging.getLogger(__name__)


class Heartbeat(threading.Thread):
    """Heartbeats every ``HEARTBEAT_INTERVAL``; reconciles and saves login states less often."""

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.ctx = ctx
        self._stop_event = threading.Event()

    def run(self) -> None:
        settings = self.ctx.settings
        next_sync = time.monotonic() + settings.SYNC_INTERVAL
        next_save = time.monotonic() + settings.LOGIN_STATE_SAVE_INTERVAL
        while not self._stop_event.wait(settings.HEARTBEAT_INTERVAL):
            try:
                worker_services.heartbeat(self.ctx.uow(), self.ctx.worker_id)
                self.ctx.publish_live_state(ttl=settings.HEARTBEAT_INTERVAL * 3)
                now = time.monotonic()
                if now >= next_sync:
                    next_sync = now + settings.SYNC_INTERVAL
                    reconcile(self.ctx)
                if now >= next_save:
                    next_save = now + settings.LOGIN_STATE_SAVE_INTERVAL
                    self.ctx.save_all_login_states()
            except Exception:  # a database blip must not kill the heartbeat for good
                log.exception("worker %s: heartbeat round failed", self.ctx.worker_id)

    def stop(self) -> None:
        """Stop after the current round."""
        self._stop_event.set()
        self.join(timeout=10)
