"""The per-process worker context: settings, browser runtime, live sessions, epochs.

Built once when the Celery worker starts (``workers.lifecycle``) and reached by the
tasks through :func:`current`. It also turns the session manager's events into fenced
database writes, and saves login states after ``ready``, before planned closes and
periodically.

Every fenced write carries this process's lease token (taken in :meth:`WorkerContext.register`),
so a second process with the same ``WORKER_ID`` can never write as this one.

A database outage does not lose events: the one dispatcher thread retries a write that
failed for a database reason (with capped backoff) until it lands, and the events behind
it wait, so they still land in order. A write that was fenced out is final.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared import live_state, worker_stats
from shared.config import Settings
from shared.secrets import secret_keys
from shared.services import inbox, session_events
from shared.services import workers as worker_services
from shared.uow import UnitOfWork
from workers.browser.runtime import BrowserRuntime
from workers.whatsapp.sessions import SessionManager

log = logging.getLogger(__name__)

T = TypeVar("T")

# Page events that carry messages, and the fenced write each one makes.
MESSAGE_WRITES: dict[str, Callable[..., bool]] = {
    "message": inbox.record_message,
    "message_ack": inbox.record_ack,
}

# Under SESSIONS_DIR: the shared browsers' temporary profiles (not a session id, so
# cleanup never takes it for a leftover session folder).
SHARED_BROWSERS_DIR = ".shared-browsers"

# Backoff of a write retried through a database outage: first wait, growth, cap.
RETRY_FIRST_DELAY = 0.25
RETRY_MAX_DELAY = 2.0


def is_database_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means the database could not be reached (worth retrying)."""
    # OperationalError/InterfaceError: connection lost, server down, client deadline.
    if isinstance(exc, (PoolTimeout, OperationalError, InterfaceError)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class WorkerContext:
    """Everything one worker process owns."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.worker_id = settings.WORKER_ID
        shared = settings.BROWSER_MODE == "shared"
        self.runtime = BrowserRuntime(
            executable_path=settings.CHROMIUM_PATH or None,
            sessions_per_browser=settings.BROWSER_SESSIONS_PER_PROCESS,
            # Shared browsers' temporary profiles, under the sessions folder (see BrowserRuntime).
            shared_dir=Path(settings.SESSIONS_DIR) / SHARED_BROWSERS_DIR if shared else None,
        )
        self.manager: SessionManager | None = None
        # The epoch each live session was started at: every write is fenced with it.
        self._epochs: dict[str, int] = {}
        self._epochs_lock = threading.Lock()
        # Login-state saves wait for Chromium to flush storage: keep them off the event thread.
        self._savers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="login-state")
        self._saves_queued: set[str] = set()  # one background save per session at a time
        self._saves_lock = threading.Lock()
        self._stopping = threading.Event()
        # Lazy sessions: when each session last did something (monotonic), and the ones
        # closed for being idle (they open again when needed, or on wake).
        self._activity: dict[str, float] = {}
        self.idle_closed: set[str] = set()
        # Random per process, set by register(); never logged.
        self.lease_token: str | None = None
        # Sessions being started from stored login state: when the start began (metrics).
        # Only the dispatcher thread touches it.
        self._restoring: dict[str, float] = {}

    def register(self) -> None:
        """Take this worker id's lease for this process (raises ``WorkerIdInUse``)."""
        self.lease_token = worker_services.register_worker(
            self.uow(),
            self.worker_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            capacity=self.settings.WORKER_CAPACITY,
            lease_seconds=self.settings.WORKER_LEASE,
        )

    def heartbeat(self) -> bool:
        """Refresh this worker's heartbeat; ``False`` once another process took the lease."""
        return worker_services.heartbeat(self.uow(), self.worker_id, self.token)

    @property
    def token(self) -> str:
        """This process's lease token (the worker must be registered)."""
        if self.lease_token is None:
            raise RuntimeError("worker is not registered: no lease token")
        return self.lease_token

    def start(self) -> None:
        """Start the browser runtime and the session manager."""
        self.runtime.start()
        self.manager = SessionManager(
            self.runtime,
            Path(self.settings.SESSIONS_DIR),
            self.settings.WA_WEB_URL,
            on_event=self.on_event,
            qr_max_rotations=self.settings.QR_MAX_ROTATIONS,
            watch_safety_probe=self.settings.WATCH_SAFETY_PROBE_SECONDS,
            login_state_keys=secret_keys(self.settings),
            browser_mode=self.settings.BROWSER_MODE,
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

    def touch(self, session_id: str) -> None:
        """Record activity of a session (an event, a send, an open): its idle clock restarts."""
        self._activity[session_id] = time.monotonic()

    def idle_seconds(self, session_id: str) -> float:
        """Seconds since the session's last activity (since forever: infinity)."""
        last = self._activity.get(session_id)
        return float("inf") if last is None else time.monotonic() - last

    @property
    def stopping(self) -> bool:
        """Whether this worker is shutting down (or abandoning its sessions)."""
        return self._stopping.is_set()

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
        """Session-manager callback: write the event, fenced, retried through outages.

        Runs on the manager's single dispatcher thread, so while one write waits for the
        database the later events wait behind it and order holds. Message events go
        to the message store through the same retry path.
        """
        self._observe_restore(session_id, event, payload)
        if event == "restore_failed":
            return  # a metrics signal only: the start job reports the failure itself
        if event == "storage_written":
            # The site saved its login storage: snapshot it now (shared mode, debounced).
            self._save_in_background(session_id)
            return
        self.touch(session_id)  # a message, an ack, a status change: the session is in use
        if event in MESSAGE_WRITES:
            write = MESSAGE_WRITES[event]
            self._until_stored(
                session_id,
                f"event {event}",
                lambda epoch: write(
                    self.uow(), session_id, self.worker_id, epoch, payload, lease_token=self.token
                ),
            )
            return
        applied = self._until_stored(
            session_id,
            f"event {event}",
            lambda epoch: session_events.apply_event(
                self.uow(), session_id, self.worker_id, epoch, event, payload, lease_token=self.token
            ),
        )
        if applied and event == "ready":
            self._save_in_background(session_id)

    def _observe_restore(self, session_id: str, event: str, payload: dict[str, Any]) -> None:
        """Time starts from stored login state for the metrics (``shared.worker_stats``).

        A restore begins with ``connecting`` marked ``restore`` and succeeds at ``ready``;
        a QR (it came back unlinked), an auth failure or a disconnect first is a failure.
        A failover is such a restore of a session whose previous owner died.
        """
        if event == "connecting":
            if payload.get("restore"):
                self._restoring[session_id] = time.monotonic()
            return
        if event == "restore_failed":
            started = time.monotonic()
        elif event in ("ready", "qr", "pairing_code", "auth_failure", "disconnected"):
            started = self._restoring.pop(session_id, None)
        else:
            return
        if started is None:
            return
        ok = event == "ready"
        seconds = time.monotonic() - started
        worker_stats.record_restore(self.settings, self.worker_id, seconds, ok)
        since_orphaned = worker_stats.take_failover_pending(self.settings, session_id)
        if since_orphaned is not None:
            worker_stats.record_failover(self.settings, self.worker_id, since_orphaned, ok)

    def _until_stored(self, session_id: str, what: str, write: Callable[[int], T]) -> T | None:
        """Run the fenced ``write(epoch)`` until the database answers.

        Retries only database outages, with capped backoff; gives up (``None``) when this
        worker stops running the session or is stopping. Fenced out is an answer, not an
        outage: it is returned, never retried.
        """
        delay = RETRY_FIRST_DELAY
        while True:
            epoch = self.epoch_of(session_id)
            if epoch is None:
                log.warning("session %s: %s dropped, not run by worker %s", session_id, what, self.worker_id)
                return None
            try:
                return write(epoch)
            except Exception as exc:
                if not is_database_outage(exc):
                    raise
                if self._stopping.is_set():
                    log.warning("session %s: %s not stored (no database at shutdown)", session_id, what)
                    return None
                log.warning(
                    "session %s: %s not stored yet, database unavailable; retrying in %.2fs",
                    session_id,
                    what,
                    delay,
                )
            if self._stopping.wait(delay):
                return None
            delay = min(delay * 2, RETRY_MAX_DELAY)

    def _save_in_background(self, session_id: str) -> None:
        """Queue a login-state save unless one is already queued or running for the session."""
        with self._saves_lock:
            if session_id in self._saves_queued:
                return
            self._saves_queued.add(session_id)

        def save() -> None:
            try:
                self.save_login_state(session_id)
            finally:
                with self._saves_lock:
                    self._saves_queued.discard(session_id)

        try:
            self._savers.submit(save)
        except RuntimeError:  # shutting down: the shutdown saves everything itself
            with self._saves_lock:
                self._saves_queued.discard(session_id)

    def _connected(self, session_id: str) -> bool:
        state = self.manager.status(session_id) if self.manager else None
        return bool(state) and state["status"] == "connected"

    def save_login_state(self, session_id: str) -> bool:
        """Archive a connected session's profile storage into the database (retried through outages)."""
        if self.epoch_of(session_id) is None or not self._connected(session_id):
            return False
        try:
            archive = self.manager.snapshot(session_id, timeout=self.settings.BROWSER_TIMEOUT)
        except Exception as exc:  # a crash mid-snapshot: the next save will catch up
            log.warning("session %s: login state not saved: %s", session_id, exc)
            worker_stats.record_login_state_save(self.settings, self.worker_id, ok=False)
            return False
        return bool(self.store_login_state(session_id, archive))

    def store_login_state(self, session_id: str, archive: bytes, patient: bool = True) -> bool:
        """Store an archive taken from this worker's live profile, fenced.

        ``patient`` retries through database outages; otherwise one attempt is made.
        """

        def write(epoch: int) -> bool:
            return session_events.save_login_state(
                self.uow(), session_id, self.worker_id, epoch, archive, lease_token=self.token
            )

        if patient:
            saved = bool(self._until_stored(session_id, "login state", write))
        else:
            epoch = self.epoch_of(session_id)
            saved = epoch is not None and write(epoch)
        worker_stats.record_login_state_save(self.settings, self.worker_id, ok=saved)
        return saved

    def save_all_login_states(self) -> int:
        """Save the login state of every connected session; returns how many were saved."""
        return sum(self.save_login_state(session_id) for session_id in self.tracked())

    def save_missing_login_states(self) -> int:
        """Save now the login state of connected sessions that have none stored yet.

        Catches up on a save that never landed (the database was down at ``ready``), so
        a crash of this worker cannot cost the phone a new scan.
        """
        if self.manager is None:
            return 0
        connected = [sid for sid in self.tracked() if self._connected(sid)]
        missing = session_events.without_login_state(self.uow(), connected)
        for session_id in missing:
            log.info("session %s: connected with no stored login state; saving it now", session_id)
            self._save_in_background(session_id)
        return len(missing)

    def stop(self) -> None:
        """Save login states, close every browser and stop the runtime."""
        # From here on a write that cannot reach the database is given up, not retried:
        # a shutdown must end even while the database is down.
        self._stopping.set()
        if self.manager is not None:
            self.save_all_login_states()
            self.manager.close_all(timeout=self.settings.BROWSER_TIMEOUT)
        self._savers.shutdown(wait=True, cancel_futures=True)
        self.runtime.stop()
        log.info("worker %s: browser runtime stopped", self.worker_id)

    def abandon(self) -> None:
        """This process lost its lease: close every browser without writing anything.

        Its writes are fenced out anyway; stopping at once ends the fight over the phones.
        """
        self._stopping.set()
        for session_id in list(self.tracked()):
            self.forget(session_id)  # later events of ours are dropped, not retried
        if self.manager is not None:
            self.manager.close_all(timeout=self.settings.BROWSER_TIMEOUT)
        self.runtime.stop()


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
