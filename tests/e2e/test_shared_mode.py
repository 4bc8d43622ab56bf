"""E2E tests of BROWSER_MODE=shared in the session manager: real Chromium + the simulator.

Sessions live in non-persistent contexts of shared browsers (two sessions per browser
here, so groups and new launches show up with few sessions); their login moves as
portable archives. No database, no Celery: events come from the ``on_event`` callback.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from shared import login_state
from shared.login_state import LoginStateError
from tests.e2e.runtime_fixtures import (  # noqa: F401 - fixtures
    SECRET,
    link,
    module_events,
    module_simulator,
    started_runtime,
)
from tests.e2e.stack import browser_pids
from workers.browser import BrowserRuntime
from workers.whatsapp import messaging
from workers.whatsapp.sessions import SessionManager

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

PER_BROWSER = 2
WID_JS = "() => localStorage.getItem('last-wid-md')"


@pytest.fixture(scope="module")
def sessions_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("sessions")


@pytest.fixture(scope="module")
def runtime(sessions_dir) -> Iterator[BrowserRuntime]:
    with started_runtime(
        sessions_per_browser=PER_BROWSER, shared_dir=sessions_dir / ".shared-browsers"
    ) as rt:
        yield rt


def _manager(runtime, url, events, sessions_dir, mode: str) -> SessionManager:
    return SessionManager(
        runtime,
        sessions_dir,
        url,
        events,
        qr_max_rotations=5,
        crash_restart_limit=3,
        login_state_keys=[SECRET],
        browser_mode=mode,
    )


@pytest.fixture(scope="module")
def manager(runtime, simulator, events, sessions_dir) -> Iterator[SessionManager]:
    mgr = _manager(runtime, simulator[0].url, events, sessions_dir, "shared")
    try:
        yield mgr
    finally:
        mgr.close_all()


@pytest.fixture(scope="module")
def profile_manager(runtime, simulator, events, tmp_path_factory) -> Iterator[SessionManager]:
    """A profile-mode manager on the same runtime: the other side of a mode switch."""
    mgr = _manager(runtime, simulator[0].url, events, tmp_path_factory.mktemp("profiles"), "profile")
    try:
        yield mgr
    finally:
        mgr.close_all()


def _shared_browsers(sessions_dir) -> dict[int, str]:
    return browser_pids(sessions_dir / ".shared-browsers")


def _since(events, sid: str, mark: int) -> list[str]:
    return [n for s, n, _ in events.items[mark:] if s == sid]


def _page(manager: SessionManager, sid: str):
    return manager._sessions[sid].page


def _evaluate(manager: SessionManager, sid: str, js: str):
    return manager.runtime.submit(_page(manager, sid).evaluate(js), 10)


@pytest.fixture(scope="module")
def pair(manager, simulator, events):
    """Two phones linked in one shared browser: ('s1', phone1, archive1), ('s2', phone2, archive2)."""
    _, control = simulator
    out = []
    for sid, phone in (("s1", "5511988880001"), ("s2", "5511988880002")):
        link(manager, control, events, sid, phone)
        out.append((sid, phone, manager.snapshot(sid)))
    return out


def test_two_sessions_share_one_browser(manager, pair, sessions_dir):
    assert manager.runtime.pool.group_sizes() == [2]
    assert len(_shared_browsers(sessions_dir)) == 1
    assert not any((sessions_dir / sid).exists() for sid, _, _ in pair)  # no profile folders
    for _, _, blob in pair:
        assert login_state.kind_of(blob) == "portable"


def test_isolation_of_storage_and_bindings(manager, pair, events):
    (s1, phone1, _), (s2, phone2, _) = pair
    assert phone1 in _evaluate(manager, s1, WID_JS)
    assert phone2 in _evaluate(manager, s2, WID_JS)
    # A cookie and a storage key written in one context are invisible in the other.
    _evaluate(manager, s1, "() => { document.cookie = 'only=s1'; localStorage.setItem('only', 's1'); }")
    assert "only=s1" not in _evaluate(manager, s2, "() => document.cookie")
    assert _evaluate(manager, s2, "() => localStorage.getItem('only')") is None
    # A binding call in s1's page reaches s1's session only.
    mark = events.mark()
    ack = {"wa_id": "true_5511900000009@c.us_ISOLATION", "chat_id": "5511900000009@c.us", "ack": 2}
    _evaluate(manager, s1, f"() => window[{messaging.BINDING!r}]('message_ack', {ack!r})")
    assert events.wait_for(s1, "message_ack", mark)["wa_id"] == ack["wa_id"]
    manager.flush_events()
    assert all(s != s2 for s, _, _ in events.items[mark:])


def test_restore_portable_archive_without_scan(manager, pair, events):
    _, phone, blob = pair[0]
    mark = events.mark()
    manager.start("s3", login_state=blob)
    assert events.wait_for("s3", "ready", mark, timeout=60)["phone_number"] == phone
    assert "qr" not in _since(events, "s3", mark)
    assert manager.runtime.pool.group_sizes() == [2, 1]  # a second browser for the third session


def test_second_generation_restart_without_scan(manager, pair, events):
    _, phone, _ = pair[0]
    blob = manager.snapshot("s3")  # a dump of the restored context
    mark = events.mark()
    manager.restart("s3", login_state=blob)
    assert events.wait_for("s3", "ready", mark, timeout=60)["phone_number"] == phone
    assert "qr" not in _since(events, "s3", mark)


def test_page_crash_restarts_its_one_session(manager, pair, events):
    _, phone, _ = pair[0]
    mark = events.mark()
    manager.runtime.spawn(_page(manager, "s3").goto("chrome://crash"))
    events.wait_for("s3", "connecting", mark, timeout=30)
    assert events.wait_for("s3", "ready", mark, timeout=60)["phone_number"] == phone
    assert "qr" not in _since(events, "s3", mark)
    assert not [n for s, n, _ in events.items[mark:] if s in ("s1", "s2") and n == "connecting"]


def test_killed_shared_browser_restarts_its_group(manager, pair, events, sessions_dir):
    # s1 and s2 share the first browser: kill it, both come back from their latest dumps.
    victim = manager.runtime.pool.browser_of(manager._sessions["s1"].context)
    assert victim is manager.runtime.pool.browser_of(manager._sessions["s2"].context)
    before = set(_shared_browsers(sessions_dir))
    mark = events.mark()
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    for sid, phone, _ in pair:
        assert events.wait_for(sid, "ready", mark, timeout=90)["phone_number"] == phone
        assert "qr" not in _since(events, sid, mark)
    assert "disconnected" not in _since(events, "s1", mark)
    assert not before & set(_shared_browsers(sessions_dir))


def test_corrupt_archive_is_an_error(manager, pair):
    _, _, blob = pair[0]
    bad = blob[:-10] + bytes(10)
    with pytest.raises(LoginStateError):
        manager.start("s4", login_state=bad)
    st = manager.status("s4")
    assert st["status"] == "error" and st["last_error"]
    assert not st["live"]


def test_profile_to_shared_to_profile_without_scan(manager, profile_manager, simulator, events):
    _, control = simulator
    phone = "5511988880005"
    link(profile_manager, control, events, "m1", phone)
    profile_blob = profile_manager.snapshot("m1")
    assert login_state.kind_of(profile_blob) == "profile"
    profile_manager.stop("m1")
    # profile -> shared: converted once through a throwaway persistent profile.
    mark = events.mark()
    manager.start("m1", login_state=profile_blob)
    assert events.wait_for("m1", "ready", mark, timeout=90)["phone_number"] == phone
    assert "qr" not in _since(events, "m1", mark)
    portable_blob = manager.snapshot("m1")
    assert login_state.kind_of(portable_blob) == "portable"
    manager.stop("m1")
    # shared -> profile: restored once into a fresh profile, which then keeps it.
    profile_manager.remove_local("m1")
    mark = events.mark()
    profile_manager.start("m1", login_state=portable_blob, profile_tag="7")
    assert events.wait_for("m1", "ready", mark, timeout=90)["phone_number"] == phone
    assert "qr" not in _since(events, "m1", mark)
    time.sleep(1)  # let the restored storage reach the profile before the close flushes it
    mark = events.mark()
    profile_manager.restart("m1", profile_tag="7")  # the profile folder itself, no archive
    assert events.wait_for("m1", "ready", mark, timeout=90)["phone_number"] == phone
    assert "qr" not in _since(events, "m1", mark)


def test_generated_key_is_refused_and_falls_back_to_profile(manager, simulator, events):
    _, control = simulator
    control.key_mode("generate")
    try:
        link(manager, control, events, "g1", "5511988880007")
    finally:
        control.key_mode("import")
    mark = events.mark()
    with pytest.raises(LoginStateError, match="(?i)key"):
        manager.snapshot("g1")
    refusal = events.wait_for("g1", "not_portable", mark)
    assert refusal["reason"] == manager.status("g1")["last_error"]
    assert manager.status("g1")["status"] == "connected"  # still running, flagged
    # Its next start takes the profile route: a persistent profile folder of its own.
    manager.restart("g1")
    events.wait_for("g1", "qr", mark, timeout=60)  # nothing portable was stored: a new scan
    assert manager.browser_pid("g1") is not None


def test_storage_writes_make_one_debounced_snapshot_event(manager, pair, events):
    sid = pair[1][0]
    s = manager._sessions[sid]
    mark = events.mark()
    for _ in range(3):  # a burst of writes, as the driver's hook reports them
        manager.runtime.loop.call_soon_threadsafe(manager._storage_written, s)
    events.wait_for(sid, "storage_written", mark, timeout=10)
    time.sleep(1.5)  # any second event of the same burst would be due by now
    manager.flush_events()
    assert _since(events, sid, mark).count("storage_written") == 1


def test_profile_linked_before_key_capture_moves_with_its_key_read_from_disk(
    manager, profile_manager, simulator, events
):
    _, control = simulator
    phone = "5511988880009"
    link(profile_manager, control, events, "old1", phone)
    profile_manager.stop("old1")
    # An archive as the version before key capture made them: storage only, no key records.
    blob = login_state.pack(profile_manager.profile_dir("old1"), [SECRET])
    assert login_state.read_keys(blob, [SECRET]) == []
    mark = events.mark()
    manager.start("old1", login_state=blob)
    # The key comes from the profile's on-disk IndexedDB (workers.whatsapp.profile_keys).
    assert events.wait_for("old1", "ready", mark, timeout=60)["phone_number"] == phone
    seen = _since(events, "old1", mark)
    assert "qr" not in seen and "not_portable" not in seen
    assert manager.browser_pid("old1") is None  # a context of a shared Chromium, no profile of its own
