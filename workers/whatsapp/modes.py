"""What differs between the two browser modes of the session manager.

* :class:`ProfileMode` (``BROWSER_MODE=profile``): one Chromium per session on a persistent
  profile folder; the login state is the folder's storage, archived (with the recorded key
  material) by ``shared.login_state.pack``.
* :class:`SharedMode` (``BROWSER_MODE=shared``): a non-persistent context per session in a
  shared Chromium; the login state is carried as data (:mod:`workers.whatsapp.portable`)
  and restored through a bootstrap page.

Each mode answers the same five questions: how to open a context, how to prepare a start
from a stored archive, how to load the site into a fresh context, how to take a snapshot,
and whether the live state on this worker can be reused. Both read either archive kind,
so a session moves between workers of different modes with no scan.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playwright.async_api import BrowserContext, Page

from shared import login_state
from shared.login_state import LoginStateError
from workers.whatsapp import page as wa
from workers.whatsapp import portable, profile_keys
from workers.whatsapp.portable import KeyRecorder, NotPortable

if TYPE_CHECKING:
    from workers.whatsapp.sessions import SessionManager, _Session

log = logging.getLogger(__name__)

# Written into a profile folder: the tag (owner epoch) it was last launched under.
PROFILE_TAG_FILE = ".zaphub-profile-tag"
# Under the sessions folder: profile archives being converted for shared mode.
CONVERSIONS_DIR = ".converting"


class _Mode:
    """Shared by both modes: the archive kinds, and reading key records."""

    name = ""

    def __init__(self, manager: SessionManager) -> None:
        self.m = manager

    def secret(self) -> list[str]:
        """The login-state keys (raises when none is configured)."""
        if self.m._secret is None:
            raise LoginStateError("no login state secret configured (SECRET_KEY)")
        return self.m._secret

    def kind_of(self, blob: bytes) -> str:
        """``"profile"`` or ``"portable"`` (raises ``LoginStateError`` for a corrupt archive)."""
        return login_state.kind_of(blob)

    async def unpack_profile(self, s: _Session, blob: bytes, within: Path | None = None) -> Path:
        """Unpack a profile archive into a new temp folder; the recorder is seeded from its keys."""
        tmp = (within or self.m.sessions_dir) / f".restore-{s.session_id}-{uuid.uuid4().hex[:8]}"
        try:
            _, keys = await asyncio.to_thread(login_state.unpack_with_keys, blob, tmp, self.secret())
            s.recorder = _recorder(keys)
        except LoginStateError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return tmp

    def unpack_portable(self, s: _Session, blob: bytes) -> dict[str, Any]:
        """The login state of a portable archive; the recorder is seeded from its keys."""
        state = login_state.unpack_portable(blob, self.secret())
        s.recorder = _recorder(state.get("keys") or [])
        return state

    def validate(self, blob: bytes) -> None:
        """Raise ``LoginStateError`` unless ``blob`` is a sound archive of either kind."""
        login_state.verify(blob, self.secret())

    async def persistent(self, folder: Path) -> BrowserContext:
        """A Chromium on the profile ``folder``, with no page yet.

        Chromium opens a first page by itself; the key capture must be installed before
        any page exists, so that one goes (the context stays open with no page).
        """
        ctx = await self.m.runtime.launch_profile(folder)
        try:
            for page in ctx.pages:
                await page.close()
        except BaseException:
            await ctx.close()
            raise
        return ctx

    async def open_page(self, s: _Session, ctx: BrowserContext, state: dict[str, Any] | None) -> Page:
        """Load the site in ``ctx``: through the portable bootstrap when ``state`` is given."""
        if state is not None:
            return await portable.restore(ctx, state, self.m.wa_url)
        page = ctx.pages[0] if ctx.pages else await ctx.new_page()
        await page.goto(self.m.wa_url, wait_until="domcontentloaded", timeout=wa.NAVIGATION_TIMEOUT * 1000)
        return page


class ProfileMode(_Mode):
    """One persistent Chromium profile per session."""

    name = "profile"

    async def open(self, s: _Session) -> BrowserContext:
        """Launch the session's own Chromium on its profile folder."""
        return await self.persistent(s.profile_dir)

    async def prepare(self, s: _Session, blob: bytes) -> None:
        """Rebuild the profile folder from ``blob`` (a bad archive never destroys the folder).

        A portable archive (the session last ran in shared mode) is restored into the
        fresh profile at launch; from then on the profile persists it.
        """
        if self.kind_of(blob) == "portable":
            s.pending_state = self.unpack_portable(s, blob)
            await asyncio.to_thread(shutil.rmtree, s.profile_dir, True)
            s.profile_dir.mkdir(parents=True, exist_ok=True)
            log.info("session %s: portable login state to restore into a fresh profile", s.session_id)
            return
        await self.adopt(s, await self.unpack_profile(s, blob))

    async def adopt(self, s: _Session, folder: Path) -> None:
        """Make the unpacked ``folder`` the session's profile folder."""
        await asyncio.to_thread(shutil.rmtree, s.profile_dir, True)
        os.replace(folder, s.profile_dir)
        log.info("session %s: login state restored into a fresh profile", s.session_id)

    async def load(self, s: _Session, ctx: BrowserContext) -> Page:
        """Open the site; a pending portable state is restored once, then the profile keeps it."""
        page = await self.open_page(s, ctx, s.pending_state)
        s.pending_state = None  # restored once: the profile keeps it from now on
        return page

    async def snapshot(self, s: _Session) -> bytes:
        """The profile folder's login storage, with the recorded key material."""
        return await asyncio.to_thread(login_state.pack, s.profile_dir, self.secret(), s.recorder.records())

    def reusable(self, s: _Session, tag: str | None) -> bool:
        """Whether the profile folder is intact and was last launched under ``tag``."""
        if tag is None or not (s.profile_dir / "Default").is_dir():
            return False
        try:
            return (s.profile_dir / PROFILE_TAG_FILE).read_text() == tag
        except OSError:
            return False

    async def remember_tag(self, s: _Session, tag: str) -> None:
        """Write ``tag`` into the profile folder, for :meth:`reusable` to compare later."""

        def write() -> None:
            s.profile_dir.mkdir(parents=True, exist_ok=True)
            (s.profile_dir / PROFILE_TAG_FILE).write_text(tag)

        await asyncio.to_thread(write)

    async def closed(self, s: _Session) -> None:
        """Wait for the Chromium process to exit, so a following rmtree/restart does not race it."""
        for _ in range(50):
            if self.m.browser_pid(s.session_id) is None:
                break
            await asyncio.sleep(0.1)

    async def reuse(self, s: _Session, blob: bytes | None) -> None:
        """The live profile folder is reused: seed the recorder from the stored archive's keys.

        A profile keeps its key in IndexedDB but never shows it again; the archive (stored
        by this or another worker) is where its recorded material lives across processes.
        """
        if s.recorder.records() or blob is None or self.kind_of(blob) != "profile":
            return
        try:
            s.recorder = _recorder(await asyncio.to_thread(login_state.read_keys, blob, self.secret()))
        except LoginStateError as exc:  # the profile itself is fine: only portability suffers
            log.warning("session %s: stored key records unreadable: %s", s.session_id, exc)


