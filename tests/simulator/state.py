"""Server-side state of the WhatsApp Web simulator.

Everything the fake WhatsApp backend knows lives in :class:`SimState`: the scaled
clock, QR pairings (with ref rotation), linked devices, their message history, the
conflict flag and the global offline switch.  All public methods take the state lock,
so the threaded werkzeug server can call them concurrently.

Times are *virtual* seconds from :class:`SimClock`; speeding the clock up shortens ref
lifetimes on the server and (via ``clock_scale`` in every API answer) the page timings.

Messages: every device keeps its whole history, each entry with a sequence number that
moves forward whenever the entry changes (a new receipt). A page polls with the highest
number it has seen and keeps that cursor in its own storage, so messages (and receipts)
that arrive while no browser runs for the device are delivered when it comes back; a
page restored from an older login archive simply gets some of them again.
"""

from __future__ import annotations

import base64
import itertools
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import segno

FIRST_REF_TTL = 60.0  # virtual seconds the first ref of a pairing lives
NEXT_REF_TTL = 20.0  # virtual seconds every later ref lives
MAX_REFS = 6  # refs per pairing before it goes idle ("Click to reload QR code")
# How a page makes its login key: "import" like the real site (raw bytes, importKey,
# non-extractable) or "generate" (generateKey, non-extractable: no raw bytes ever exist,
# so the portable login state must refuse it). The first is the default.
KEY_MODES = ("import", "generate")
# Linking by phone number: a code lives as long as whatsapp-web.js's default renewal
# interval (requestPairingCode intervalMs = 180000), in virtual seconds like a QR ref.
LINK_CODE_TTL = 180.0
LINK_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTVWXYZ0123456789"  # uppercase alphanumerics, no look-alikes
LINK_PHONE_RE = re.compile(r"^[0-9]{8,15}$")
ONLINE_WINDOW = 2.0  # real seconds: a page that polled this recently counts as online

# Receipt states of a message, numbered like WhatsApp Web's ``msg.ack`` (whatsapp-web.js
# src/util/Constants.js MessageAck: ACK_ERROR -1 ... ACK_PLAYED 4).
ACK_ERROR, ACK_PENDING, ACK_SERVER, ACK_DEVICE, ACK_READ, ACK_PLAYED = -1, 0, 1, 2, 3, 4
ACK_NAMES = {
    "error": ACK_ERROR,
    "server": ACK_SERVER,
    "device": ACK_DEVICE,
    "read": ACK_READ,
    "played": ACK_PLAYED,
}


class SimError(Exception):
    """A control/page request that must be answered with an HTTP error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SimClock:
    """Monotonic virtual clock running ``scale`` times faster than real time."""

    def __init__(self, scale: float = 1.0) -> None:
        self._base_real = time.monotonic()
        self._base_virtual = 0.0
        self.scale = float(scale)

    def now(self) -> float:
        """Current virtual time in seconds."""
        return self._base_virtual + (time.monotonic() - self._base_real) * self.scale

    def set_scale(self, scale: float) -> None:
        """Change the speed from now on (the virtual time stays continuous)."""
        if scale <= 0:
            raise SimError(400, "scale must be > 0")
        self._base_virtual = self.now()
        self._base_real = time.monotonic()
        self.scale = float(scale)


def _b64(nbytes: int) -> str:
    return base64.b64encode(os.urandom(nbytes)).decode()


def qr_matrix(data: str) -> list[str]:
    """QR module matrix for ``data`` (no quiet zone), one '0'/'1' string per row."""
    qr = segno.make(data, error="l", micro=False)
    return ["".join("1" if m else "0" for m in row) for row in qr.matrix]


@dataclass
class Pairing:
    """One QR pairing attempt of one page: a series of rotating refs."""

    id: str
    page_id: str
    keys: str  # the three comma-joined base64 keys, fixed for the pairing
    refs: list[str] = field(default_factory=list)
    ref_started: float = 0.0  # virtual time the current ref was issued
    state: str = "waiting"  # waiting | expired | scanned | cancelled (the page chose a code)
    device_id: str | None = None

    @property
    def ref(self) -> str:
        return self.refs[-1]

    def issue_ref(self, at: float) -> None:
        self.refs.append(f"2@{_b64(48)},{self.keys}")
        self.ref_started = at

    def advance(self, now: float) -> None:
        """Rotate refs / expire according to the virtual clock."""
        while self.state == "waiting":
            ttl = FIRST_REF_TTL if len(self.refs) == 1 else NEXT_REF_TTL
            end = self.ref_started + ttl
            if now < end:
                return
            if len(self.refs) >= MAX_REFS:
                self.state = "expired"
                return
            self.issue_ref(end)

    def expires_in(self, now: float) -> float:
        ttl = FIRST_REF_TTL if len(self.refs) == 1 else NEXT_REF_TTL
        return max(0.0, self.ref_started + ttl - now)


@dataclass
class LinkCode:
    """One code of alt-device linking ("link with phone number") issued to one page.

    A page has at most one current code; asking again replaces it (the old one is
    refused as expired), like the real site's ``startAltLinkingFlow``.
    """

    page_id: str
    phone: str
    code: str
    issued_at: float  # virtual time
    state: str = "waiting"  # waiting | replaced | linked
    device_id: str | None = None
    codes_issued: int = 1

    def expired(self, now: float) -> bool:
        return self.state == "replaced" or (self.state == "waiting" and now >= self.issued_at + LINK_CODE_TTL)

    def expires_in(self, now: float) -> float:
        return max(0.0, self.issued_at + LINK_CODE_TTL - now)


def new_link_code() -> str:
    """8 uppercase alphanumerics, like the code the real site shows as ``ABCD-EFGH``."""
    return "".join(secrets.choice(LINK_CODE_ALPHABET) for _ in range(8))


@dataclass
class Message:
    """A message in a device's history (incoming or sent from the page)."""

    seq: int  # moves forward on every change, so a poll ``since`` a cursor sees it again
    id: str
    chat: str  # the other party's number
    from_me: bool
    body: str
    name: str | None  # the contact's saved name (incoming only)
    ts: float  # wall-clock seconds
    push_name: str | None = None  # the name the contact set on their own phone
    ack: int = ACK_PENDING
    quoted: str | None = None  # bare id of the message this one replies to

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "id": self.id,
            "chat": self.chat,
            "from_me": self.from_me,
            "body": self.body,
            "name": self.name,
            "push_name": self.push_name,
            "ts": self.ts,
            "ack": self.ack,
            "quoted": self.quoted,
        }


