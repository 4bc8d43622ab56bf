"""Portable login state: WhatsApp Web's storage carried as data between browser contexts.

WhatsApp Web keeps a WebCrypto key imported with ``extractable=false`` in IndexedDB
(``wawc_db_enc``) and encrypts its localStorage secrets with keys derived from it.
Playwright's ``storage_state(indexed_db=True)`` turns that key into ``{}``, so a plain
storage dump restores a dead session. This module carries the login anyway:

* :func:`install_capture` adds an init script to the session's context that wraps
  ``crypto.subtle.importKey``; when the site imports raw material non-extractable, the
  bytes go to the worker through a binding into the session's :class:`KeyRecorder`
  (never into a page global).
* :func:`dump` reads every IndexedDB database of the origin and localStorage, and
  replaces each stored CryptoKey by a reference to its recorded material (matched by a
  fingerprint only the same secret produces). A key with no recorded material makes it
  raise :class:`NotPortable`.
* :func:`restore` rebuilds all of it on a routed bootstrap page of the site's origin,
  re-importing each key with ``extractable=false``, then loads the site.

The page-side JavaScript lives in :mod:`workers.whatsapp.portable_js`. The dump holds
raw key material: it is a password, only ever stored encrypted
(``shared.login_state.pack_portable``) and never logged.
"""

from __future__ import annotations

from typing import Any

from playwright.async_api import BrowserContext, Page

STATE_VERSION = 1


class NotPortable(Exception):
    """The login cannot be carried as data; ``str(exc)`` is a clear ``last_error`` text."""


class KeyRecorder:
    """Raw key material the site imported, recorded for one session in the worker (not the page)."""

    def record(self, raw: dict) -> None:
        """Keep one import sent by the init script (duplicates and malformed calls are dropped)."""
        raise NotImplementedError

    def records(self) -> list[dict]:
        """JSON-able records: ``[{"format", "keyData" (base64), "algorithm", "usages"}]``."""
        raise NotImplementedError

    @classmethod
    def from_records(cls, records: list[dict]) -> KeyRecorder:
        """A recorder holding ``records`` (from a stored login state); validates them."""
        raise NotImplementedError


async def install_capture(ctx: BrowserContext, recorder: KeyRecorder) -> None:
    """Expose the recording binding and add the importKey wrapper to ``ctx``.

    Must be called before any page of ``ctx`` exists (init scripts and bindings only
    reach pages created afterwards).
    """
    raise NotImplementedError


async def dump(page: Page, recorder: KeyRecorder) -> dict[str, Any]:
    """The portable login state of ``page``'s origin, JSON-able.

    ``{"version": 1, "origin", "indexedDB": [...], "localStorage": {...}, "keys": [...]}``.
    Raises :class:`NotPortable` when a stored CryptoKey has no recorded material or an
    IndexedDB value cannot be carried (Blob, File...).
    """
    raise NotImplementedError


async def restore(ctx: BrowserContext, state: dict[str, Any], url: str, timeout: float = 45.0) -> Page:
    """Rebuild ``state`` in the fresh context ``ctx``, then open ``url``; returns the page.

    The caller installs the capture on ``ctx`` first (so the restored session's keys are
    recorded again for its next dump). Raises :class:`NotPortable` on a malformed state.
    """
    raise NotImplementedError
