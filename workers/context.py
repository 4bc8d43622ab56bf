"""The per-process worker context: settings, browser runtime, live sessions, epochs.

Built once when the Celery worker starts (``workers.lifecycle``) and reached by the
tasks through :func:`current`. It also turns the session manager's events into fenced
database writes, and saves login states after ``ready`` and periodically.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from shared import live_state
from shared.config import Settings
from shared.secrets import secret_keys
from shared.services import session_events
from shared.uow import UnitOfWork
from workers.browser.runtime import BrowserRuntime
from workers.whatsapp.sessions import SessionManager

log = logging.getLogger(__name__)


class WorkerContext:
    """Everything one worker process owns."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.worker_id = settings.WORKER_ID
        self.runtime = BrowserRuntime(executable_path=settings.CHROMIUM_PATH or None)
        self.manager: SessionManager | None = None
        # The epoch each live session was started at: every write is fenced with it.
        self._epochs: dict[str, int] = {}
        self._epochs_lock = threading.Lock()
        # Login-state saves wait for Chromium to flush storage: keep them off the event thread.
        self._savers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="login-state")

    def start(self) -> None:
        """Start the browser runtime and the session manager."""
        self.runtime.start()
        self.manager = SessionManager(
            self.runtime,
            Path(self.settings.SESSIONS_DIR),
            self.settings.WA_WEB_URL,
            on_event=self.on_event,
            qr_max_rotations=self.settings.QR_MAX_ROTATIONS,
            login_state_keys=secret_keys(self.settings),
        )
        log.info("worker %s: browser runtime started", self.worker_id)

    def uow(self) -> UnitOfWork:
        """A unit of work on the shared database."""
        return UnitOfWork(self.settings)

    def adopt(self, session_id: str, epoch: int) -> None:
        """Record that this worker runs ``session_id`` at ``epoch`` from now on.

        Epochs only grow: a slower job that routed at an older epoch cannot pull the
        session back to it (every write of ours would then be fenced out).
        """
        with self._epochs_lock:
            self._epochs[session_id] = max(epoch, self._epochs.get(session_id, epoch))

    def forget(self, session_id: str) -> None:
        """Stop tracking a session this worker no longer runs."""
        with self._epochs_lock:
            self._epochs.pop(session_id, None)

    def epoch_of(self, session_id: str) -> int | None:
        """The epoch this worker runs ``session_id`` at, if it runs it."""
        with self._epochs_lock:
            return self._epochs.get(session_id)

    def tracked(self) -> dict[str, int]:
        """Every session this worker runs, with its epoch."""
        with self._epochs_lock:
            return dict(self._epochs)

    def publish_live_state(self, ttl: float) -> None:
        """Share the memory state of every session this worker runs (for the API)."""
        if self.manager is None:
            return
        states = {sid: state for sid in self.tracked() if (state := self.manager.status(sid))}
        if states:
            live_state.publish(self.settings, self.worker_id, states, ttl)

    def on_event(self, session_id: str, event: str, payload: dict[str, Any]) -> None:
        """Session-manager callback: write the event, fenced by this worker's epoch."""
        epoch = self.epoch_of(session_id)
        if epoch is None:
            log.warning("session %s: %s ignored, not run by worker %s", session_id, event, self.worker_id)
            return
        session_events.apply_event(self.uow(), session_id, self.worker_id, epoch, event, payload)
        if event == "ready":
            self._savers.submit(self.save_login_state, session_id)

    def save_login_state(self, session_id: str) -> bool:
        """Archive a connected session's profile storage into the database."""
        epoch = self.epoch_of(session_id)
        state = self.manager.status(session_id) if self.manager else None
        if epoch is None or not state or state["status"] != "connected":
            return False
        try:
            archive = self.manager.snapshot(session_id, timeout=self.settings.BROWSER_TIMEOUT)
        except Exception as exc:  # a crash mid-snapshot: the next save will catch up
            log.warning("session %s: login state not saved: %s", session_id, exc)
            return False
        return session_events.save_login_state(self.uow(), session_id, self.worker_id, epoch, archive)

    def save_all_login_states(self) -> int:
        """Save the login state of every connected session; returns how many were saved."""
        return sum(self.save_login_state(session_id) for session_id in self.tracked())

    def stop(self) -> None:
        """Save login states, close every browser and stop the runtime."""
        if self.manager is not None:
            self.save_all_login_states()
            self.manager.close_all(timeout=self.settings.BROWSER_TIMEOUT)
        self._savers.shutdown(wait=True, cancel_futures=True)
        self.runtime.stop()
        log.info("worker %s: browser runtime stopped", self.worker_id)


_current: WorkerContext | None = None


def install(context: WorkerContext) -> None:
    """Make ``context`` the process's worker context."""
    global _current
    _current = context


def current() -> WorkerContext:
    """The process's worker context (raises if the worker did not start one)."""
    if _current is None:
        raise RuntimeError("no worker context: this process is not a started ZapHub worker")
    return _current
