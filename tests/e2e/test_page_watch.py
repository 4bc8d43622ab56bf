"""A connected page is watched, not polled: real Chromium, the simulator, the SessionManager.

The safety probe is set to an hour, so every transition seen here was reported by the
page's own watcher (``page.WATCH_JS``): a logout, a conflict, the offline banner, a reload
(the new document is hooked again) and storage writes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.e2e.runtime_fixtures import CLOCK_SCALE, EventLog, link, session_manager
from tests.simulator import SimulatorControl, SimulatorServer
from workers.whatsapp.driver import PageDriver
from workers.whatsapp.sessions import SessionManager

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

NEVER = 3600.0  # the safety probe: never within a test


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorControl]:
    with SimulatorServer(clock_scale=CLOCK_SCALE) as server:
        control = SimulatorControl(server.url)
        control.clock(CLOCK_SCALE)
        yield control


@pytest.fixture(scope="module")
def watch(simulator, tmp_path_factory) -> Iterator[tuple[SessionManager, EventLog]]:
    """A manager whose connected pages get no safety probe within a test, and its event log."""
    log = EventLog()
    sessions = tmp_path_factory.mktemp("sessions")
    with session_manager(simulator.base_url + "/", log, sessions, watch_safety_probe=NEVER) as mgr:
        yield mgr, log


def driver_of(manager: SessionManager, sid: str) -> PageDriver:
    driver = manager._sessions[sid].driver
    assert driver is not None and driver.safety_probe == NEVER
    return driver


def watched(manager: SessionManager, simulator: SimulatorControl, events: EventLog, sid: str, phone: str):
    """Link ``sid`` and wait until its driver stopped polling (ready, message events subscribed)."""
    link(manager, simulator, events, sid, phone)
    driver = driver_of(manager, sid)
    SimulatorControl.wait_for(lambda: driver.watching(driver._seen), timeout=30)
    return driver


@pytest.mark.parametrize(("phone", "action"), [("5511999991001", "logout"), ("5511999991002", "conflict")])
def test_a_logout_or_a_conflict_is_noticed(watch, simulator, phone, action):
    """The phone logs the device out (the QR screen comes back), or the session opens elsewhere."""
    manager, events = watch
    sid = f"w-{action}"
    watched(manager, simulator, events, sid, phone)
    mark = events.mark()
    getattr(simulator, action)(phone)
    assert events.wait_for(sid, "disconnected", mark) == {"reason": action}


def test_the_offline_banner_is_noticed_and_so_is_its_end(watch, simulator, caplog):
    manager, events = watch
    driver = watched(manager, simulator, events, "w-offline", "5511999991003")
    caplog.set_level(logging.WARNING, logger="workers.whatsapp.driver")
    simulator.offline(True)
    try:
        SimulatorControl.wait_for(lambda: "w-offline: page reports offline" in caplog.text, timeout=30)
        assert driver._seen is not None and driver._seen.offline
    finally:
        simulator.offline(False)
    SimulatorControl.wait_for(lambda: "w-offline: page reports back online" in caplog.text, timeout=30)
    assert manager.status("w-offline")["status"] == "connected"
    manager.stop("w-offline")


def test_a_reloaded_page_is_hooked_again_and_storage_writes_are_reported(watch, simulator):
    manager, events = watch
    phone = "5511999991004"
    driver = watched(manager, simulator, events, "w-reload", phone)
    writes: list[float] = []
    driver.on_storage_write = lambda: writes.append(driver.storage_changed_at)
    page = manager._sessions["w-reload"].page
    manager.runtime.submit(page.reload(wait_until="domcontentloaded"), 30)
    # The new document lacks the hook flag: the driver subscribes it again, then waits again.
    SimulatorControl.wait_for(lambda: driver.watching(driver._seen), timeout=30)
    mark = events.mark()
    sent = simulator.message(phone, "5511988887777", "after the reload", push_name="Later")
    got = events.wait_for("w-reload", "message", mark, where=lambda p: p["id"] == sent["id"])
    assert got["body"] == "after the reload"
    # The page stored its message cursor (IndexedDB): reported as a storage write.
    SimulatorControl.wait_for(lambda: writes, timeout=30)
    assert driver.storage_changed_at == writes[-1]
    manager.stop("w-reload")
