"""Bringing sessions back from their stored login state, a few at a time.

A worker that starts with many sessions must not launch every Chromium in the same
second: restores go through one bounded pool per worker (``RESTORE_CONCURRENCY``
slots), and a restore that gets its slot at once waits a small random time first
(``RESTORE_JITTER_SECONDS``). One that waited for a slot skips it: it starts when another
restore settled, already apart from the others, and a wait there would only idle the slot.
A slot is held until the session has settled (connected, waiting for a scan, or
failed) *and* its events are written, so the number of browsers still coming up never
exceeds the slot count, in memory or in the database.

The pool also remembers what it is restoring: a second request for a session already
in flight (the periodic reconcile, a send opening a lazy session) joins the first
instead of starting it twice. Per-session order and fencing are untouched: a restore
calls the same :meth:`SessionManager.start` as a start job, under the session's own
lock, at the epoch this worker adopted.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from shared.services import session_events
from shared.statuses import MemoryStatus
from workers.context import WorkerContext
from workers.runner import profile_tag

log = logging.getLogger(__name__)

# Memory statuses after which a starting session no longer holds a launch slot.
SETTLED = frozenset({"connected", "qrcode", "error", "disconnected"})
# A restore waiting for its session to settle looks at ``ctx.stopping`` at least this often.
STOPPING_CHECK = 1.0


@dataclass
class RestoreOutcome:
    """How one restore went."""

    session_id: str
    seconds: float
    status: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Restorer:
    """The bounded restore pool of one worker context."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.slots = max(1, int(ctx.settings.RESTORE_CONCURRENCY))
        self.jitter = max(0.0, float(ctx.settings.RESTORE_JITTER_SECONDS))
        self._pool = ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix="restore")
        # RLock: a future that is already done runs its callback in the submitting thread.
        self._lock = threading.RLock()
        self._in_flight: dict[str, Future] = {}

    def in_flight(self, session_id: str) -> bool:
        """Whether a restore of ``session_id`` is queued or running."""
        with self._lock:
            return session_id in self._in_flight

    def submit(self, session_id: str, epoch: int, why: str = "restore") -> tuple[Future, bool]:
        """Queue a restore of ``session_id`` at ``epoch``; returns its future and whether it is new.

        A session already queued or running gets the running restore's future back.
        """
        with self._lock:
            running = self._in_flight.get(session_id)
            if running is not None:
                return running, False
            # A free slot now: this launch may start in the same second as the others.
            at_once = len(self._in_flight) < self.slots
            future = self._pool.submit(self._run, session_id, epoch, why, at_once)
            self._in_flight[session_id] = future
            future.add_done_callback(lambda _f: self._done(session_id, future))
            return future, True

    def _done(self, session_id: str, future: Future) -> None:
        with self._lock:
            if self._in_flight.get(session_id) is future:
                del self._in_flight[session_id]

    def restore_all(self, sessions: Iterable[tuple[str, int]]) -> dict[str, Any]:
        """Restore ``sessions`` (id, epoch), at most ``slots`` at once; wait for all of them.

        Returns the restored count, each session's duration in seconds (failed ones
        too) and the wall time. Sessions already being restored are not counted here.
        """
        began = time.monotonic()
        mine = [
            future
            for session_id, epoch in sessions
            for future, new in [self.submit(session_id, epoch)]
            if new
        ]
        wait(mine)
        outcomes = [future.result() for future in mine if future.exception() is None]
        return {
            "restored": sum(o.ok for o in outcomes),
            "failed": sum(not o.ok for o in outcomes),
            "durations": {o.session_id: round(o.seconds, 2) for o in outcomes},
            "wall_seconds": round(time.monotonic() - began, 2),
        }

    def _run(self, session_id: str, epoch: int, why: str, at_once: bool) -> RestoreOutcome:
        ctx = self.ctx
        if self.jitter and at_once:
            time.sleep(random.uniform(0, self.jitter))  # noqa: S311 - spreading launches, not security
        row = session_events.session_snapshot(ctx.uow(), session_id)
        company = row.company_id if row is not None else "?"
        if ctx.stopping:
            return RestoreOutcome(session_id, 0.0, "disconnected", "worker stopping")
        began = time.monotonic()
        ctx.adopt(session_id, epoch)
        ctx.touch(session_id)
        error: str | None = None
        try:
            # After this worker's own restart its folder, if still tagged with the
            # epoch, is newer than any archive (a SIGKILL saves nothing).
            ctx.manager.start(
                session_id,
                session_events.load_login_state(ctx.uow(), session_id),
                timeout=ctx.settings.BROWSER_TIMEOUT,
                profile_tag=profile_tag(epoch),
            )
            status = self._wait_settled(session_id, began + ctx.settings.BROWSER_TIMEOUT)
            # Hold the slot until the database says so too: the events are written in order
            # by the dispatcher thread, and "connected" must be visible before the next launch.
            ctx.manager.flush_events()
        except Exception as exc:
            status = MemoryStatus.ERROR.value
            error = f"{why} failed: {exc}"
            if ctx.stopping:
                error = "worker stopping"  # not the session's fault: write nothing
            else:
                log.warning("session %s of company %s: %s", session_id, company, error)
                session_events.set_memory_status(
                    ctx.uow(), session_id, ctx.worker_id, epoch, status, error=error, lease_token=ctx.token
                )
        seconds = time.monotonic() - began
        log.info(
            "session %s of company %s: %s took %.2fs (status %s)", session_id, company, why, seconds, status
        )
        return RestoreOutcome(session_id, seconds, status, error)

    def _wait_settled(self, session_id: str, deadline: float) -> str:
        """Wait until the session leaves ``connecting`` (or the deadline); its memory status.

        Woken by the status change itself: the slot passes to the next restore at once.
        """
        while True:
            left = min(deadline - time.monotonic(), STOPPING_CHECK)
            status = self.ctx.manager.wait_status(session_id, SETTLED, max(left, 0.0)) or "disconnected"
            if status in SETTLED or time.monotonic() >= deadline or self.ctx.stopping:
                return status

    def shutdown(self) -> None:
        """Drop queued restores (the worker is stopping); running ones end on their own."""
        self._pool.shutdown(wait=False, cancel_futures=True)


_restorers: dict[int, Restorer] = {}
_restorers_lock = threading.Lock()


def restorer(ctx: WorkerContext) -> Restorer:
    """The restore pool of ``ctx`` (one per worker context)."""
    with _restorers_lock:
        found = _restorers.get(id(ctx))
        if found is None or found.ctx is not ctx:
            found = _restorers[id(ctx)] = Restorer(ctx)
        return found
