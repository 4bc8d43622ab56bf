"""Helpers for the browser-runtime e2e tests (real Chromium + simulator)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.simulator import SimulatorControl, SimulatorServer
from workers.browser import BrowserRuntime
from workers.whatsapp.sessions import SessionManager

SECRET = "e2e-login-state-secret"
CLOCK_SCALE = 10.0  # first ref 6 s, later refs 2 s


@pytest.fixture(scope="module", name="simulator")
def module_simulator() -> Iterator[tuple[SimulatorServer, SimulatorControl]]:
    """A simulator for the module's tests, its clock sped up by :data:`CLOCK_SCALE`."""
    server = SimulatorServer(port=0, clock_scale=CLOCK_SCALE).start()
    control = SimulatorControl(server.url)
    control.clock(CLOCK_SCALE)
    try:
        yield server, control
    finally:
        server.stop()


@contextlib.contextmanager
def started_runtime(**options: Any) -> Iterator[BrowserRuntime]:
    """A started browser runtime (``BrowserRuntime(**options)``), stopped afterwards."""
    rt = BrowserRuntime(**options)
    rt.start()
    try:
        yield rt
    finally:
        rt.stop(timeout=30)


class EventLog:
    """Thread-safe list of (session_id, name, payload) with waiting helpers."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, dict[str, Any]]] = []
        self.threads: set[str] = set()  # names of the threads that delivered events
        self._cond = threading.Condition()

    def __call__(self, sid: str, name: str, payload: dict[str, Any]) -> None:
        with self._cond:
            self.threads.add(threading.current_thread().name)
            self.items.append((sid, name, payload))
            self._cond.notify_all()

    def names(self, sid: str) -> list[str]:
        with self._cond:
            return [n for s, n, _ in self.items if s == sid]

    def mark(self) -> int:
        with self._cond:
            return len(self.items)

    def wait_for(
        self,
        sid: str,
        name: str,
        since: int = 0,
        timeout: float = 30,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Payload of the first matching event at index >= ``since``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for s, n, p in self.items[since:]:
                    if s == sid and n == name and (where is None or where(p)):
                        return p
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(s, n, p.get("reason")) for s, n, p in self.items[since:]]
                    raise AssertionError(f"no {name!r} for {sid} within {timeout}s; saw {seen}")
                self._cond.wait(left)

    def collect(
        self,
        sid: str,
        name: str,
        count: int,
        since: int = 0,
        timeout: float = 30,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """Payloads of the first ``count`` matching events at index >= ``since``, in order."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [
                    p
                    for s, n, p in self.items[since:]
                    if s == sid and n == name and (where is None or where(p))
                ]
                if len(found) >= count:
                    return found[:count]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(found)}/{count} {name!r} events for {sid} within {timeout}s")
                self._cond.wait(left)


def link(
    manager: SessionManager,
    control: SimulatorControl,
    events: EventLog,
    sid: str,
    phone: str,
    push_name: str = "Test User",
) -> dict[str, Any]:
    """Start ``sid``, scan its QR with ``phone``; returns the ``ready`` payload."""
    mark = events.mark()
    manager.start(sid)
    qr = events.wait_for(sid, "qr", mark)
    control.scan(qr["qr"], phone=phone, push_name=push_name)
    events.wait_for(sid, "authenticated", mark)
    return events.wait_for(sid, "ready", mark)


@contextlib.contextmanager
def session_manager(
    wa_url: str, events: EventLog, sessions_dir: Path, **kwargs: Any
) -> Iterator[SessionManager]:
    """A SessionManager on a browser runtime of its own; every session and the runtime closed after."""
    runtime = BrowserRuntime()
    runtime.start()
    mgr = SessionManager(runtime, sessions_dir, wa_url, events, login_state_keys=[SECRET], **kwargs)
    try:
        yield mgr
    finally:
        mgr.close_all()
        runtime.stop(timeout=30)


@pytest.fixture(scope="module", name="events")
def module_events() -> EventLog:
    """The module's event log (every manager of the module reports into it)."""
    return EventLog()
