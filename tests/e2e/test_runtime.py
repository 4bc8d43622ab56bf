"""E2E tests of the browser runtime and session manager: real Chromium + the simulator.

No database, no Celery: events are collected from the ``on_event`` callback.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from shared.login_state import LoginStateError
from tests.e2e.runtime_fixtures import (  # noqa: F401 - fixtures
    CLOCK_SCALE,
    SECRET,
    EventLog,
    link,
    module_events,
    module_simulator,
    started_runtime,
)
from tests.e2e.stack import browser_pids
from workers.browser import BrowserRuntime
from workers.whatsapp.sessions import SessionManager

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def runtime() -> Iterator[BrowserRuntime]:
    with started_runtime() as rt:
        yield rt


@pytest.fixture(scope="module")
def manager(runtime, simulator, events, tmp_path_factory) -> Iterator[SessionManager]:
    server, _ = simulator
    mgr = SessionManager(
        runtime,
        tmp_path_factory.mktemp("sessions"),
        server.url,
        events,
        qr_max_rotations=5,
        crash_restart_limit=3,
        login_state_keys=[SECRET],
    )
    try:
        yield mgr
    finally:
        mgr.close_all()


def _browser_processes(mgr: SessionManager, sid: str) -> int:
    """How many Chromium *browser* processes run this session's profile."""
    return sum(
        1 for profile in browser_pids(mgr.sessions_dir).values() if profile == str(mgr.profile_dir(sid))
    )


def _wait_status(mgr: SessionManager, sid: str, status: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = mgr.status(sid)
        if st and st["status"] == status:
            return st
        time.sleep(0.1)
    raise AssertionError(f"{sid} not {status} within {timeout}s: {mgr.status(sid)}")


@pytest.fixture(scope="module")
def linked(manager, simulator, events):
    """Session 'alpha' linked by a scan, plus its login-state archive."""
    _, control = simulator
    mark = events.mark()
    manager.start("alpha")
    qr = events.wait_for("alpha", "qr", mark)
    assert qr["rotation"] == 1
    assert qr["qr"] == control.current_ref()
    assert manager.status("alpha")["status"] == "qrcode"
    control.scan(qr["qr"], phone="5511999990001", push_name="Alpha")
    events.wait_for("alpha", "authenticated", mark)
    ready = events.wait_for("alpha", "ready", mark)
    assert ready == {"phone_number": "5511999990001", "push_name": "Alpha"}
    names = events.names("alpha")
    assert names[names.index("connecting") :][:4] == ["connecting", "qr", "authenticated", "ready"]
    blob = manager.snapshot("alpha")
    return "alpha", "5511999990001", blob


def test_scan_links_session(manager, linked):
    sid, phone, blob = linked
    st = manager.status(sid)
    assert st["status"] == "connected" and st["phone_number"] == phone
    assert st["push_name"] == "Alpha" and st["qr"] is None
    assert sid in manager.live_ids()
    assert blob[:4] == b"ZHLS"


def test_restore_on_second_worker_without_scan(manager, linked, events):
    _, phone, blob = linked
    mark = events.mark()
    manager.start("beta", login_state=blob)
    ready = events.wait_for("beta", "ready", mark)
    assert ready["phone_number"] == phone
    seen = [n for s, n, _ in events.items[mark:] if s == "beta"]
    assert seen == ["connecting", "authenticated", "ready"]  # no QR on the way
    manager.start("beta", login_state=blob)  # idempotent: already live
    assert [n for s, n, _ in events.items[mark:] if s == "beta"] == seen


def test_restart_restores_from_archive(manager, linked, events):
    _, phone, blob = linked
    profile = manager.profile_dir("beta")
    marker = profile / "marker-from-before"
    marker.write_text("x")
    mark = events.mark()
    manager.restart("beta", login_state=blob)
    assert not marker.exists()  # local folder was cleared
    assert events.wait_for("beta", "ready", mark)["phone_number"] == phone
    assert "qr" not in [n for s, n, _ in events.items[mark:] if s == "beta"]


def test_killed_browser_recovers_by_itself(manager, linked, events):
    sid, phone, _ = linked
    pid = manager.browser_pid(sid)
    assert pid
    mark = events.mark()
    os.kill(pid, signal.SIGKILL)
    events.wait_for(sid, "connecting", mark)
    assert events.wait_for(sid, "ready", mark)["phone_number"] == phone
    assert manager.browser_pid(sid) not in (None, pid)
    assert "disconnected" not in [n for s, n, _ in events.items[mark:] if s == sid]


def test_twenty_concurrent_restarts(manager, linked, events):
    _, phone, blob = linked
    sid = "beta"
    errors: list[BaseException] = []

    def hit() -> None:
        try:
            manager.restart(sid, login_state=blob)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=hit) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    assert not errors
    assert manager.live_ids().count(sid) == 1
    st = _wait_status(manager, sid, "connected")
    assert _browser_processes(manager, sid) == 1
    manager.flush_events()
    deadline = time.monotonic() + 15
    while manager.status(sid)["phone_number"] != phone and time.monotonic() < deadline:
        time.sleep(0.1)
    assert manager.status(sid)["phone_number"] == phone, st


def test_stop_is_idempotent(manager, linked, events):
    mark = events.mark()
    manager.stop("beta")
    manager.stop("beta")
    manager.flush_events()
    assert [(n, p) for s, n, p in events.items[mark:] if s == "beta"] == [
        ("disconnected", {"reason": "stopped"})
    ]
    assert "beta" not in manager.live_ids()
    assert _browser_processes(manager, "beta") == 0
    manager.remove_local("beta")
    assert not manager.profile_dir("beta").exists()
    assert manager.status("beta") is None


