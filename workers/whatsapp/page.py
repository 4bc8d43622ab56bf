"""Everything this project knows about the WhatsApp Web page.

Selectors, markers, localStorage keys, the injected JS snippet and the site's timings
live here and nowhere else, so a WhatsApp Web update is a one-file change. The driver
only consumes :class:`Screen` values produced by :func:`parse_probe`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from string import Template
from typing import Any

# -- screens the driver understands -----------------------------------------------------
LOADING = "loading"
QR = "qr"
QR_IDLE = "qr_idle"
MAIN = "main"
CONFLICT = "conflict"
PAIR_CODE = "pair_code"  # "Enter code on phone": linking by phone number, the QR is gone
SCREENS = (LOADING, QR, QR_IDLE, MAIN, CONFLICT, PAIR_CODE)

# -- markers ---------------------------------------------------------------------------
SEL_LOADING = "#initial_startup"
SEL_SYNCING = '[data-testid="intro-syncing"]'
SEL_QR = "div[data-ref]"
SEL_QR_CANVAS = "div[data-ref] canvas"
SEL_QR_RELOAD = "div[data-ref] > span > button"  # "Click to reload QR code"
SEL_MAIN = (
    "#pane-side",
    'div[aria-label="Chat list"]',
    '[data-icon="intro-md-beta-logo-dark"]',
    "#side",
)
# The "Enter code on phone" screen holds the code one character per comma-separated slot.
SEL_LINK_CODE = "div[data-link-code]"
SEL_CONFLICT_MODAL = 'div[data-animate-modal-popup="true"]'
CONFLICT_TEXTS = ("Use here", "open on another computer")
SEL_OFFLINE = 'span[data-icon="alert-computer"]'

LS_WID = "last-wid-md"
LS_PUSH_NAME = "me-display-name"
# Set on ``window`` once the message events are subscribed (messaging.INSTALL_JS); a new
# document (reload, crash relaunch) lacks it, which tells the driver to subscribe again.
HOOK_FLAG = "__zaphubMessagesHooked"

# -- timings of the site (seconds) --------------------------------------------------------
POLL_INTERVAL = 0.4  # how often the driver probes the page while it is not connected
WATCH_SAFETY_PROBE = 15.0  # connected: a probe this often even if the page reported nothing
WATCH_DEBOUNCE_MS = 150  # the page watcher reports a burst of changes at most this often
NAVIGATION_TIMEOUT = 45.0  # first load of web.whatsapp.com can be slow
IDENTITY_GRACE = 15.0  # after the main screen, how long to wait for the wid in storage

# One evaluate per poll: cheap, atomic view of the page. Never clicks anything.
PROBE_JS = Template("""
() => {
  const q = (s) => document.querySelector(s);
  const out = {screen: 'loading', ref: null, offline: !!q($offline),
               wid: null, pushName: null, storageSig: null, hooked: !!window[$hook_flag]};
  try {
    out.wid = localStorage.getItem($ls_wid);
    out.pushName = localStorage.getItem($ls_name);
    // Cheap FNV-1a over all of localStorage: lets the manager know when the site last
    // wrote it (Chromium commits localStorage to disk only seconds later).
    let h = 0x811c9dc5;
    for (let i = 0; i < localStorage.length; i++) {
      const k = localStorage.key(i);
      const s = k + '\u0000' + (localStorage.getItem(k) || '') + '\u0001';
      for (let j = 0; j < s.length; j++) h = Math.imul(h ^ s.charCodeAt(j), 16777619);
    }
    out.storageSig = localStorage.length + ':' + (h >>> 0);
  } catch (e) { /* storage can be unavailable during navigation */ }
  const modal = q($modal);
  const conflictTexts = $conflict_texts;
  if (modal && conflictTexts.some((t) => (modal.innerText || '').includes(t))) {
    out.screen = 'conflict';
    return out;
  }
  if ($main.some((s) => q(s))) { out.screen = 'main'; return out; }
  if (q($link_code)) { out.screen = 'pair_code'; return out; }
  const qr = q($qr);
  if (qr) {
    if (q($reload)) { out.screen = 'qr_idle'; return out; }
    const ref = qr.getAttribute('data-ref');
    if (ref && q($canvas)) { out.screen = 'qr'; out.ref = ref; return out; }
  }
  return out;
}
""").substitute(
    offline=json.dumps(SEL_OFFLINE),
    hook_flag=json.dumps(HOOK_FLAG),
    ls_wid=json.dumps(LS_WID),
    ls_name=json.dumps(LS_PUSH_NAME),
    modal=json.dumps(SEL_CONFLICT_MODAL),
    conflict_texts=json.dumps(list(CONFLICT_TEXTS)),
    main=json.dumps(list(SEL_MAIN)),
    link_code=json.dumps(SEL_LINK_CODE),
    qr=json.dumps(SEL_QR),
    reload=json.dumps(SEL_QR_RELOAD),
    canvas=json.dumps(SEL_QR_CANVAS),
)


# -- the page watcher (connected sessions are not polled) ---------------------------------
# An init script, in every document of the context: it re-runs PROBE_JS (the same function,
# never a copy of its selectors) after DOM mutations and storage writes, and calls the
# binding WATCH_BINDING with ``{probe, storage}`` only when the probe's result changed or
# the site wrote localStorage / IndexedDB, debounced to one call per WATCH_DEBOUNCE_MS.
# A new document (reload) starts with no last result, so its first look is always reported.
# The real site also has events of its own — whatsapp-web.js (pedroslopez/whatsapp-web.js,
# src/Client.js) subscribes ``AuthStore.AppState.on('change:state')`` (onAuthAppStateChangedEvent),
# ``AppState.on('change:hasSynced')`` and ``Cmd.on('logout')`` (onLogoutEvent) — but they
# exist only once the bundle's modules load; every screen the driver reads is in the DOM,
# so watching the DOM covers the loading, QR, conflict and offline screens alike.
WATCH_BINDING = "__zaphubPageChanged"
WATCH_FLAG = "__zaphubWatching"  # set on ``window`` once the watcher runs in a document
# Only attributes the probe's selectors read: other attribute churn never wakes the watcher.
WATCH_ATTRIBUTES = ("data-ref", "data-icon", "data-animate-modal-popup", "data-link-code", "id", "aria-label")
WATCH_JS = Template("""
(() => {
  if (window.top !== window || window[$flag]) return;
  window[$flag] = true;
  const probe = $probe;
  let last = null, storage = false, timer = null;
  const flush = () => {
    timer = null;
    const wrote = storage;
    storage = false;
    let out;
    try { out = probe(); } catch (e) { return; }
    const sig = JSON.stringify(out);
    if (sig === last && !wrote) return;
    const report = window[$binding];
    if (typeof report !== 'function') return; // not exposed (yet): the driver's own probe sees it
    last = sig;
    report({probe: out, storage: wrote}).catch(() => {});
  };
  const schedule = (wroteStorage) => {
    if (wroteStorage) storage = true;
    if (timer === null) timer = setTimeout(flush, $debounce);
  };
  new MutationObserver(() => schedule(false)).observe(document, {
    subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: $attributes,
  });
  const wrap = (proto, name, after) => {
    const original = proto[name];
    if (typeof original !== 'function') return;
    proto[name] = function (...args) {
      const result = original.apply(this, args);
      after(result, args);
      return result;
    };
  };
  for (const name of ['setItem', 'removeItem', 'clear']) wrap(Storage.prototype, name, () => schedule(true));
  // A readwrite transaction is a write once it completes; deleting a database is one too.
  wrap(IDBDatabase.prototype, 'transaction', (tx, args) => {
    if (args[1] === 'readwrite') tx.addEventListener('complete', () => schedule(true));
  });
  const onSuccess = (req) => req.addEventListener('success', () => schedule(true));
  wrap(IDBFactory.prototype, 'deleteDatabase', onSuccess);
  schedule(false);
})();
""").substitute(
    flag=json.dumps(WATCH_FLAG),
    probe=PROBE_JS.strip(),
    binding=json.dumps(WATCH_BINDING),
    debounce=WATCH_DEBOUNCE_MS,
    attributes=json.dumps(list(WATCH_ATTRIBUTES)),
)


@dataclass(frozen=True)
class Screen:
    """What the page shows right now."""

    screen: str
    ref: str | None = None
    offline: bool = False
    phone_number: str | None = None
    push_name: str | None = None
    storage_sig: str | None = None  # changes whenever the site writes localStorage
    hooked: bool = False  # message events are subscribed in this document


def _unquote(value: Any) -> str | None:
    """localStorage values are sometimes JSON-encoded strings, sometimes raw."""
    if value is None:
        return None
    text = str(value)
    if text.startswith('"'):
        try:
            decoded = json.loads(text)
            text = decoded if isinstance(decoded, str) else text
        except ValueError:
            pass
    text = text.strip()
    return text or None


def phone_from_wid(wid: Any) -> str | None:
    """``"5511999990001:7@c.us"`` (JSON-quoted or not) -> ``"5511999990001"``."""
    text = _unquote(wid)
    if not text:
        return None
    phone = text.split("@", 1)[0].split(":", 1)[0].strip()
    return phone if phone.isdigit() else None


def parse_probe(raw: Any) -> Screen:
    """Turn the result of :data:`PROBE_JS` into a :class:`Screen`."""
    if not isinstance(raw, dict):
        return Screen(LOADING)
    screen = raw.get("screen")
    if screen not in SCREENS:
        screen = LOADING
    return Screen(
        screen=screen,
        ref=raw.get("ref") or None,
        offline=bool(raw.get("offline")),
        phone_number=phone_from_wid(raw.get("wid")),
        push_name=_unquote(raw.get("pushName")),
        storage_sig=raw.get("storageSig"),
        hooked=bool(raw.get("hooked")),
    )


def parse_watch(raw: Any) -> tuple[Screen | None, bool]:
    """The watcher's report (:data:`WATCH_JS`): the page's :class:`Screen` and whether storage was written."""
    if not isinstance(raw, dict):
        return None, False
    probe = raw.get("probe")
    return (parse_probe(probe) if isinstance(probe, dict) else None), bool(raw.get("storage"))


# -- linking by phone number (an 8-character code instead of a QR) ------------------------
# Mirrors pedroslopez/whatsapp-web.js:
# * ``src/util/Injected/AuthStore/AuthStore.js``: ``AuthStore.PairingCodeLinkUtils =
#   window.require('WAWebAltDeviceLinkingApi')`` and ``AuthStore.AppState =
#   window.require('WAWebSocketModel').Socket``;
# * ``src/Client.js`` ``requestPairingCode(phoneNumber, showNotification = true, intervalMs =
#   180000)``: ``setPairingType('ALT_DEVICE_LINKING')``, ``await initializeAltDeviceLinking()``,
#   ``startAltLinkingFlow(phoneNumber, showNotification)``; every ``intervalMs`` while
#   ``AppState.state`` is UNPAIRED or UNPAIRED_IDLE it asks again (``window.codeInterval``) and
#   hands each code to the exposed function ``onCodeReceivedEvent`` (the first one too).
PAIRING_MODULE = "WAWebAltDeviceLinkingApi"
SOCKET_MODULE = "WAWebSocketModel"
PAIRING_BINDING = "onCodeReceivedEvent"
PAIRING_TYPE = "ALT_DEVICE_LINKING"
UNPAIRED_STATES = ("UNPAIRED", "UNPAIRED_IDLE")
PAIRING_CODE_INTERVAL = 180.0  # seconds: whatsapp-web.js's default renewal, the code's life
PAIRING_CODE_RE = re.compile(r"^[A-Z0-9]{8}$")
PAIRING_PHONE_RE = re.compile(r"^[0-9]{8,15}$")

# One difference from whatsapp-web.js: the renewal timer is armed only after the first
# code came back, so a refused request leaves nothing running in the page, and the
# refusal comes back as data (an exception crossing evaluate loses its message).
REQUEST_PAIRING_CODE_JS = Template("""
async ({phoneNumber, showNotification, intervalMs}) => {
  const load = (name) => { try { return window.require(name); } catch (e) { return null; } };
  const PairingCodeLinkUtils = load($module);
  if (!PairingCodeLinkUtils) return {error: 'module', module: $module};
  const socket = load($socket);
  if (!socket || !socket.Socket) return {error: 'module', module: $socket};
  const AppState = socket.Socket;
  const onCodeReceivedEvent = window[$binding];
  if (typeof onCodeReceivedEvent !== 'function') return {error: 'binding'};
  const getCode = async () => {
    PairingCodeLinkUtils.setPairingType($type);
    await PairingCodeLinkUtils.initializeAltDeviceLinking();
    return PairingCodeLinkUtils.startAltLinkingFlow(phoneNumber, showNotification);
  };
  if (window.codeInterval) clearInterval(window.codeInterval); // a new request replaces the old timer
  let code;
  try {
    code = await getCode();
  } catch (e) {
    return {error: 'refused', message: String((e && e.message) || e)};
  }
  window.codeInterval = setInterval(async () => {
    if (!$unpaired.includes(AppState.state)) {
      clearInterval(window.codeInterval);
      return;
    }
    try { onCodeReceivedEvent(await getCode()); } catch (e) { console.error('zaphub: code renewal', e); }
  }, intervalMs);
  return {code: await onCodeReceivedEvent(code)};
}
""").substitute(
    module=json.dumps(PAIRING_MODULE),
    socket=json.dumps(SOCKET_MODULE),
    binding=json.dumps(PAIRING_BINDING),
    type=json.dumps(PAIRING_TYPE),
    unpaired=json.dumps(list(UNPAIRED_STATES)),
)


class PairingError(RuntimeError):
    """A pairing code could not be had from the page."""


class NotWaitingToLink(PairingError):
    """The session is not on the QR screen of this worker (not waiting to be linked)."""


class PairingRefused(PairingError):
    """The page refused to start linking by phone number (or its module is gone)."""


def pairing_code(raw: Any) -> str | None:
    """The page's code as 8 characters (``"ABCD-EFGH"`` -> ``"ABCDEFGH"``), None if malformed."""
    if not isinstance(raw, str):
        return None
    code = raw.replace("-", "").replace(" ", "").strip().upper()
    return code if PAIRING_CODE_RE.match(code) else None


def parse_pairing_answer(raw: Any) -> str:
    """The code out of :data:`REQUEST_PAIRING_CODE_JS`'s answer; :class:`PairingRefused` otherwise."""
    if not isinstance(raw, dict):
        raise PairingRefused("unexpected answer from the page")
    if raw.get("error") == "module":
        raise PairingRefused(f"WhatsApp Web changed: module {raw.get('module')} missing")
    if raw.get("error") == "binding":
        raise PairingRefused("the page has no pairing code binding yet; retry")
    if raw.get("error"):
        raise PairingRefused(
            f"the page refused to link by phone number: {raw.get('message') or raw['error']}"
        )
    code = pairing_code(raw.get("code"))
    if code is None:
        raise PairingRefused("the page answered without a valid pairing code")
    return code
