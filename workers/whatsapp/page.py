"""Everything this project knows about the WhatsApp Web page.

Selectors, markers, localStorage keys, the injected JS snippet and the site's timings
live here and nowhere else, so a WhatsApp Web update is a one-file change. The driver
only consumes :class:`Screen` values produced by :func:`parse_probe`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from string import Template
from typing import Any

# -- screens the driver understands -----------------------------------------------------
LOADING = "loading"
QR = "qr"
QR_IDLE = "qr_idle"
MAIN = "main"
CONFLICT = "conflict"
SCREENS = (LOADING, QR, QR_IDLE, MAIN, CONFLICT)

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
SEL_CONFLICT_MODAL = 'div[data-animate-modal-popup="true"]'
CONFLICT_TEXTS = ("Use here", "open on another computer")
SEL_OFFLINE = 'span[data-icon="alert-computer"]'

LS_WID = "last-wid-md"
LS_PUSH_NAME = "me-display-name"
# Set on ``window`` once the message events are subscribed (messaging.INSTALL_JS); a new
# document (reload, crash relaunch) lacks it, which tells the driver to subscribe again.
HOOK_FLAG = "__zaphubMessagesHooked"

# -- timings of the site (seconds) --------------------------------------------------------
POLL_INTERVAL = 0.4  # how often the driver probes the page
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
    qr=json.dumps(SEL_QR),
    reload=json.dumps(SEL_QR_RELOAD),
    canvas=json.dumps(SEL_QR_CANVAS),
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
