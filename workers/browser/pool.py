"""A pool of shared Chromium browsers, each holding a bounded group of sessions.

In ``BROWSER_MODE=shared`` every session gets its own non-persistent ``BrowserContext``
(its own storage, cookies and bindings) inside one of a few shared browsers. A browser
holds at most ``per_browser`` contexts, so a browser crash touches a bounded group; a
new one is launched when every browser is full, and a browser whose last context closed
is closed too. Loop thread only, like everything Playwright.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from playwright.async_api import Browser, BrowserContext

log = logging.getLogger(__name__)


@dataclass
class _Slot:
    """One shared browser and the contexts it holds now."""

    browser: Browser
    contexts: set[BrowserContext] = field(default_factory=set)
    pending: int = 0  # contexts being made in it: it must not be closed as empty meanwhile


class BrowserPool:
    """Places contexts in shared browsers with room, launching and closing browsers as needed."""

    def __init__(self, launch: Callable[[], Awaitable[Browser]], per_browser: int) -> None:
        if per_browser < 1:
            raise ValueError("per_browser must be at least 1")
        self._launch = launch
        self.per_browser = per_browser
        self._slots: list[_Slot] = []
        self._lock: asyncio.Lock | None = None  # made on the loop thread, at first use

    async def new_context(self) -> BrowserContext:
        """A fresh non-persistent context in a browser with room (launched if none has)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        # One placement at a time: two sessions starting together must not both take the
        # last place of a browser, nor both launch a new one.
        async with self._lock:
            slot = next((x for x in self._slots if len(x.contexts) < self.per_browser), None)
            if slot is None:
                slot = _Slot(await self._launch())
                self._slots.append(slot)
                slot.browser.on("disconnected", lambda _b: self._on_disconnected(slot))
                log.info("shared browser launched (%d in the pool)", len(self._slots))
            slot.pending += 1
            try:
                ctx = await slot.browser.new_context()
            finally:
                slot.pending -= 1
            slot.contexts.add(ctx)
        ctx.on("close", lambda _c: self._on_context_close(slot, ctx))
        return ctx

    def browser_of(self, ctx: BrowserContext) -> Browser | None:
        """The shared browser holding ``ctx``, or None."""
        return next((x.browser for x in self._slots if ctx in x.contexts), None)

    def group_sizes(self) -> list[int]:
        """How many contexts each shared browser holds now, in launch order."""
        return [len(x.contexts) for x in self._slots]

    def context_count(self) -> int:
        """Contexts open in the pool's browsers."""
        return sum(len(x.contexts) for x in self._slots)

    async def close(self) -> None:
        """Close every shared browser (its contexts go with it)."""
        slots, self._slots = self._slots, []
        for slot in slots:
            try:
                await asyncio.wait_for(slot.browser.close(), 10)
            except Exception:  # noqa: BLE001 - a dead browser is as closed as it gets
                log.warning("a shared browser did not close cleanly", exc_info=True)

    def _on_context_close(self, slot: _Slot, ctx: BrowserContext) -> None:
        slot.contexts.discard(ctx)
        if slot.contexts or slot.pending or slot not in self._slots:
            return
        # An empty browser costs about 100 MiB for nothing: close it. The next session
        # that needs room launches a fresh one.
        self._slots.remove(slot)
        if slot.browser.is_connected():
            log.info("shared browser empty: closing it (%d left in the pool)", len(self._slots))
            asyncio.ensure_future(_close_quietly(slot.browser))

    def _on_disconnected(self, slot: _Slot) -> None:
        # Its contexts each get "close" too: their sessions recover one by one, in new browsers.
        if slot in self._slots:
            self._slots.remove(slot)
            log.warning("shared browser gone with %d sessions", len(slot.contexts))


async def _close_quietly(browser: Browser) -> None:
    try:
        await browser.close()
    except Exception:  # noqa: BLE001 - closing an already dying browser
        log.debug("shared browser close failed", exc_info=True)