def test_logout_from_phone(manager, simulator, events):
    _, control = simulator
    link(manager, control, events, "gamma", "5511999990002")
    mark = events.mark()
    control.logout("5511999990002")
    assert events.wait_for("gamma", "disconnected", mark) == {"reason": "logout"}
    _wait_status(manager, "gamma", "disconnected")
    deadline = time.monotonic() + 10
    while "gamma" in manager.live_ids() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "gamma" not in manager.live_ids()


def test_conflict_stops_session(manager, simulator, events):
    _, control = simulator
    link(manager, control, events, "delta", "5511999990003")
    mark = events.mark()
    control.conflict("5511999990003")
    assert events.wait_for("delta", "disconnected", mark) == {"reason": "conflict"}
    deadline = time.monotonic() + 10
    while "delta" in manager.live_ids() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "delta" not in manager.live_ids()
    assert control.device("5511999990003")["conflict"]  # we did not click "Use here"


def test_offline_banner_keeps_status(manager, simulator, events, caplog):
    _, control = simulator
    link(manager, control, events, "eps", "5511999990004")
    mark = events.mark()
    control.offline(True)
    try:
        time.sleep(2.5)
        assert manager.status("eps")["status"] == "connected"
    finally:
        control.offline(False)
    manager.flush_events()
    assert [n for s, n, _ in events.items[mark:] if s == "eps"] == []
    manager.stop("eps")


def test_qr_timeout_after_max_rotations(runtime, simulator, tmp_path):
    server, control = simulator
    log = EventLog()
    mgr = SessionManager(runtime, tmp_path, server.url, log, qr_max_rotations=2, login_state_keys=[SECRET])
    control.clock(40)  # first ref 1.5 s, then 0.5 s each
    try:
        mgr.start("zeta")
        assert log.wait_for("zeta", "disconnected", timeout=30) == {"reason": "qr timeout"}
        qrs = [p for s, n, p in log.items if n == "qr"]
        assert [q["rotation"] for q in qrs] == [1, 2]
        assert len({q["qr"] for q in qrs}) == 2
        deadline = time.monotonic() + 10
        while mgr.live_ids() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert mgr.live_ids() == []
        assert _browser_processes(mgr, "zeta") == 0

        # More allowed rotations than the site issues: the idle "reload" state ends it.
        mgr2 = SessionManager(
            runtime, tmp_path / "b", server.url, log, qr_max_rotations=50, login_state_keys=[SECRET]
        )
        mark = log.mark()
        mgr2.start("eta")
        assert log.wait_for("eta", "disconnected", mark, timeout=30) == {"reason": "qr timeout"}
        assert len([n for s, n, _ in log.items if s == "eta" and n == "qr"]) == 6
        mgr2.close_all()
    finally:
        control.clock(CLOCK_SCALE)
        mgr.close_all()


def test_corrupt_archive_raises(manager, linked):
    _, _, blob = linked
    with pytest.raises(LoginStateError, match="bad magic"):
        manager.start("theta", login_state=b"garbage-garbage-garbage-garbage-garbage-xx")
    tampered = blob[:-3] + bytes([blob[-3] ^ 0xFF]) + blob[-2:]
    with pytest.raises(LoginStateError, match="checksum mismatch"):
        manager.start("theta", login_state=tampered)
    st = manager.status("theta")
    assert st["status"] == "error" and "checksum" in st["last_error"]
    assert "theta" not in manager.live_ids()
    with pytest.raises(LoginStateError, match="checksum mismatch"):
        manager.restart("alpha", login_state=tampered)
    assert "alpha" in manager.live_ids()  # a bad archive does not tear a session down


def test_invalid_session_id_rejected(manager):
    for bad in ("../etc", "a/b", "", "x" * 65, "with space"):
        with pytest.raises(ValueError):
            manager.start(bad)


def test_repeated_start_failures_give_auth_failure(manager, events):
    sid = "iota"
    mark = events.mark()
    manager.start(sid)
    events.wait_for(sid, "qr", mark)
    profile = manager.profile_dir(sid)
    pid = manager.browser_pid(sid)
    os.kill(pid, signal.SIGKILL)
    # Make every relaunch fail: the profile path becomes a plain file. The dying
    # browser's children may still recreate the folder for a moment: move it again.
    for attempt in range(50):
        if profile.is_dir():
            profile.rename(profile.with_name(f"iota-moved-{attempt}"))
        try:
            profile.write_text("not a folder")
            break
        except IsADirectoryError:
            time.sleep(0.01)
    assert profile.is_file()
    payload = events.wait_for(sid, "auth_failure", mark, timeout=30)
    assert payload == {"reason": "repeated start failures"}
    seen = [n for s, n, _ in events.items[mark:] if s == sid]
    assert seen.count("connecting") == 1 + manager.crash_restart_limit
    st = manager.status(sid)
    assert st["status"] == "error" and st["last_error"] == "repeated start failures"
    assert sid not in manager.live_ids()
    profile.unlink()


def test_events_delivered_off_loop_in_order(manager, events):
    manager.flush_events()
    assert events.threads == {"wa-events"}
    alpha = [n for s, n, _ in events.items if s == "alpha"]
    assert alpha[:4] == ["connecting", "qr", "authenticated", "ready"]
