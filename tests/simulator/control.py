"""Stdlib-only client for the simulator's ``/_sim/...`` control API (the fake phone)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class ControlError(RuntimeError):
    """A control call answered with an HTTP error; ``status`` and ``payload`` kept."""

    def __init__(self, status: int, payload: Any) -> None:
        super().__init__(f"HTTP {status}: {payload}")
        self.status = status
        self.payload = payload


class SimulatorControl:
    """Thin JSON client: ``SimulatorControl("http://127.0.0.1:8765/")``."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            raise ControlError(err.code, body) from None

    def state(self) -> dict[str, Any]:
        """The full ``/_sim/state`` document."""
        return self._call("GET", "/_sim/state")

    def scan(self, ref: str, phone: str | None = None, push_name: str | None = None) -> dict[str, Any]:
        """Scan ``ref`` with the fake phone; raises ControlError (410 expired, 404 unknown)."""
        payload: dict[str, Any] = {"ref": ref}
        if phone:
            payload["phone"] = phone
        if push_name:
            payload["push_name"] = push_name
        return self._call("POST", "/_sim/scan", payload)

    def pair(self, phone: str, code: str, push_name: str | None = None) -> dict[str, Any]:
        """The fake phone of ``phone`` enters a link code (``ABCDEFGH`` or ``ABCD-EFGH``).

        Links like a scan; raises ControlError (400 wrong code, 410 expired or replaced).
        """
        payload: dict[str, Any] = {"phone": phone, "code": code}
        if push_name:
            payload["push_name"] = push_name
        return self._call("POST", "/_sim/pair", payload)

    def logout(self, phone: str) -> dict[str, Any]:
        """Log the linked device(s) of ``phone`` out from the phone."""
        return self._call("POST", "/_sim/logout", {"phone": phone})

    def message(
        self,
        phone: str,
        sender: str,
        body: str,
        name: str | None = None,
        push_name: str | None = None,
        quoted: str | None = None,
    ) -> dict[str, Any]:
        """Push an incoming message from ``sender`` to ``phone``'s linked device.

        ``name`` is the contact's saved name, ``push_name`` the one they set themselves,
        ``quoted`` the bare id of a message it replies to. Returns ``{"id", "delivered_to"}``.
        """
        payload: dict[str, Any] = {"phone": phone, "from": sender, "body": body}
        for key, value in (("name", name), ("push_name", push_name), ("quoted", quoted)):
            if value:
                payload[key] = value
        return self._call("POST", "/_sim/message", payload)

    def sent(self, phone: str) -> list[dict[str, Any]]:
        """Every message the page(s) of ``phone`` sent, oldest first (with its ``ack``)."""
        return self._call("GET", f"/_sim/sent?phone={phone}")

    def receipt(self, phone: str, message_id: str, ack: str) -> dict[str, Any]:
        """The recipient's phone reports ``ack`` ("device", "read", "played") for a sent message."""
        return self._call("POST", "/_sim/receipt", {"phone": phone, "message_id": message_id, "ack": ack})

    def read(self, phone: str, chat: str) -> dict[str, Any]:
        """The recipient ``chat`` reads the conversation: every message sent to it goes READ."""
        return self._call("POST", "/_sim/read", {"phone": phone, "chat": chat})

    def fail(self, phone: str, message_id: str) -> dict[str, Any]:
        """Delivery of a sent message fails (ack ERROR)."""
        return self._call("POST", "/_sim/fail", {"phone": phone, "message_id": message_id})

    def modules(self, missing: list[str]) -> dict[str, Any]:
        """Pages loaded from now on lack these ``window.require`` modules ([] restores them)."""
        return self._call("POST", "/_sim/modules", {"missing": list(missing)})

    def key_mode(self, mode: str) -> dict[str, Any]:
        """Pages loaded from now on make their login key by ``import`` (default) or ``generate``."""
        return self._call("POST", "/_sim/key-mode", {"mode": mode})

    def messages(self, phone: str) -> list[dict[str, Any]]:
        """Message history (incoming and sent by the page) of ``phone``'s devices."""
        return self._call("GET", f"/_sim/messages?phone={phone}")

    def conflict(self, phone: str) -> dict[str, Any]:
        """Open a conflicting session: pages of ``phone`` show the "Use here" modal."""
        return self._call("POST", "/_sim/conflict", {"phone": phone})

    def offline(self, flag: bool = True) -> dict[str, Any]:
        """Switch the whole fake backend offline (page API answers 503) or back."""
        return self._call("POST", "/_sim/offline", {"offline": bool(flag)})

    def clock(self, scale: float) -> dict[str, Any]:
        """Divide all page timings and ref lifetimes by ``scale`` from now on."""
        return self._call("POST", "/_sim/clock", {"scale": scale})

    def reset(self) -> dict[str, Any]:
        """Forget everything (pairings, devices, messages, offline flag, clock)."""
        return self._call("POST", "/_sim/reset", {})

    def current_ref(self) -> str | None:
        """Ref of the newest waiting pairing, or None."""
        waiting = [p for p in self.state()["pairings"] if p["state"] == "waiting"]
        return waiting[-1]["ref"] if waiting else None

    def device(self, phone: str) -> dict[str, Any] | None:
        """The newest device record of ``phone`` from the state document."""
        found = [d for d in self.state()["devices"] if d["phone"] == phone]
        return found[-1] if found else None

    @staticmethod
    def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.1) -> T:
        """Poll ``predicate`` until it returns a truthy value; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            time.sleep(interval)
