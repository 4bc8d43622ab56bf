"""The live-session manager: every WhatsApp session this worker keeps open.

Public methods are synchronous (Celery task threads call them); each one hands a
coroutine to the :class:`BrowserRuntime` loop and waits with a timeout. All session
state is mutated on the loop thread only, under a per-session ``asyncio.Lock``, so
concurrent start/stop/restart calls of one session serialize cleanly.

Events go to ``on_event(session_id, name, payload)`` from ONE dispatcher thread fed by
a queue (never from the loop thread: the callback does blocking DB writes, and order
must be preserved).

Browser modes (``workers.whatsapp.modes``): in profile mode each session runs its own
Chromium on a persistent profile folder; in shared mode each session is a non-persistent
context in a shared Chromium (``BrowserRuntime.pool``) and its login moves as data. Both
install the key capture (``portable.install_capture``) before the first page, so every
stored login state carries the session's key material and either mode can start from
either kind of archive. In shared mode :meth:`SessionManager._storage_written` (the
driver's storage-write hook) schedules a debounced ``storage_written`` event, on which
the worker stores a fresh snapshot.

Crash recovery: an unexpected close of a context (Chromium killed, page crashed)
relaunches it - from the same profile folder, or in shared mode from the session's latest
dump kept in memory (a killed shared Chromium closes every context of its group, and
each comes back this way) - emitting ``connecting`` then, via the
driver, ``authenticated``/``ready``. No ``disconnected`` is emitted for a crash that
is being recovered (the status goes straight to CONNECTING). After
``crash_restart_limit`` consecutive failed attempts the manager emits
``auth_failure`` ("repeated start failures"); with ``crash_restart_limit=0`` a crash
emits ``disconnected`` reason ``crash`` instead.

Planned closes (stop, restart) can hand a fresh login-state archive of the live profile
to a ``save`` callback before the context goes. A restart (or a start) given a
``profile_tag`` reuses the profile folder when it is intact and was last run under the
same tag (the caller's owner epoch): it is then at least as new as any stored archive.
Otherwise the profile is rebuilt from the archive.

Messages: every context exposes the :data:`messaging.BINDING` binding before the page
loads (so it survives reloads); the driver subscribes the page's message events once the
session is ready, and they reach ``on_event`` as ``message`` / ``message_ack`` through the
same ordered queue as the session events. :meth:`SessionManager.send_text` and
:meth:`SessionManager.find_message` drive the page's own modules.

Linking by phone number: :meth:`SessionManager.request_pairing_code` runs
:data:`page.REQUEST_PAIRING_CODE_JS` on a session waiting on its QR screen; every code the
page issues (the first and each renewal) comes back through the context's
``onCodeReceivedEvent`` binding as a ``pairing_code`` event ``{code, phone}``.

Logs name the session id, never QR text, pairing codes, tokens, login state or message bodies.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import re
import shutil
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, Page
from playwright.async_api import Error as PlaywrightError

from shared.login_state import LoginStateError
from workers.browser.runtime import LOCAL_STORAGE_COMMIT_DELAY, BrowserRuntime, browser_processes
from workers.whatsapp import messaging, portable
from workers.whatsapp import page as wa
from workers.whatsapp.driver import PageDriver
from workers.whatsapp.messaging import (
    ChatNotFound,
    MessagingError,
    ModuleMissing,
    QuotedMessageNotFound,
    SessionNotConnected,
)
from workers.whatsapp.modes import ProfileMode, SharedMode
from workers.whatsapp.page import NotWaitingToLink, PairingError, PairingRefused
from workers.whatsapp.portable import KeyRecorder, NotPortable

log = logging.getLogger(__name__)

SESSION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CLOSE_TIMEOUT = 15.0
# Shared mode: a snapshot follows the site's last login-storage write after this quiet time.
STORAGE_SAVE_DEBOUNCE = 1.0

EventCallback = Callable[[str, str, dict[str, Any]], None]
# Receives a login-state archive of the live profile just before a planned close.
SaveCallback = Callable[[bytes], object]

__all__ = [
    "SESSION_ID_RE",
    "ChatNotFound",
    "LoginStateError",
    "MessagingError",
    "ModuleMissing",
    "NotWaitingToLink",
    "PairingError",
    "PairingRefused",
    "QuotedMessageNotFound",
    "SessionManager",
    "SessionNotConnected",
]


@dataclass
class _Session:
    """Memory state of one session (lives on the loop thread)."""

    session_id: str
    profile_dir: Path
    context: BrowserContext | None = None
    page: Page | None = None
    watcher: asyncio.Task | None = None
    driver: PageDriver | None = None
    status: str = "disconnected"
    qr: str | None = None
    phone_number: str | None = None
    push_name: str | None = None
    last_error: str | None = None
    pair_phone: str | None = None  # the phone number codes are being issued for
    failures: int = 0  # consecutive failed (re)launches
    wanted: bool = False  # should be live; False after stop / terminal events
    restarts_begun: int = 0
    recovering: asyncio.Task | None = None
    closing: set[int] = field(default_factory=set)  # ids of contexts we close on purpose
    # The key material the site imported (both modes): carried in every login state.
    recorder: KeyRecorder = field(default_factory=KeyRecorder)
    tag: str | None = None  # the owner tag of the last start
    mode: ProfileMode | SharedMode | None = None  # the mode the live context was opened in
    # Shared mode: the latest dump (kept in memory, so a crash before the database write
    # loses nothing); profile mode: a portable state to restore into the fresh profile.
    latest_dump: dict[str, Any] | None = None
    pending_state: dict[str, Any] | None = None
    # Why the login cannot be carried as data: the session then runs in profile mode here.
    not_portable: str | None = None
    storage_save: asyncio.TimerHandle | None = None  # a debounced snapshot after a storage write


class SessionManager:
    """Registry of the live WhatsApp sessions of this worker."""

    def __init__(
        self,
        runtime: BrowserRuntime,
        sessions_dir: Path,
        wa_url: str,
        on_event: EventCallback,
        qr_max_rotations: int = 5,
        crash_restart_limit: int = 3,
        login_state_keys: Sequence[str] = (),
        watch_safety_probe: float = wa.WATCH_SAFETY_PROBE,
        browser_mode: str = "profile",
    ) -> None:
        self.runtime = runtime
        # Absolute + normalized, like the --user-data-dir Chromium sees (browser_pid).
        self.sessions_dir = Path(os.path.abspath(sessions_dir))
        self.sessions_dir.mkdir(parents=True, exist_ok=True)
        self.wa_url = wa_url
        self.on_event = on_event
        self.qr_max_rotations = qr_max_rotations
        self.crash_restart_limit = crash_restart_limit
        self.watch_safety_probe = watch_safety_probe  # connected pages: seconds between safety probes
        # shared.secrets.secret_keys(settings): newest first, the first one encrypts.
        self._secret = list(login_state_keys) or None
        # What differs by BROWSER_MODE lives in the mode objects (workers.whatsapp.modes).
        self._profile = ProfileMode(self)
        self.mode: ProfileMode | SharedMode = SharedMode(self) if browser_mode == "shared" else self._profile
        self._sessions: dict[str, _Session] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._status_lock = threading.Lock()  # status() reads from task threads
        # Notified on every status change: wait_status() sleeps on it instead of polling.
        self._status_changed = threading.Condition(self._status_lock)
        self._events: queue.Queue = queue.Queue()
        self._dispatcher = threading.Thread(target=self._dispatch, name="wa-events", daemon=True)
        self._dispatcher.start()

    # ================================================================ public (sync)
    def start(
        self,
        session_id: str,
        login_state: bytes | None = None,
        timeout: float = 60,
        profile_tag: str | None = None,
    ) -> None:
        """Open the session (idempotent).

        Reuses the profile folder when it is intact and tagged ``profile_tag``; otherwise
        restores ``login_state`` into a fresh profile. Raises ``LoginStateError`` for a
        corrupt archive, ``RuntimeTimeout`` on timeout.
        """
        self._check_id(session_id)
        self.runtime.submit(self._start(session_id, login_state, profile_tag), timeout)

    def stop(
        self, session_id: str, reason: str = "stopped", timeout: float = 30, save: SaveCallback | None = None
    ) -> None:
        """Close the session's context (idempotent) and emit ``disconnected``.

        A connected session's login state goes to ``save`` first.
        """
        self._check_id(session_id)
        self.runtime.submit(self._stop(session_id, reason, save), timeout)

    def restart(
        self,
        session_id: str,
        login_state: bytes | None = None,
        timeout: float = 120,
        profile_tag: str | None = None,
        save: SaveCallback | None = None,
    ) -> None:
        """Save (to ``save``), close and start again.

        The live profile folder is reused when it is intact and tagged ``profile_tag``;
        otherwise it is deleted and rebuilt from ``login_state`` (validated before
        anything is torn down). Concurrent restarts of one session coalesce: a caller
        whose request was already satisfied by a restart that began after it asked
        returns at once.
        """
        self._check_id(session_id)
        self.runtime.submit(self._restart(session_id, login_state, profile_tag, save), timeout)

    def remove_local(self, session_id: str, timeout: float = 30) -> None:
        """Stop the session if needed and delete its profile folder."""
        self._check_id(session_id)
        self.runtime.submit(self._remove_local(session_id), timeout)

    def snapshot(self, session_id: str, timeout: float = 60) -> bytes:
        """Login-state archive of the session's profile (see ``shared.login_state``)."""
        self._check_id(session_id)
        return self.runtime.submit(self._snapshot(session_id), timeout)

    def send_text(
        self,
        session_id: str,
        *,
        chat_id: str,
        text: str,
        message_id: str,
        quoted_wa_id: str | None = None,
        timeout: float = 30,
    ) -> dict[str, Any]:
        """Send ``text`` to ``chat_id`` (digits or a chat id) with the caller's bare ``message_id``.

        Returns the ``message`` payload of the sent message (ack SERVER once the server
        took it, PENDING if it did not answer within the timeout: the page keeps trying,
        and :meth:`find_message` finds it by key). A key already in the page is not sent
        again. Raises ``SessionNotConnected``, ``ModuleMissing``, ``ChatNotFound``,
        ``QuotedMessageNotFound`` (all ``MessagingError``), ``ValueError`` for a bad
        ``chat_id``, ``text`` or ``message_id``, ``RuntimeTimeout``.
        """
        self._check_id(session_id)
        messaging.chat_id_for(chat_id)  # bad input fails here, before the page
        # Leave the page's wait for the server a little less than the caller's budget.
        wait = max(min(timeout - 3.0, timeout * 0.8), 0.5)
        return self.runtime.submit(
            self._in_page(
                session_id,
                lambda page: messaging.send_text(
                    page,
                    chat_id=chat_id,
                    text=text,
                    message_id=message_id,
                    quoted_wa_id=quoted_wa_id,
                    wait=wait,
                ),
            ),
            timeout,
        )

    def find_message(self, session_id: str, wa_id: str, timeout: float = 10) -> dict[str, Any] | None:
        """The ``message`` payload of serialized key ``wa_id`` in the page's ``Msg``, or None."""
        self._check_id(session_id)
        return self.runtime.submit(
            self._in_page(session_id, lambda page: messaging.find_message(page, wa_id)), timeout
        )

    def request_pairing_code(
        self,
        session_id: str,
        phone: str,
        *,
        show_notification: bool = True,
        interval: float = wa.PAIRING_CODE_INTERVAL,
        timeout: float = 30,
    ) -> str:
        """Start linking by phone number; returns the 8-character code the phone must enter.

        The session must be waiting on its QR screen (memory status ``qrcode``). The page
        renews the code every ``interval`` seconds until it is linked; each code (this
        one included) is also reported as a ``pairing_code`` event ``{code, phone}``.
        Raises ``ValueError`` for a phone that is not 8-15 digits, ``NotWaitingToLink``,
        ``PairingRefused`` (both ``PairingError``), ``RuntimeTimeout``.
        """
        self._check_id(session_id)
        phone = str(phone)
        if not wa.PAIRING_PHONE_RE.match(phone):
            raise ValueError("phone must be 8 to 15 digits (country code first)")
        if interval <= 0:
            raise ValueError("interval must be > 0")
        return self.runtime.submit(self._pair(session_id, phone, show_notification, interval), timeout)

    def status(self, session_id: str) -> dict[str, Any] | None:
        """Memory status of a session this worker knows, or None."""
        with self._status_lock:
            s = self._sessions.get(session_id)
            if s is None:
                return None
            return {
                "session_id": s.session_id,
                "status": s.status,
                "qr": s.qr,
                "phone_number": s.phone_number,
                "push_name": s.push_name,
                "last_error": s.last_error,
                "live": s.context is not None,
            }

    def wait_status(self, session_id: str, wanted: Collection[str], timeout: float) -> str | None:
        """Block until the session's memory status is one of ``wanted``, at most ``timeout`` seconds.

        Returns the status then, at once None for a session this worker does not know.
        Woken by the status change itself, so a caller holding a slot until a start
        settles loses no poll interval.
        """
        deadline = time.monotonic() + timeout
        with self._status_changed:
            while True:
                s = self._sessions.get(session_id)
                if s is None:
                    return None
                left = deadline - time.monotonic()
                if s.status in wanted or left <= 0:
                    return s.status
                self._status_changed.wait(left)

    def live_ids(self) -> list[str]:
        """Ids of the sessions with an open browser context."""
        with self._status_lock:
            return sorted(sid for sid, s in self._sessions.items() if s.context is not None)

    def busy_ids(self) -> set[str]:
        """Sessions whose profile folder is in use or about to be: live, wanted, recovering or locked.

        A Chromium may be starting on a folder before its context exists, so a cleanup must
        treat all of these as in use, never as leftovers.
        """
        with self._status_lock:
            busy = {
                sid
                for sid, s in self._sessions.items()
                if s.context is not None or s.wanted or (s.recovering is not None and not s.recovering.done())
            }
        busy.update(sid for sid, lock in list(self._locks.items()) if lock.locked())
        return busy

    def profile_dir(self, session_id: str) -> Path:
        """The profile folder of a session (validated id; never built from a name)."""
        self._check_id(session_id)
        return self.sessions_dir / session_id

    def browser_pid(self, session_id: str) -> int | None:
        """PID of the Chromium browser process running this session's profile."""
        wanted = str(self.profile_dir(session_id))
        return next((pid for pid, folder in browser_processes().items() if folder == wanted), None)

    def close_all(self, timeout: float = 60) -> None:
        """Close every session (reason ``shutdown``) and deliver the queued events."""
        if self.runtime.is_running():
            self.runtime.submit(self._close_all(), timeout)
        self.flush_events(timeout=10)

    def flush_events(self, timeout: float = 10) -> bool:
        """Wait until every queued event was delivered (tests, shutdown)."""
        done = threading.Event()
        self._events.put(done)
        return done.wait(timeout)

    # ============================================================ events
    def _dispatch(self) -> None:
        while True:
            item = self._events.get()
            if isinstance(item, threading.Event):
                item.set()
                continue
            sid, name, payload = item
            try:
                self.on_event(sid, name, payload)
            except Exception:
                log.exception("session %s: on_event(%s) failed", sid, name)

    def _emit(self, s: _Session, name: str, payload: dict[str, Any]) -> None:
        """Update memory status and queue the event (loop thread)."""
        with self._status_lock:
            if name == "connecting":
                s.status, s.qr = "connecting", None
            elif name == "qr":
                s.status, s.qr = "qrcode", payload.get("qr")
                s.failures = 0
            elif name == "pairing_code":
                # Still waiting to be linked, but no QR is shown any more.
                s.status, s.qr = "qrcode", None
            elif name == "authenticated":
                s.status, s.qr, s.failures = "connected", None, 0
            elif name == "ready":
                s.status = "connected"
                s.phone_number = payload.get("phone_number")
                s.push_name = payload.get("push_name")
            elif name == "auth_failure":
                s.status, s.qr, s.last_error = "error", None, payload.get("reason")
            elif name == "disconnected":
                if s.status == "disconnected":
                    return  # already reported
                s.status, s.qr = "disconnected", None
            self._status_changed.notify_all()
        if name in messaging.MESSAGE_EVENTS:
            log.debug("session %s: event %s", s.session_id, name)
        else:
            log.info("session %s: event %s", s.session_id, name)
        self._events.put((s.session_id, name, dict(payload)))

    def _on_page_event(self, s: _Session, ctx: BrowserContext, kind: Any, raw: Any) -> None:
        """A message event from the page's binding (loop thread, in page order)."""
        if s.context is not ctx:
            return  # a context being torn down
        try:
            payload = messaging.parse_event(str(kind), raw)
        except (TypeError, ValueError) as exc:
            log.warning("session %s: dropped a malformed %s event from the page: %s", s.session_id, kind, exc)
            return
        self._emit(s, str(kind), payload)

    def _on_pairing_code(self, s: _Session, ctx: BrowserContext, raw: Any) -> str | None:
        """A code from the page's ``onCodeReceivedEvent`` binding (loop thread); handed back."""
        if s.context is not ctx:
            return None  # a context being torn down
        code = wa.pairing_code(raw)
        if code is None:
            log.warning("session %s: dropped a malformed pairing code from the page", s.session_id)
            return None
        if s.driver is not None:
            s.driver.code_received()
        self._emit(s, "pairing_code", {"code": code, "phone": s.pair_phone})
        return code

    async def _pair(self, sid: str, phone: str, show_notification: bool, interval: float) -> str:
        async with self._lock(sid):
            s = self._sessions.get(sid)
            page = s.page if s is not None else None
            if s is None or page is None or s.context is None or s.status != "qrcode":
                status = s.status if s is not None else "unknown"
                raise NotWaitingToLink(f"session {sid} is not waiting to be linked (status {status})")
            previous, s.pair_phone = s.pair_phone, phone
            args = {
                "phoneNumber": phone,
                "showNotification": show_notification,
                "intervalMs": int(interval * 1000),
            }
            try:
                code = wa.parse_pairing_answer(await page.evaluate(wa.REQUEST_PAIRING_CODE_JS, args))
            except PairingRefused:
                s.pair_phone = previous
                raise
            except PlaywrightError as exc:
                s.pair_phone = previous
                raise PairingRefused(f"session {sid}: page error: {exc.message}") from None
            log.info("session %s: pairing code issued", sid)
            return code

    async def _in_page(self, sid: str, action: Callable[[Page], Any]) -> Any:
        """Run ``action(page)`` on a connected session's page (loop thread)."""
        s = self._sessions.get(sid)
        page = s.page if s is not None else None
        if s is None or page is None or s.context is None or s.status != "connected":
            status = s.status if s is not None else "unknown"
            raise SessionNotConnected(f"session {sid} is not connected (status {status})")
        try:
            return await action(page)
        except PlaywrightError as exc:
            raise MessagingError(f"session {sid}: page error: {exc.message}") from None

    # ============================================================ loop side
    def _check_id(self, session_id: str) -> None:
        if not isinstance(session_id, str) or not SESSION_ID_RE.match(session_id):
            raise ValueError(f"invalid session id: {session_id!r}")

    def _lock(self, sid: str) -> asyncio.Lock:
        lock = self._locks.get(sid)
        if lock is None:
            lock = self._locks[sid] = asyncio.Lock()
        return lock

    def _get(self, sid: str) -> _Session:
        s = self._sessions.get(sid)
        if s is None:
            with self._status_lock:
                s = self._sessions[sid] = _Session(sid, self.sessions_dir / sid)
        return s

    async def _start(self, sid: str, blob: bytes | None, tag: str | None) -> None:
        async with self._lock(sid):
            s = self._get(sid)
            if s.context is not None:
                return
            await self._start_locked(s, blob, tag)

    async def _start_locked(self, s: _Session, blob: bytes | None, tag: str | None) -> None:
        restoring = False
        if self._mode(s).reusable(s, tag):
            log.info("session %s: reusing its live %s state", s.session_id, self._mode(s).name)
            await self._mode(s).reuse(s, blob)
        elif blob is not None:
            try:
                await self._restore(s, blob)
            except LoginStateError as exc:
                # Not a database write: tells the worker's metrics a restore failed.
                self._emit(s, "restore_failed", {"reason": str(exc)})
                raise
            restoring = True
        if tag is not None:
            s.tag = tag
            await self._mode(s).remember_tag(s, tag)
        s.wanted = True
        s.failures = 0
        # ``restore`` marks a start from stored login state (the worker times it until ``ready``).
        self._emit(s, "connecting", {"restore": True} if restoring else {})
        try:
            await self._launch(s)
        except BaseException as exc:  # also a cancelled (timed out) start
            s.wanted = False
            log.warning("session %s: start failed: %s", s.session_id, type(exc).__name__)
            self._emit(s, "auth_failure", {"reason": f"start failed: {type(exc).__name__}"})
            raise

    async def _restore(self, s: _Session, blob: bytes) -> None:
        """Prepare a start from ``blob`` in this mode; a bad archive never destroys what is there."""
        try:
            await self._mode(s).prepare(s, blob)
        except LoginStateError as exc:
            with self._status_lock:
                s.status, s.last_error = "error", str(exc)
                self._status_changed.notify_all()
            log.warning("session %s: login state rejected: %s", s.session_id, exc)
            raise

    async def _launch(self, s: _Session) -> None:
        mode = self._mode(s)
        ctx = await mode.open(s)
        with self._status_lock:
            s.context, s.mode = ctx, mode
        ctx.on("close", lambda c: self._on_context_close(s, ctx))
        try:
            # On the context, before the first document: survives reloads and navigations.
            await portable.install_capture(ctx, s.recorder)
            await ctx.expose_binding(
                messaging.BINDING, lambda source, kind, raw: self._on_page_event(s, ctx, kind, raw)
            )
            await ctx.expose_binding(
                wa.PAIRING_BINDING, lambda source, code: self._on_pairing_code(s, ctx, code)
            )
            # The page watcher's reports wake this context's driver (a connected page is not polled).
            await ctx.expose_binding(
                wa.WATCH_BINDING,
                lambda source, raw: s.driver.page_changed(raw) if s.context is ctx and s.driver else None,
            )
            await ctx.add_init_script(wa.WATCH_JS)
            page = await mode.load(s, ctx)
            for extra in ctx.pages:
                if extra is not page:
                    await extra.close()
            s.page = page
            page.on("crash", lambda p: self._on_page_crash(s, ctx))
        except BaseException:
            await self._close_context(s)
            raise
        driver = PageDriver(
            s.session_id,
            page,
            lambda n, p: self._emit(s, n, p),
            self.qr_max_rotations,
            safety_probe=self.watch_safety_probe,
            on_storage_write=lambda: self._storage_written(s),
        )
        s.driver = driver
        s.watcher = asyncio.create_task(self._watch(s, ctx, driver), name=f"watch-{s.session_id}")

    async def _watch(self, s: _Session, ctx: BrowserContext, driver: PageDriver) -> None:
        try:
            reason = await driver.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("session %s: driver failed", s.session_id)
            reason = None
        if reason is None:
            return  # page closed: the close handler decides crash vs stop
        # Terminal state (logout, conflict, qr timeout): the context must go.
        async with self._lock(s.session_id):
            if s.context is ctx:
                s.wanted = False
                s.latest_dump = None  # the next start takes the stored state, if one is left
                s.watcher = None  # we are the watcher; don't cancel ourselves
                await self._close_context(s)

    async def _close_context(self, s: _Session) -> None:
        """Close the live context on purpose (no crash recovery). Lock held."""
        ctx, watcher = s.context, s.watcher
        s.watcher, s.driver = None, None
        if watcher is not None and watcher is not asyncio.current_task():
            watcher.cancel()
        if ctx is None:
            return
        s.closing.add(id(ctx))
        try:
            await asyncio.wait_for(ctx.close(), CLOSE_TIMEOUT)
        except Exception:
            log.warning("session %s: context did not close cleanly", s.session_id, exc_info=True)
        # Only once the mode is done with it (a profile's Chromium exited) is it "not live".
        if s.mode is not None:
            await s.mode.closed(s)
        with self._status_lock:
            s.context, s.page = None, None

    def _storage_written(self, s: _Session) -> None:
        """The page wrote its login storage (driver hook, loop thread): snapshot it soon.

        Shared mode only (a profile keeps its storage on disk by itself): debounced, so a
        burst of writes makes one ``storage_written`` event, and the worker then stores a
        fresh archive - a crash afterwards loses nothing the site had saved.
        """
        if s.mode is not self.mode or self.mode is self._profile or s.not_portable:
            return
        if s.storage_save is not None:
            s.storage_save.cancel()

        def due() -> None:
            s.storage_save = None
            if s.context is not None and s.status == "connected":
                self._emit(s, "storage_written", {})

        s.storage_save = asyncio.get_running_loop().call_later(STORAGE_SAVE_DEBOUNCE, due)

    def _on_page_crash(self, s: _Session, ctx: BrowserContext) -> None:
        log.warning("session %s: page crashed", s.session_id)
        if s.context is ctx:
            # Closing the context routes through _on_context_close -> recovery.
            asyncio.ensure_future(ctx.close())

    def _on_context_close(self, s: _Session, ctx: BrowserContext) -> None:
        if id(ctx) in s.closing:
            s.closing.discard(id(ctx))
            return
        if s.context is not ctx:
            return
        log.warning("session %s: browser context closed unexpectedly", s.session_id)
        watcher = s.watcher
        with self._status_lock:
            s.context, s.page, s.watcher, s.driver = None, None, None, None
        if watcher is not None:
            watcher.cancel()
        if not s.wanted or self.runtime.stopping:
            return
        if self.crash_restart_limit <= 0:
            s.wanted = False
            self._emit(s, "disconnected", {"reason": "crash"})
            return
        s.recovering = asyncio.ensure_future(self._recover(s))

    async def _recover(self, s: _Session) -> None:
        async with self._lock(s.session_id):
            while s.wanted and s.context is None:
                s.failures += 1
                if s.failures > self.crash_restart_limit:
                    s.wanted = False
                    log.error("session %s: giving up after %d failed starts", s.session_id, s.failures - 1)
                    self._emit(s, "auth_failure", {"reason": "repeated start failures"})
                    return
                # Let the dead Chromium release the profile's singleton lock first.
                await asyncio.sleep(min(0.5 * 2 ** (s.failures - 1), 5.0))
                self._emit(s, "connecting", {})
                try:
                    await self._launch(s)
                    log.info("session %s: relaunched after a crash", s.session_id)
                    return
                except Exception as exc:  # noqa: BLE001 - any launch failure counts
                    log.warning("session %s: relaunch failed: %s", s.session_id, type(exc).__name__)
                    with self._status_lock:
                        s.last_error = f"relaunch failed: {type(exc).__name__}"

    async def _stop(self, sid: str, reason: str, save: SaveCallback | None = None) -> None:
        async with self._lock(sid):
            s = self._sessions.get(sid)
            if s is None:
                return
            await self._save_before_close(s, save)
            await self._stop_locked(s, reason)

    async def _save_before_close(self, s: _Session, save: SaveCallback | None) -> None:
        """Hand a fresh archive of a connected session's live profile to ``save`` (lock held).

        Best effort: a failed snapshot or save is logged and the close goes on (the
        profile folder itself stays, and the stored archive is only older).
        """
        if save is None or s.context is None or s.status != "connected":
            return
        try:
            archive = await self._take_snapshot(s)
            await asyncio.to_thread(save, archive)
        except Exception as exc:  # noqa: BLE001 - never block a close on a snapshot
            log.warning("session %s: login state not saved before closing: %s", s.session_id, exc)

    async def _stop_locked(self, s: _Session, reason: str) -> None:
        s.wanted = False
        await self._close_context(s)
        self._emit(s, "disconnected", {"reason": reason})

    async def _restart(
        self, sid: str, blob: bytes | None, tag: str | None, save: SaveCallback | None
    ) -> None:
        s = self._get(sid)
        ticket = s.restarts_begun
        async with self._lock(sid):
            if s.restarts_begun > ticket and s.context is not None:
                log.info("session %s: restart coalesced with a newer one", sid)
                return
            s.restarts_begun += 1
            reuse = self._mode(s).reusable(s, tag)
            if blob is not None and not reuse:
                # Validate before tearing anything down: a corrupt archive keeps the
                # session as it was.
                await asyncio.to_thread(self._validate, blob)
            await self._save_before_close(s, save)
            await self._stop_locked(s, "restart")
            if not reuse:
                await asyncio.to_thread(shutil.rmtree, s.profile_dir, True)
            await self._start_locked(s, None if reuse else blob, tag)

    def _validate(self, blob: bytes) -> None:
        self.mode.validate(blob)

    def _mode(self, s: _Session) -> ProfileMode | SharedMode:
        """The mode the session's next context opens in: profile once its login proved not portable."""
        return self._profile if s.not_portable else self.mode

    def _not_portable(self, s: _Session, reason: str) -> None:
        """Record why the login cannot be carried as data; the session's next start is in profile mode.

        The live shared context cannot become a profile, so it goes on running (flagged)
        until its next start on this worker, which takes the profile route.
        """
        first = s.not_portable is None
        s.not_portable = reason
        with self._status_lock:
            s.last_error = reason
        if first:
            log.warning("session %s: login state not portable; falling back to profile mode", s.session_id)
            self._emit(s, "not_portable", {"reason": reason})

    async def _remove_local(self, sid: str) -> None:
        async with self._lock(sid):
            s = self._sessions.get(sid)
            if s is not None and s.context is not None:
                await self._stop_locked(s, "removed")
            await asyncio.to_thread(shutil.rmtree, self.sessions_dir / sid, True)
            with self._status_lock:
                self._sessions.pop(sid, None)

    async def _snapshot(self, sid: str) -> bytes:
        s = self._sessions.get(sid)
        if s is None:
            raise LoginStateError(f"session {sid} is not known here")
        if s.mode is self._profile:
            await self._wait_storage_quiet(sid)
        async with self._lock(sid):
            return await self._take_snapshot(s, quiet=True)

    async def _take_snapshot(self, s: _Session, quiet: bool = False) -> bytes:
        """A login-state archive of the live session in this mode (lock held).

        In shared mode a login that cannot be carried as data (``NotPortable``) sets a
        clear ``last_error`` and moves the session to profile mode on this worker.
        """
        mode = s.mode or self._mode(s)
        if not quiet and mode is self._profile:
            await self._wait_storage_quiet(s.session_id)
        try:
            return await mode.snapshot(s)
        except NotPortable as exc:
            self._not_portable(s, str(exc))
            raise LoginStateError(str(exc)) from None

    async def _wait_storage_quiet(self, sid: str) -> None:
        """Wait until the page's storage has been quiet for Chromium's commit delay.

        A live profile's latest localStorage writes reach the disk only after that
        delay; bounded, so a page that writes constantly still gets a best-effort copy.
        """
        give_up = time.monotonic() + 4 * LOCAL_STORAGE_COMMIT_DELAY
        while time.monotonic() < give_up:
            s = self._sessions.get(sid)
            driver = s.driver if s is not None else None
            if driver is None:
                break
            quiet = time.monotonic() - driver.storage_changed_at
            if quiet >= LOCAL_STORAGE_COMMIT_DELAY:
                break
            await asyncio.sleep(min(LOCAL_STORAGE_COMMIT_DELAY - quiet + 0.05, 1.0))

    async def _close_all(self) -> None:
        for sid in list(self._sessions):
            async with self._lock(sid):
                s = self._sessions[sid]
                if s.context is not None or s.wanted:
                    # "shutdown", not "stopped": the session is still wanted, and its
                    # owner (or another live worker) brings it back.
                    await self._stop_locked(s, "shutdown")
