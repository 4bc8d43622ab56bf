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

import asyncio
import base64
import binascii
import json
import logging
import secrets as _secrets
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import BrowserContext, Page, Route

from workers.whatsapp.portable_js import CAPTURE_JS, DUMP_JS, RESTORE_JS

log = logging.getLogger(__name__)

STATE_VERSION = 1
# Path of the bootstrap document served (by page.route) on the site's origin during a restore.
BOOTSTRAP_PATH = "/__zaphub_restore__"
_BOOTSTRAP_HTML = "<!doctype html><meta charset=utf-8><title>restoring</title>"
_FORMATS = frozenset({"raw", "pkcs8", "spki", "jwk"})
# A page can call the binding itself; cap what it can make the worker hold.
MAX_RECORDS = 64
_MAX_RECORD_CHARS = 16384


class NotPortable(Exception):
    """The login cannot be carried as data; ``str(exc)`` is a clear ``last_error`` text."""


class InvalidState(NotPortable):
    """A portable state (or key record) is malformed; ``str(exc)`` says what is wrong."""


def _check_record(raw: Any) -> dict:
    """One key record, validated and normalised (raises :class:`InvalidState`)."""
    if not isinstance(raw, dict):
        raise InvalidState("key record is not an object")
    fmt = raw.get("format")
    if fmt not in _FORMATS:
        raise InvalidState(f"key record has an unsupported format {fmt!r}")
    data = raw.get("keyData")
    if fmt == "jwk":
        if not isinstance(data, dict):
            raise InvalidState("jwk key record has no key object")
    else:
        if not isinstance(data, str) or not data:
            raise InvalidState("key record has no base64 keyData")
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidState("key record keyData is not base64") from None
    algorithm = raw.get("algorithm")
    if not (isinstance(algorithm, str) and algorithm) and not (
        isinstance(algorithm, dict) and isinstance(algorithm.get("name"), str)
    ):
        raise InvalidState("key record has no algorithm name")
    usages = raw.get("usages")
    if not isinstance(usages, list) or not all(isinstance(u, str) for u in usages):
        raise InvalidState("key record usages are not a list of strings")
    rec = {"format": fmt, "keyData": data, "algorithm": algorithm, "usages": list(usages)}
    if raw.get("extractable") is True:
        rec["extractable"] = True
    if len(json.dumps(rec)) > _MAX_RECORD_CHARS:
        raise InvalidState("key record is too large")
    return rec


def _identity(rec: dict) -> str:
    return json.dumps(rec, sort_keys=True, separators=(",", ":"))


class KeyRecorder:
    """Raw key material the site imported, recorded for one session in the worker (not the page).

    The material is a password: it is never logged and only leaves the worker inside
    an encrypted login-state archive.
    """

    def __init__(self) -> None:
        self._records: list[dict] = []
        self._seen: set[str] = set()

    def record(self, raw: dict) -> None:
        """Keep one import sent by the init script.

        Duplicates are dropped: the same material comes back through the wrapper when a
        dump fingerprints it and when a restore re-imports it. Malformed calls (the
        binding is reachable by page scripts) are ignored, and at most ``MAX_RECORDS``
        are kept.
        """
        try:
            rec = _check_record(raw)
        except InvalidState as exc:
            log.debug("portable: ignored a key record: %s", exc)
            return
        ident = _identity(rec)
        if ident in self._seen or len(self._records) >= MAX_RECORDS:
            return
        self._seen.add(ident)
        self._records.append(rec)

    def records(self) -> list[dict]:
        """JSON-able records: ``[{"format", "keyData" (base64), "algorithm", "usages"}]``, oldest first."""
        return [dict(r) for r in self._records]

    def __len__(self) -> int:
        return len(self._records)

    @classmethod
    def from_records(cls, records: list[dict]) -> KeyRecorder:
        """A recorder holding ``records`` (from a stored login state); raises :class:`InvalidState`."""
        if not isinstance(records, list):
            raise InvalidState("key records are not a list")
        recorder = cls()
        for raw in records:
            rec = _check_record(raw)
            ident = _identity(rec)
            if ident not in recorder._seen:
                recorder._seen.add(ident)
                recorder._records.append(rec)
        return recorder