@dataclass
class Device:
    """A linked (or formerly linked) companion device of a phone."""

    device_id: str
    phone: str
    number: int
    push_name: str
    token: str
    linked: bool = True
    conflict: bool = False
    pages: dict[str, float] = field(default_factory=dict)  # page_id -> real last poll
    messages: list[Message] = field(default_factory=list)

    @property
    def wid(self) -> str:
        return f"{self.phone}:{self.number}@c.us"

    def online_pages(self) -> int:
        cutoff = time.monotonic() - ONLINE_WINDOW
        return sum(1 for t in self.pages.values() if t >= cutoff)

    def public(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "phone": self.phone,
            "wid": self.wid,
            "push_name": self.push_name,
            "linked": self.linked,
            "online_pages": self.online_pages(),
            "conflict": self.conflict,
        }


class SimState:
    """The whole fake backend; thread safe."""

    def __init__(self, clock_scale: float = 1.0) -> None:
        self._lock = threading.RLock()
        self._initial_scale = clock_scale
        self.reset(clock_scale)

    # ----------------------------------------------------------------- control
    def reset(self, clock_scale: float | None = None) -> None:
        """Forget every pairing, device and message; back online."""
        with self._lock:
            self.clock = SimClock(self._initial_scale if clock_scale is None else clock_scale)
            self.offline = False
            self.pairings: dict[str, Pairing] = {}
            self.ref_index: dict[str, Pairing] = {}  # first comma part of every ref
            self.devices: dict[str, Device] = {}
            self._seq = itertools.count(1)
            self._phones = itertools.count(1)
            self._numbers: dict[str, int] = {}
            self.missing_modules: list[str] = []
            self.key_mode = KEY_MODES[0]
            self.link_codes: dict[str, LinkCode] = {}  # page_id -> its current code
            self.old_codes: dict[str, str] = {}  # replaced/expired code -> phone (to say "expired")

    def set_missing_modules(self, names: list[str]) -> None:
        """Pages loaded from now on lack these ``window.require`` modules (a site update)."""
        with self._lock:
            self.missing_modules = [str(n) for n in names]

    def set_key_mode(self, mode: str) -> None:
        """How pages loaded from now on make their login key: ``import`` (the site) or ``generate``."""
        if mode not in KEY_MODES:
            raise SimError(400, f"key mode must be one of {', '.join(KEY_MODES)}")
        with self._lock:
            self.key_mode = mode

    def set_clock(self, scale: float) -> None:
        with self._lock:
            self.clock.set_scale(scale)

    def set_offline(self, flag: bool) -> None:
        with self._lock:
            self.offline = bool(flag)

    def snapshot(self) -> dict[str, Any]:
        """The ``GET /_sim/state`` document."""
        with self._lock:
            now = self.clock.now()
            pairings = []
            for p in self.pairings.values():
                p.advance(now)
                pairings.append({"id": p.id, "ref": p.ref, "state": p.state, "refs_issued": len(p.refs)})
            return {
                "clock_scale": self.clock.scale,
                "offline": self.offline,
                "missing_modules": list(self.missing_modules),
                "key_mode": self.key_mode,
                "pairings": pairings,
                "devices": [d.public() for d in self.devices.values()],
                "link_codes": [
                    {
                        "phone": c.phone,
                        "code": c.code,
                        "state": "expired" if c.expired(now) else c.state,
                        "codes_issued": c.codes_issued,
                    }
                    for c in self.link_codes.values()
                ],
            }

    def scan(self, ref: str, phone: str | None, push_name: str | None) -> dict[str, Any]:
        """The fake phone scans ``ref`` (full payload or its first comma part)."""
        with self._lock:
            head = ref.split(",", 1)[0].strip()
            pairing = self.ref_index.get(head)
            if pairing is None:
                raise SimError(404, "unknown ref")
            pairing.advance(self.clock.now())
            if pairing.state != "waiting" or pairing.ref.split(",", 1)[0] != head:
                raise SimError(410, "ref expired")
            device = self._new_device(str(phone) if phone else f"55119{next(self._phones):08d}", push_name)
            pairing.state = "scanned"
            pairing.device_id = device.device_id
            return {"device_id": device.device_id, "phone": device.phone, "wid": device.wid}

    def _new_device(self, phone: str, push_name: str | None) -> Device:
        """Link a new companion device of ``phone`` (a QR scan and a code entry end the same)."""
        number = self._numbers.get(phone, 0) + 1
        self._numbers[phone] = number
        device = Device(
            device_id=secrets.token_hex(8),
            phone=phone,
            number=number,
            push_name=push_name or f"User {phone[-4:]}",
            token=secrets.token_urlsafe(24),
        )
        self.devices[device.device_id] = device
        return device

    def pair(self, phone: str, code: str, push_name: str | None = None) -> dict[str, Any]:
        """The fake phone of ``phone`` enters ``code`` (``ABCD-EFGH`` or ``ABCDEFGH``).

        The current code a page issued for that phone links it exactly like a QR scan;
        a code that was replaced or outlived its time is refused (410), any other code
        too (400, "check the code and try again"), and the page keeps waiting.
        """
        with self._lock:
            phone = str(phone or "")
            typed = str(code or "").replace("-", "").replace(" ", "").upper()
            now = self.clock.now()
            for link in self.link_codes.values():
                if link.phone != phone or link.code != typed or link.state == "linked":
                    continue
                if link.expired(now):
                    raise SimError(410, "code expired")
                device = self._new_device(phone, push_name)
                link.state = "linked"
                link.device_id = device.device_id
                return {"device_id": device.device_id, "phone": device.phone, "wid": device.wid}
            if self.old_codes.get(typed) == phone:
                raise SimError(410, "code expired")
            raise SimError(400, "wrong code")

    def logout(self, phone: str | None = None, device_id: str | None = None) -> int:
        """Unlink the device(s) of ``phone`` or the one ``device_id``; returns count."""
        with self._lock:
            targets = self._select(phone, device_id, linked_only=True)
            for d in targets:
                d.linked = False
                d.conflict = False
            return len(targets)

    def conflict(self, phone: str | None = None, device_id: str | None = None) -> int:
        """Another computer opened this session: the pages must show the modal."""
        with self._lock:
            targets = self._select(phone, device_id, linked_only=True)
            for d in targets:
                d.conflict = True
            return len(targets)

    def push_message(
        self,
        phone: str,
        sender: str,
        body: str,
        name: str | None = None,
        push_name: str | None = None,
        quoted: str | None = None,
    ) -> dict[str, Any]:
        """Deliver an incoming message from ``sender`` to the linked device(s) of ``phone``.

        Devices that are offline keep it until their page polls again.
        """
        with self._lock:
            targets = self._select(phone, None, linked_only=True)
            if not targets:
                raise SimError(404, "no linked device for that phone")
            msg_id = secrets.token_hex(10).upper()  # a phone's id, unlike the page's "3EB0…"
            for d in targets:
                d.messages.append(
                    Message(
                        next(self._seq),
                        msg_id,
                        str(sender),
                        False,
                        body,
                        name,
                        time.time(),
                        push_name=push_name,
                        ack=ACK_SERVER,
                        quoted=quoted,
                    )
                )
            return {"id": msg_id, "delivered_to": [d.device_id for d in targets]}

    def sent(self, phone: str | None, device_id: str | None) -> list[dict[str, Any]]:
        """Every message the page(s) of the selected device(s) sent, oldest first."""
        with self._lock:
            found = [
                m.to_json() | {"device_id": d.device_id}
                for d in self._select(phone, device_id, linked_only=False)
                for m in d.messages
                if m.from_me
            ]
            return sorted(found, key=lambda m: m["ts"])

    def receipt(self, phone: str, message_id: str, ack: int) -> dict[str, Any]:
        """The recipient's phone reports ``ack`` (DEVICE, READ, PLAYED or ERROR) for a sent message."""
        with self._lock:
            hits = [
                (d, m)
                for d in self._select(phone, None, linked_only=False)
                for m in d.messages
                if m.from_me and m.id == message_id
            ]
            if not hits:
                raise SimError(404, "no such sent message")
            for _, m in hits:
                self._set_ack(m, ack)
            return hits[0][1].to_json()

    def read_chat(self, phone: str, chat: str) -> dict[str, Any]:
        """The recipient ``chat`` opens the conversation: every message sent to it is READ."""
        chat = str(chat).split("@", 1)[0]
        with self._lock:
            changed = 0
            for d in self._select(phone, None, linked_only=False):
                for m in d.messages:
                    if m.from_me and m.chat == chat and ACK_PENDING < m.ack < ACK_READ:
                        self._set_ack(m, ACK_READ)
                        changed += 1
            return {"read": changed}

    def _set_ack(self, m: Message, ack: int) -> None:
        """Receipts only move forward (ERROR is final), like the real service's."""
        if m.ack == ACK_ERROR or (ack != ACK_ERROR and ack <= m.ack):
            return
        m.ack = ack
        m.seq = next(self._seq)

    def messages(self, phone: str | None, device_id: str | None) -> list[dict[str, Any]]:
        """History (both directions) of the selected device(s)."""
        with self._lock:
            return [
                m.to_json() | {"device_id": d.device_id}
                for d in self._select(phone, device_id, linked_only=False)
                for m in d.messages
            ]

    def _select(self, phone: str | None, device_id: str | None, linked_only: bool) -> list[Device]:
        if not phone and not device_id:
            raise SimError(400, "phone or device_id required")
        found = [
            d
            for d in self.devices.values()
            if (device_id and d.device_id == device_id) or (phone and d.phone == str(phone))
        ]
        return [d for d in found if d.linked] if linked_only else found

    # ------------------------------------------------------------------- page
    def check_online(self) -> None:
        if self.offline:
            raise SimError(503, "offline")

    def page_config(self) -> dict[str, Any]:
        with self._lock:
            self.check_online()
            return {"clock_scale": self.clock.scale}

    def create_pairing(self, page_id: str) -> dict[str, Any]:
        with self._lock:
            self.check_online()
            keys = ",".join(_b64(32) for _ in range(3))
            pairing = Pairing(id=secrets.token_hex(6), page_id=page_id, keys=keys)
            pairing.issue_ref(self.clock.now())
            self.pairings[pairing.id] = pairing
            self._index(pairing)
            return self._pairing_view(pairing)

    def pairing_status(self, pairing_id: str, page_id: str) -> dict[str, Any]:
        with self._lock:
            self.check_online()
            pairing = self.pairings.get(pairing_id)
            if pairing is None or pairing.page_id != page_id:
                raise SimError(404, "unknown pairing")
            pairing.advance(self.clock.now())
            self._index(pairing)
            return self._pairing_view(pairing)

    def start_link_code(self, page_id: str, phone: str) -> dict[str, Any]:
        """The page asks for a code to link by phone number (``startAltLinkingFlow``).

        Its QR pairing stops (the page now shows the code); a code it had is replaced.
        """
        with self._lock:
            self.check_online()
            phone = str(phone or "")
            if not LINK_PHONE_RE.match(phone):
                raise SimError(400, "invalid phone number")
            for pairing in self.pairings.values():
                if pairing.page_id == page_id and pairing.state == "waiting":
                    pairing.state = "cancelled"
            old = self.link_codes.get(page_id)
            if old is not None and old.state == "linked":
                raise SimError(409, "already linked")
            link = LinkCode(page_id=page_id, phone=phone, code=new_link_code(), issued_at=self.clock.now())
            if old is not None:
                old.state = "replaced"
                self.old_codes[old.code] = old.phone
                link.codes_issued = old.codes_issued + 1
            self.link_codes[page_id] = link
            return self._link_view(link)

    def link_code_status(self, page_id: str) -> dict[str, Any]:
        """The code page's poll: waiting, expired (not renewed in time) or linked."""
        with self._lock:
            self.check_online()
            link = self.link_codes.get(page_id)
            if link is None:
                raise SimError(404, "no code for this page")
            return self._link_view(link)

    def _link_view(self, link: LinkCode) -> dict[str, Any]:
        now = self.clock.now()
        view: dict[str, Any] = {
            "state": "expired" if link.expired(now) else link.state,
            "code": link.code,
            "expires_in": link.expires_in(now),
            "clock_scale": self.clock.scale,
        }
        if link.state == "linked" and link.device_id:
            view["device"] = self._device_view(link.device_id)
        return view

    def _index(self, pairing: Pairing) -> None:
        for ref in pairing.refs:
            self.ref_index[ref.split(",", 1)[0]] = pairing

    def _pairing_view(self, pairing: Pairing) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": pairing.id,
            "state": pairing.state,
            "ref": pairing.ref,
            "clock_scale": self.clock.scale,
        }
        if pairing.state == "waiting":
            view["matrix"] = qr_matrix(pairing.ref)
            view["expires_in"] = pairing.expires_in(self.clock.now())
        elif pairing.state == "scanned" and pairing.device_id:
            view["device"] = self._device_view(pairing.device_id)
        return view

    def _device_view(self, device_id: str) -> dict[str, Any]:
        """What the page learns of the device it was linked to (a scan or a typed code)."""
        d = self.devices[device_id]
        return {"device_id": d.device_id, "token": d.token, "wid": d.wid, "push_name": d.push_name}

    def _auth(self, device_id: str, token: str, page_id: str) -> Device:
        device = self.devices.get(device_id or "")
        if device is None or not device.linked or not secrets.compare_digest(device.token, token or ""):
            raise SimError(401, "unlinked")
        device.pages[page_id] = time.monotonic()
        return device

    def login(self, device_id: str, token: str, page_id: str, since: int = 0) -> dict[str, Any]:
        """A page restoring its stored session (``since``: its stored message cursor)."""
        with self._lock:
            self.check_online()
            d = self._auth(device_id, token, page_id)
            return {
                "wid": d.wid,
                "push_name": d.push_name,
                "clock_scale": self.clock.scale,
                **self._poll_view(d, since),
            }

    def poll(self, device_id: str, token: str, page_id: str, since: int) -> dict[str, Any]:
        """The main screen's periodic poll: status + new messages."""
        with self._lock:
            self.check_online()
            try:
                d = self._auth(device_id, token, page_id)
            except SimError:
                return {"status": "unlinked", "clock_scale": self.clock.scale}
            return {"clock_scale": self.clock.scale, **self._poll_view(d, since)}

    def _poll_view(self, d: Device, since: int) -> dict[str, Any]:
        if d.conflict:
            return {"status": "conflict", "messages": []}
        fresh = sorted((m for m in d.messages if m.seq > since), key=lambda m: m.seq)
        return {"status": "ok", "messages": [m.to_json() for m in fresh]}

    def takeover(self, device_id: str, token: str, page_id: str) -> dict[str, Any]:
        """ "Use here": this page takes the session back."""
        with self._lock:
            self.check_online()
            d = self._auth(device_id, token, page_id)
            d.conflict = False
            return {"status": "ok"}

    def send(
        self,
        device_id: str,
        token: str,
        page_id: str,
        to: str,
        body: str,
        msg_id: str | None = None,
        quoted: str | None = None,
    ) -> dict[str, Any]:
        """The page sends a message; the server accepts it (ack SERVER).

        The id is the page's own (``WAWebMsgKey.newId``); sending an id again returns the
        stored message instead of a second copy, like the real server's de-duplication.
        """
        with self._lock:
            self.check_online()
            d = self._auth(device_id, token, page_id)
            if d.conflict:
                raise SimError(409, "conflict")
            msg_id = msg_id or "3EB0" + secrets.token_hex(8).upper()
            for known in d.messages:
                if known.from_me and known.id == msg_id:
                    return known.to_json()
            msg = Message(
                next(self._seq),
                msg_id,
                str(to),
                True,
                body,
                None,
                time.time(),
                ack=ACK_SERVER,
                quoted=quoted,
            )
            d.messages.append(msg)
            return msg.to_json()
