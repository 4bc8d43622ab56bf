"""Watches one WhatsApp Web page and turns what it shows into events.

The driver looks at the page with a single ``page.evaluate`` of :data:`page.PROBE_JS`
and runs a small state machine over the :class:`page.Screen` values. While the page
loads, shows a QR or waits for a pairing code (short phases) it looks every
``poll_interval`` (0.4 s), sooner when the page reports a change. Once the session is
ready and its message events are subscribed it stops polling: the page's watcher
(:data:`page.WATCH_JS`, an init script) reports each change of the probe's result
through :meth:`PageDriver.page_changed`, which wakes the driver to look again; a
safety-net look runs every ``safety_probe`` seconds in case a report was lost. Storage
writes the watcher reports go to ``on_storage_write`` (and ``storage_changed_at``).
The state machine:

* each new QR ref -> ``("qr", {"qr": text, "rotation": n})``; once more than
  ``qr_max_rotations`` distinct refs were shown without a scan, or the "Click to
  reload QR code" idle state appears -> ``("disconnected", {"reason": "qr timeout"})``;
* main screen first seen -> ``("authenticated", {})`` then
  ``("ready", {"phone_number", "push_name"})`` once the identity is in localStorage;
* linked -> QR screen again -> the phone logged this device out (the page wiped its
  storage) -> ``("disconnected", {"reason": "logout"})``;
* conflict modal -> ``("disconnected", {"reason": "conflict"})``. We deliberately do
  NOT click "Use here": taking the session back automatically would fight whoever
  opened it elsewhere (two workers owning one session would ping-pong forever, and
  a human user would be kicked out silently). The session stops; an operator or the
  API decides to restart it;
* "Enter code on phone" screen (linking by phone number, :data:`page.PAIR_CODE`) -> no
  event: the session keeps waiting to be linked; each code the page reports (through
  the ``onCodeReceivedEvent`` binding, counted by :meth:`PageDriver.code_received`) is a
  ``pairing_code`` event of the session manager; more than ``qr_max_rotations`` codes
  without a link -> ``("disconnected", {"reason": "pairing code timeout"})``;
* offline banner -> logged only, no status change (the site reconnects by itself);
* once ready, and again in every new document (reload), the message events are
  subscribed (:func:`messaging.install`); a missing WhatsApp Web module ->
  ``("auth_failure", {"reason": "WhatsApp Web changed: module <Name> missing"})``.

Terminal events end :meth:`PageDriver.run`, which returns the reason; the session
manager then closes the browser context. The driver never logs QR text.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from workers.whatsapp import messaging
from workers.whatsapp import page as wa

log = logging.getLogger(__name__)

EmitFn = Callable[[str, dict[str, Any]], None]


class PageDriver:
    """State machine over one page; emits events through ``emit(name, payload)``."""

    def __init__(
        self,
        session_id: str,
        page: Page,
        emit: EmitFn,
        qr_max_rotations: int = 5,
        poll_interval: float = wa.POLL_INTERVAL,
        hook_messages: bool = True,
        safety_probe: float = wa.WATCH_SAFETY_PROBE,
        on_storage_write: Callable[[], None] | None = None,
    ) -> None:
        self.session_id = session_id
        self.page = page
        self.emit = emit
        self.qr_max_rotations = qr_max_rotations
        self.poll_interval = poll_interval
        self.hook_messages = hook_messages
        self.linked = False
        self.ready_sent = False
        self._refs: list[str] = []
        self.codes = 0  # pairing codes the page reported (linking by phone number)
        self._offline = False
        self._authenticated_at = 0.0
        self._storage_sig: str | None = None
        # Monotonic time of the last storage write seen (page load counts as one).
        self.storage_changed_at = time.monotonic()
        self.safety_probe = safety_probe
        self.on_storage_write = on_storage_write
        self._wake = asyncio.Event()  # set by the page's watcher (and a closing page)
        self._seen: wa.Screen | None = None  # the last screen the state machine read

    async def probe(self) -> wa.Screen | None:
        """One look at the page; None while it is navigating (context destroyed)."""
        try:
            return wa.parse_probe(await self.page.evaluate(wa.PROBE_JS))
        except PlaywrightError as exc:
            if self.page.is_closed():
                raise
            log.debug("session %s: probe failed (%s), retrying", self.session_id, exc.message)
            return None

    async def run(self) -> str | None:
        """Watch until a terminal state; returns its disconnect reason.

        Returns None if the page closed underneath us (the manager decides whether
        that is a crash or a requested stop).
        """
        # A closing or crashing page must not wait out the safety probe.
        self.page.on("close", lambda _page: self._wake.set())
        self.page.on("crash", lambda _page: self._wake.set())
        while True:
            if self.page.is_closed():
                return None
            self._wake.clear()  # a report from now on wakes the next pause
            try:
                screen = await self.probe()
            except PlaywrightError:
                return None
            if screen is not None:
                self._seen = screen
                reason = self.step(screen)
                if reason is not None:
                    self.emit("disconnected", {"reason": reason})
                    return reason
                failure = await self._hook(screen)
                if failure is not None:
                    self.emit("auth_failure", {"reason": failure})
                    return failure
            await self._pause(screen)

    def watching(self, s: wa.Screen | None) -> bool:
        """Whether ``s`` is a ready page left to report its own changes (no polling)."""
        return (
            s is not None and s.screen == wa.MAIN and self.ready_sent and (s.hooked or not self.hook_messages)
        )

    async def _pause(self, s: wa.Screen | None) -> None:
        """Until the next look: the page's next report, or at most ``poll_interval`` / ``safety_probe``.

        While loading or linking a report also cuts the poll short, so a QR that rotates
        faster than the poll is still seen; once connected only reports and the safety probe wake it.
        """
        watching = self.watching(s)
        try:
            await asyncio.wait_for(self._wake.wait(), self.safety_probe if watching else self.poll_interval)
        except TimeoutError:
            if watching:
                log.debug("session %s: safety probe", self.session_id)

    def page_changed(self, raw: Any) -> None:
        """A report of the page's watcher (loop thread): note a storage write, wake on a new screen.

        Never blocks: it only records and sets the wake-up event; the driver's loop looks
        at the page itself and ``step`` interprets it.
        """
        screen, wrote = wa.parse_watch(raw)
        if wrote:
            self.storage_changed_at = time.monotonic()
            if self.on_storage_write is not None:
                try:
                    self.on_storage_write()
                except Exception:  # a listener's bug must not stop the page's reports
                    log.exception("session %s: on_storage_write failed", self.session_id)
        # A write to IndexedDB alone leaves the screen as it was: nothing to look at.
        if screen is None or screen != self._seen:
            self._wake.set()

    async def _hook(self, s: wa.Screen) -> str | None:
        """Subscribe the message events of a ready page; a failure reason if a module is gone."""
        if not self.hook_messages or not self.ready_sent or s.screen != wa.MAIN or s.hooked:
            return None
        try:
            installed, missing = await messaging.install(self.page)
        except PlaywrightError as exc:
            # Navigating or closing: the next probe tells which (run() ends on a closed page).
            log.debug("session %s: hooking messages failed (%s), retrying", self.session_id, exc.message)
            return None
        if missing is None:
            if installed:
                log.info("session %s: message events subscribed", self.session_id)
            return None
        log.error("session %s: WhatsApp Web module %s missing", self.session_id, missing)
        return messaging.module_missing_reason(missing)

    def step(self, s: wa.Screen) -> str | None:
        """Advance the state machine by one observation; returns a terminal reason."""
        if s.storage_sig is not None and s.storage_sig != self._storage_sig:
            self._storage_sig = s.storage_sig
            self.storage_changed_at = time.monotonic()
        if s.offline != self._offline:
            self._offline = s.offline
            log.warning(
                "session %s: page reports %s",
                self.session_id,
                "offline (phone/computer not connected)" if s.offline else "back online",
            )
        if s.screen == wa.CONFLICT:
            log.info("session %s: conflict (opened elsewhere); not taking it back", self.session_id)
            return "conflict"
        if s.screen == wa.MAIN:
            self._on_main(s)
            return None
        if s.screen in (wa.QR, wa.QR_IDLE, wa.PAIR_CODE) and self.linked:
            log.info("session %s: logged out from the phone", self.session_id)
            return "logout"
        if s.screen == wa.PAIR_CODE:
            if self.codes > self.qr_max_rotations:
                log.info("session %s: %d pairing codes unused", self.session_id, self.codes - 1)
                return "pairing code timeout"
            return None
        if s.screen == wa.QR_IDLE:
            log.info("session %s: QR went idle without a scan", self.session_id)
            return "qr timeout"
        if s.screen == wa.QR and s.ref and s.ref not in self._refs:
            self._refs.append(s.ref)
            if len(self._refs) > self.qr_max_rotations:
                log.info("session %s: %d QR codes unscanned", self.session_id, len(self._refs) - 1)
                return "qr timeout"
            self.emit("qr", {"qr": s.ref, "rotation": len(self._refs)})
        return None

    def code_received(self) -> None:
        """The page issued one more pairing code (the first or a renewal)."""
        self.codes += 1

    def _on_main(self, s: wa.Screen) -> None:
        if not self.linked:
            self.linked = True
            self._authenticated_at = time.monotonic()
            log.info("session %s: authenticated", self.session_id)
            self.emit("authenticated", {})
        if self.ready_sent:
            return
        waited = time.monotonic() - self._authenticated_at
        if s.phone_number or waited >= wa.IDENTITY_GRACE:
            self.ready_sent = True
            log.info("session %s: ready", self.session_id)
            self.emit("ready", {"phone_number": s.phone_number, "push_name": s.push_name})