async def install_capture(ctx: BrowserContext, recorder: KeyRecorder) -> None:
    """Expose the recording binding and add the importKey wrapper to ``ctx``.

    Must be called before any page of ``ctx`` has loaded a document (the init script
    runs on documents loaded afterwards): on a fresh ``new_context()`` before the first
    page, on a persistent context while its first page is still ``about:blank``. The
    binding name is random per context; the binding only ever feeds ``recorder``, so
    two contexts of one browser never see each other's keys.
    """
    if any(p.url != "about:blank" for p in ctx.pages):
        raise RuntimeError("install_capture must run before any page of the context loads a document")
    name = "__zh" + _secrets.token_hex(8)

    def _on_import(_source: dict, payload: Any) -> None:
        recorder.record(payload)

    await ctx.expose_binding(name, _on_import)
    await ctx.add_init_script(script=CAPTURE_JS % {"binding": json.dumps(name)})


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise InvalidState(f"not an absolute URL: {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


async def dump(page: Page, recorder: KeyRecorder) -> dict[str, Any]:
    """The portable login state of ``page``'s origin, JSON-able.

    ``{"version": 1, "origin", "indexedDB": [...], "localStorage": {...}, "keys": [...]}``:
    ``indexedDB`` lists each database ``{name, version, stores: [{name, keyPath,
    autoIncrement, indexes, records: [[key, value]...]}]}`` in a tagged JSON encoding
    (``{"$zh": "date"|"buffer"|"view"|"map"|"set"|"key"|...}``); a CryptoKey becomes
    ``{"$zh": "key", "i": n}``, an index into ``keys``, which holds only the records
    actually referenced (an extractable stored key is exported instead). Raises
    :class:`NotPortable` when a stored CryptoKey has no recorded material or an
    IndexedDB value cannot be carried (Blob, File, cycles...).
    """
    result = await page.evaluate(DUMP_JS, recorder.records())
    if not result.get("ok"):
        raise NotPortable(result.get("error") or "the login state could not be read")
    if result["origin"] == "null":  # about:blank, a crashed or error page: nothing of the site
        raise NotPortable(f"the page is not on the site ({page.url}): nothing to dump")
    state = {
        "version": STATE_VERSION,
        "origin": result["origin"],
        "indexedDB": result["indexedDB"],
        "localStorage": result["localStorage"],
        "keys": result["keys"],
    }
    validate(state)
    return state


def validate(state: Any) -> dict[str, Any]:
    """Check the shape of a portable state; returns it, raises :class:`InvalidState` with the reason."""
    if not isinstance(state, dict):
        raise InvalidState("portable state is not an object")
    if state.get("version") != STATE_VERSION:
        raise InvalidState(f"portable state version {state.get('version')!r} is not supported")
    origin = state.get("origin")
    if not isinstance(origin, str) or origin_of(origin) != origin:
        raise InvalidState("portable state has no valid origin")
    keys = state.get("keys")
    if not isinstance(keys, list):
        raise InvalidState("portable state keys are not a list")
    for rec in keys:
        _check_record(rec)
    ls = state.get("localStorage")
    if not isinstance(ls, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in ls.items()):
        raise InvalidState("portable state localStorage is not a string map")
    dbs = state.get("indexedDB")
    if not isinstance(dbs, list):
        raise InvalidState("portable state indexedDB is not a list")
    names: set[str] = set()
    for db in dbs:
        _check_db(db, names)
    return state


def _check_db(db: Any, names: set[str]) -> None:
    if not isinstance(db, dict) or not isinstance(db.get("name"), str):
        raise InvalidState("portable state has a database with no name")
    name = db["name"]
    if name in names:
        raise InvalidState(f"portable state lists database {name!r} twice")
    names.add(name)
    version = db.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidState(f"database {name!r} has no valid version")
    stores = db.get("stores")
    if not isinstance(stores, list):
        raise InvalidState(f"database {name!r} has no store list")
    for st in stores:
        if not isinstance(st, dict) or not isinstance(st.get("name"), str):
            raise InvalidState(f"database {name!r} has a store with no name")
        if not isinstance(st.get("indexes"), list) or not isinstance(st.get("records"), list):
            raise InvalidState(f"store {name}/{st['name']} has no index or record list")
        if not all(isinstance(r, list) and len(r) == 2 for r in st["records"]):
            raise InvalidState(f"store {name}/{st['name']} has a record that is not a [key, value] pair")


async def restore(ctx: BrowserContext, state: dict[str, Any], url: str, timeout: float = 45.0) -> Page:
    """Rebuild ``state`` in the fresh context ``ctx``, then open ``url``; returns the page.

    The caller installs the capture on ``ctx`` first (:func:`install_capture`, before
    this creates the context's first page): the re-imports made here pass through it,
    so even a fresh :class:`KeyRecorder` holds the keys again for the next dump
    (``KeyRecorder.from_records(state["keys"])`` works as well; duplicates are dropped).

    A bootstrap document is served by ``page.route`` on the site's origin; there every
    key is re-imported non-extractable and every value decoded before each database is
    recreated at its exact version, then localStorage is written. Only once all of that
    completed is the route removed and ``url`` loaded, so the site's script never runs
    on empty storage. Nothing is left in the page's globals. Raises
    :class:`InvalidState` on a malformed state or one of another origin,
    :class:`NotPortable` if the browser refuses it.
    """
    validate(state)
    if origin_of(url) != state["origin"]:
        raise InvalidState(f"portable state is for {state['origin']}, not {origin_of(url)}")
    bootstrap = state["origin"] + BOOTSTRAP_PATH

    def _is_bootstrap(candidate: str) -> bool:
        return candidate == bootstrap

    async def _serve(route: Route) -> None:
        await route.fulfill(status=200, content_type="text/html", body=_BOOTSTRAP_HTML)

    async def _rebuild() -> dict:
        await page.route(_is_bootstrap, _serve)
        try:
            await page.goto(bootstrap, wait_until="domcontentloaded")
            return await page.evaluate(RESTORE_JS, state)
        finally:
            await page.unroute(_is_bootstrap, _serve)

    page = await ctx.new_page()
    try:
        try:
            result = await asyncio.wait_for(_rebuild(), timeout)
        except TimeoutError:
            raise NotPortable(f"the login state was not rebuilt within {timeout:g} s") from None
        if not result.get("ok"):
            raise NotPortable(f"the login state could not be restored: {result.get('error')}")
        await page.goto(url, wait_until="domcontentloaded", timeout=timeout * 1000)
    except BaseException:
        await page.close()
        raise
    return page
