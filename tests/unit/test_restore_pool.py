"""The restore pool: at most K starts in flight, one restore per session, durations reported."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from shared.config import Settings
from workers import restore
from workers.whatsapp.sessions import SessionManager


class FakeManager:
    """Starts take a while and count how many overlap; status turns connected after the start."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.started: list[str] = []
        self.states: dict[str, dict] = {}

    def start(self, session_id, login_state, timeout, profile_tag) -> None:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.started.append(session_id)
            self.states[session_id] = {"status": "connecting", "live": True}
        time.sleep(0.05)
        with self.lock:
            self.states[session_id] = {"status": "connected", "live": True}
            self.running -= 1

    def status(self, session_id):
        with self.lock:
            return self.states.get(session_id)

    def wait_status(self, session_id, wanted, timeout):
        give_up = time.monotonic() + timeout
        while True:
            status = (self.status(session_id) or {}).get("status")
            if status in wanted or time.monotonic() >= give_up:
                return status
            time.sleep(0.01)

    def flush_events(self) -> bool:
        return True


@pytest.fixture
def ctx(monkeypatch):
    monkeypatch.setattr(restore.session_events, "session_snapshot", lambda uow, sid: None)
    monkeypatch.setattr(restore.session_events, "load_login_state", lambda uow, sid: b"")
    settings = Settings(RESTORE_CONCURRENCY=3, RESTORE_JITTER_SECONDS=0.01, BROWSER_TIMEOUT=5)
    adopted: dict[str, int] = {}
    return SimpleNamespace(
        settings=settings,
        manager=FakeManager(),
        uow=lambda: None,
        adopt=adopted.__setitem__,
        adopted=adopted,
        touch=lambda sid: None,
        stopping=False,
        worker_id="w1",
        token="t",
    )


def test_at_most_k_at_once_and_every_duration_reported(ctx):
    pool = restore.Restorer(ctx)
    result = pool.restore_all([(f"s{i}", 7) for i in range(10)])
    assert ctx.manager.peak <= 3 and ctx.manager.peak >= 2
    assert result["restored"] == 10 and result["failed"] == 0
    assert sorted(result["durations"]) == sorted(f"s{i}" for i in range(10))
    assert result["wall_seconds"] >= 0.05 * 10 / 3
    assert ctx.adopted == {f"s{i}": 7 for i in range(10)}


def test_a_session_in_flight_is_not_restored_twice(ctx):
    pool = restore.Restorer(ctx)
    first, new = pool.submit("s1", 1)
    again, new_again = pool.submit("s1", 1)
    assert new and not new_again and again is first
    assert pool.in_flight("s1")
    result = pool.restore_all([("s1", 1), ("s2", 1)])  # s1 joins the running restore
    first.result(5)
    assert ctx.manager.started.count("s1") == 1
    assert set(result["durations"]) <= {"s1", "s2"} and "s2" in result["durations"]
    assert not pool.in_flight("s1")


def test_only_the_restores_that_get_a_slot_at_once_wait_the_jitter(ctx, monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(restore.random, "uniform", lambda low, high: waits.append(high) or 0.0)
    ctx.settings = ctx.settings.with_overrides(RESTORE_JITTER_SECONDS=0.5)
    pool = restore.Restorer(ctx)
    result = pool.restore_all([(f"s{i}", 1) for i in range(10)])
    assert result["restored"] == 10
    # The first three start together and are spread; the other seven follow a settled one.
    assert waits == [0.5, 0.5, 0.5]


def test_the_manager_wakes_a_waiter_on_the_status_change_itself(tmp_path):
    manager = SessionManager(SimpleNamespace(), tmp_path, "http://wa.invalid/", lambda *_: None)
    assert manager.wait_status("nobody", restore.SETTLED, 5) is None  # unknown: no wait
    session = manager._get("s1")
    manager._emit(session, "connecting", {})
    threading.Timer(0.3, manager._emit, (session, "authenticated", {})).start()
    began = time.monotonic()
    assert manager.wait_status("s1", restore.SETTLED, 5) == "connected"
    assert 0.25 <= time.monotonic() - began < 1.0
    assert manager.wait_status("s1", {"qrcode"}, 0.2) == "connected"  # timed out: the status as it is