class SharedMode(_Mode):
    """A non-persistent context per session in a few shared Chromiums."""

    name = "shared"

    async def open(self, s: _Session) -> BrowserContext:
        """A fresh context in a shared browser with room."""
        return await self.m.runtime.new_context()

    async def prepare(self, s: _Session, blob: bytes) -> None:
        """Turn ``blob`` into the portable state the next launch restores.

        A profile archive (the session last ran in profile mode) is opened once as a
        persistent profile with its recorded keys, dumped, and closed.
        """
        if self.kind_of(blob) == "portable":
            s.latest_dump = self.unpack_portable(s, blob)
            return
        # Not directly in the sessions folder: a Chromium runs on it for a moment, and a
        # cleanup takes a browser on a folder there that is no session's for a leftover.
        tmp = await self.unpack_profile(s, blob, within=self.m.sessions_dir / CONVERSIONS_DIR)
        try:
            if not s.recorder.records():
                await self._recover_keys_from_disk(s, tmp)
            s.latest_dump = await self._dump_profile(s, tmp)
            log.info("session %s: profile login state converted for shared mode", s.session_id)
        except NotPortable as exc:
            # Linked before keys were recorded, or a key that was never imported: this
            # session stays in profile mode on this worker, from the same archive.
            self.m._not_portable(s, str(exc))
            await self.m._profile.adopt(s, tmp)
        finally:
            await asyncio.to_thread(shutil.rmtree, tmp, True)

    async def _recover_keys_from_disk(self, s: _Session, folder: Path) -> None:
        """Seed the recorder of a session linked before keys were recorded from its profile's disk.

        Chromium keeps a non-extractable CryptoKey's raw bytes in its serialised IndexedDB
        value (:mod:`workers.whatsapp.profile_keys`); the folder is closed (just unpacked),
        so it can be read. Unreadable storage leaves the recorder empty: the dump then
        refuses and the session stays in profile mode.
        """
        try:
            records = await asyncio.to_thread(profile_keys.recover_keys, folder)
        except profile_keys.ProfileKeysUnreadable as exc:
            log.warning("session %s: keys of the old profile unreadable: %s", s.session_id, exc)
            return
        if records:
            s.recorder = _recorder(records)
            log.info("session %s: %d stored key(s) read from the profile on disk", s.session_id, len(records))

    async def _dump_profile(self, s: _Session, folder: Path) -> dict[str, Any]:
        ctx = await self.persistent(folder)
        try:
            await portable.install_capture(ctx, s.recorder)
            page = await self.open_page(s, ctx, None)
            await _wait_main_screen(page)
            return await portable.dump(page, s.recorder)
        finally:
            await asyncio.wait_for(ctx.close(), 15)

    async def load(self, s: _Session, ctx: BrowserContext) -> Page:
        """Open the site, restoring the latest dump (the last snapshot, kept in memory) if any."""
        return await self.open_page(s, ctx, s.latest_dump)

    async def snapshot(self, s: _Session) -> bytes:
        """A dump of the live page, packed as a portable archive (raises ``NotPortable``)."""
        page = s.page
        if page is None:
            raise LoginStateError("session has no live page")
        state = await portable.dump(page, s.recorder)
        s.latest_dump = state  # a crash before the database write still loses nothing
        return await asyncio.to_thread(login_state.pack_portable, state, self.secret())

    def reusable(self, s: _Session, tag: str | None) -> bool:
        """A shared context keeps nothing on disk; only an in-memory dump taken under ``tag`` counts."""
        return tag is not None and s.latest_dump is not None and s.tag == tag

    async def reuse(self, s: _Session, blob: bytes | None) -> None:
        """The latest dump in memory is used as it is."""

    async def remember_tag(self, s: _Session, tag: str) -> None:
        """Nothing on disk: the session's ``tag`` (set by the manager) is what :meth:`reusable` compares."""

    async def closed(self, s: _Session) -> None:
        """Nothing to wait for: the shared browser goes on serving the others."""


def _recorder(records: list[dict]) -> KeyRecorder:
    """A recorder seeded from stored key records (``LoginStateError`` if they are malformed)."""
    try:
        return KeyRecorder.from_records(records)
    except NotPortable as exc:
        raise LoginStateError(f"stored key records are malformed: {exc}") from None


async def _wait_main_screen(page: Page, timeout: float = wa.NAVIGATION_TIMEOUT) -> None:
    """Wait until the site shows its main (linked) screen; ``LoginStateError`` otherwise."""
    give_up = time.monotonic() + timeout
    screen = wa.LOADING
    while time.monotonic() < give_up:
        screen = wa.parse_probe(await page.evaluate(wa.PROBE_JS)).screen
        if screen == wa.MAIN:
            return
        if screen in (wa.QR, wa.QR_IDLE, wa.PAIR_CODE):
            break  # the profile is not linked: there is nothing to carry over
        await asyncio.sleep(wa.POLL_INTERVAL)
    raise LoginStateError(f"stored profile did not come back linked (screen {screen})")
