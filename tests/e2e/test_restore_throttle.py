"""Restoring many sessions a few at a time, and lazy sessions, on the real stack.

Real worker processes drive Chromium against the simulator. The throttle test watches
``/proc`` while a worker restores 10 stored sessions and counts the Chromiums still
coming up; the lazy test follows one lazy session through boot, a send, an idle close,
a message that waits on the phone, and the beat's wake.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from shared.models import WhatsappSession
from shared.uow import UnitOfWork
from tests.e2e.stack import Beat, browser_pids, wait_until
from tests.e2e.test_messages_e2e import all_messages

pytestmark = [pytest.mark.e2e]

SESSIONS = 10
SLOTS = 3
PHONES = [f"55119777700{i:02d}" for i in range(SESSIONS)]
LAZY_PHONE = "5511966660001"
CONTACT = "5511955550001"
FAST_SENDS = {"SEND_RATE_PER_MINUTE": "6000", "SEND_JITTER_SECONDS": "0"}


def link_many(api, sim, names: list[str], phones: list[str], config: dict | None = None) -> None:
    """Create the sessions at once and scan each QR with its own phone, as each shows one."""
    sim.clock(1.0)  # real QR lifetimes: ten Chromiums on a small machine come up slowly
    body = {"config": config} if config else {}
    for name in names:
        api.call("post", "/session", 202, json={"name": name, **body})
    waiting = dict(zip(names, phones, strict=True))

    def scan_ready() -> bool:
        for name, phone in list(waiting.items()):
            qr_text = (
                api.session(name)["status"] == "QRCODE"
                and api.call("get", f"/session/{name}/qr", 200).get_json()["qr_code"]
            )
            if qr_text:
                sim.scan(qr_text, phone=phone, push_name=name)
                del waiting[name]
        return not waiting

    wait_until(scan_ready, 120, interval=0.5, message="every session to show its QR")
    for name, phone in zip(names, phones, strict=True):
        api.wait_status(name, "CONNECTED", timeout=90, phone_number=phone)
        wait_until(lambda n=name: api.session(n)["has_login_state"], 60, message=f"{name} login state saved")


def statuses(settings) -> dict[str, str]:
    """Session id → database status."""
    with UnitOfWork(settings) as uow:
        return dict(uow.db.execute(select(WhatsappSession.id, WhatsappSession.status)).all())


class LaunchSampler(threading.Thread):
    """Samples, every ~50 ms, the Chromiums of a worker whose session is not CONNECTED yet.

    Processes are read first and the database second: a launch the sampler sees began
    after its slot's previous session was committed CONNECTED, so that session is never
    miscounted as still coming up.
    """

    def __init__(self, settings, sessions_dir: Path) -> None:
        super().__init__(daemon=True)
        self.settings, self.sessions_dir = settings, sessions_dir
        self.samples: list[tuple[int, int]] = []  # (browsers, launches in flight)
        self.peak: tuple[int, set[str]] = (0, set())
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            running = {Path(folder).name for folder in browser_pids(self.sessions_dir).values()}
            connected = {sid for sid, status in statuses(self.settings).items() if status == "CONNECTED"}
            launching = running - connected
            self.samples.append((len(running), len(launching)))
            if len(launching) > self.peak[0]:
                self.peak = (len(launching), launching)
            time.sleep(0.05)


def test_ten_sessions_restore_three_at_a_time_and_all_come_back(api, sim, settings, start_worker):
    first = start_worker("w1")
    names = [f"loja{i}" for i in range(SESSIONS)]
    link_many(api, sim, names, PHONES)
    first.terminate()  # graceful: every login state saved, every browser closed
    assert first.browsers() == {}
    assert set(statuses(settings).values()) == {"DISCONNECTED"}
    scans = len(sim.state()["devices"])

    sampler = LaunchSampler(settings, first.sessions_dir)
    sampler.start()
    began = time.monotonic()
    worker = start_worker("w1", env={"RESTORE_CONCURRENCY": str(SLOTS), "RESTORE_JITTER_SECONDS": "0.2"})
    try:
        for name, phone in zip(names, PHONES, strict=True):
            api.wait_status(name, "CONNECTED", timeout=150, phone_number=phone)
        took = time.monotonic() - began
    finally:
        sampler.done.set()
        sampler.join()
    assert len(worker.browsers()) == SESSIONS
    launching = [n for _, n in sampler.samples]
    assert max(launching) >= 1, "the sampler never saw a restore in flight"
    assert sampler.peak[0] <= SLOTS, f"{sampler.peak[0]} launches in flight at once: {sampler.peak[1]}"
    assert len(sim.state()["devices"]) == scans  # restored, not linked again
    log = wait_until(
        lambda: (
            (text := worker.log_path.read_text(errors="replace"))
            and f"{SESSIONS} restored in" in text
            and text
        ),
        30,
        message="the reconcile's restore report in the worker log",
    )
    assert log.count("restore took") >= SESSIONS
    print(f"\n10 sessions restored with K={SLOTS} in {took:.1f}s; peak in flight {max(launching)}")


def lazy_row(settings, name: str) -> WhatsappSession:
    with UnitOfWork(settings) as uow:
        return uow.db.scalars(select(WhatsappSession).where(WhatsappSession.name == name)).one()


def test_a_lazy_session_opens_for_a_send_closes_when_idle_and_collects_what_waited(
    api, sim, settings, start_worker, tmp_path
):
    env = {**FAST_SENDS, "LAZY_IDLE_SECONDS": "4"}
    first = start_worker("w1", env=env)
    link_many(api, sim, ["balcao"], [LAZY_PHONE], config={"lazy": True})

    # Idle: closed again, login state saved first, DISCONNECTED with no error.
    closed = api.wait_status("balcao", "DISCONNECTED", timeout=30)
    assert closed["last_error"] is None and closed["has_login_state"]
    wait_until(
        lambda: (
            "lazy session closed after" in (text := first.log_path.read_text(errors="replace"))
            and "idle (login state saved)" in text
        ),
        10,
        message="the idle close, login state saved, in the worker log",
    )
    wait_until(lambda: first.browsers() == {}, 15, message="the idle lazy session's browser to close")

    # A worker start does not open it.
    first.terminate()
    worker = start_worker("w1", env=env)
    wait_until(lambda: "ready on" in worker.log_path.read_text(errors="replace"), 30, message="worker ready")
    time.sleep(3)  # more than a reconcile round (SYNC_INTERVAL=2)
    assert worker.browsers() == {}
    assert api.session("balcao")["status"] == "DISCONNECTED"

    # A send opens it, and the message goes out.
    sent = api.call(
        "post", "/session/balcao/messages", 202, json={"to": CONTACT, "text": "bom dia"}
    ).get_json()
    message_id = sent["message"]["id"]
    wait_until(
        lambda: (
            api.call("get", f"/session/balcao/messages/{message_id}", 200).get_json()["send_state"] == "sent"
        ),
        60,
        message="the lazy session's message sent",
    )
    assert [m["body"] for m in sim.sent(LAZY_PHONE)] == ["bom dia"]
    assert len(worker.browsers()) == 1
    saved_before = lazy_row(settings, "balcao").auth_state_updated_at

    # Idle again: closed, login state saved.
    api.wait_status("balcao", "DISCONNECTED", timeout=30)
    wait_until(lambda: worker.browsers() == {}, 15, message="the lazy session's browser to close again")
    assert lazy_row(settings, "balcao").auth_state_updated_at > saved_before

    # While closed, a contact's message waits on the phone; the beat's wake collects it.
    pushed = sim.message(LAZY_PHONE, CONTACT, "chegou?", name="Cliente")
    time.sleep(2)
    assert all_messages(api, "balcao", direction="in") == []  # nothing live while closed
    beat = Beat(settings, tmp_path, env={"LAZY_WAKE_INTERVAL": "3"})
    beat.start()
    try:
        stored = wait_until(
            lambda: all_messages(api, "balcao", direction="in"),
            60,
            interval=0.5,
            message="the waiting message",
        )
    finally:
        beat.stop()
    assert [m["body"] for m in stored] == ["chegou?"]
    assert stored[0]["wa_message_id"].endswith(pushed["id"])
    # And it closes again when idle.
    api.wait_status("balcao", "DISCONNECTED", timeout=30)
    wait_until(lambda: worker.browsers() == {}, 15, message="the woken session's browser to close")
    assert len(sim.state()["devices"]) == 1  # never linked again
