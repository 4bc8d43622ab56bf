"""A worker killed in the middle of a send: every message ends sent once, or ERROR with a reason."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest
from sqlalchemy import select

from shared.config import set_settings
from shared.models import Message
from shared.uow import UnitOfWork
from tests.e2e.stack import wait_until
from tests.e2e.test_session_life import PHONE, link_session

pytestmark = [pytest.mark.e2e]

SENDS = 30
WORKER = {"SEND_RATE_PER_MINUTE": "6000", "SEND_JITTER_SECONDS": "0", "JOB_REPUBLISH_SECONDS": "2"}


@pytest.fixture
def settings(settings):
    """Sync runs several times in a row here: no coalescing of requests."""
    quick = settings.with_overrides(MAINTENANCE_COALESCE_SECONDS=0.0)
    set_settings(quick)
    return quick


def send_states(settings, session_id: str) -> dict[str, str]:
    with UnitOfWork(settings) as uow:
        rows = uow.db.execute(
            select(Message.body, Message.send_state).where(
                Message.session_id == session_id, Message.direction == "out"
            )
        )
        return dict(rows.all())


def freeze_mid_send(worker, settings, session_id: str, timeout: float = 30) -> str:
    """SIGSTOP the worker (and its browser) at a moment one message is ``sending``; its body."""
    group = os.getpgid(worker.process.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = send_states(settings, session_id)
        if "sending" in states.values():
            os.killpg(group, signal.SIGSTOP)
            browsers = list(worker.browsers())
            for pid in browsers:
                os.kill(pid, signal.SIGSTOP)
            frozen = [body for body, state in send_states(settings, session_id).items() if state == "sending"]
            if frozen:
                return frozen[0]
            for pid in browsers:
                os.kill(pid, signal.SIGCONT)
            os.killpg(group, signal.SIGCONT)
        time.sleep(0.005)
    raise AssertionError(
        f"no send caught in progress; states: {Counter(send_states(settings, session_id).values())}"
    )


def settled_on_survivor(api, owner: str, message_id: str) -> dict:
    """After ``owner`` died: wait for its lease to expire, then sync until the message ends."""
    survivor = "w2" if owner == "w1" else "w1"
    wait_until(
        lambda: api.call("get", "/health").get_json()["workers"] == [survivor],
        20,
        message=f"{owner}'s lease to expire",
    )

    def settled() -> dict | None:
        job = api.call("post", "/session/sync", 202).get_json()
        api.wait_job(job["id"])
        message = api.call("get", f"/session/vendas/messages/{message_id}", 200).get_json()
        return message if message["send_state"] in ("sent", "failed") else None

    return wait_until(settled, 90, interval=1.0, message="the message sent or failed")


def kill_the_page(worker) -> None:
    """SIGKILL the worker and wait until its page is surely dead.

    The simulator goes back online right after: a renderer that outlived its browser by
    a moment would hand the message over itself.
    """
    worker.kill()
    wait_until(lambda: not worker.browsers(), 10, message="the dead worker's browsers gone")
    time.sleep(1)


def test_a_worker_killed_mid_send_never_sends_a_message_twice(api, sim, start_worker, settings):
    workers = {w: start_worker(w, env=WORKER) for w in ("w1", "w2")}
    session = link_session(api, sim, "vendas")
    owner = session["worker_id"]
    bodies = [f"pedido {i}" for i in range(SENDS)]
    messages = {}
    for body in bodies:
        queued = api.call("post", "/session/vendas/messages", 202, json={"to": "5511977770001", "text": body})
        messages[body] = queued.get_json()["message"]["id"]

    in_flight = freeze_mid_send(workers[owner], settings, session["id"])
    workers[owner].kill()  # SIGKILL while the message is ``sending``: no result was written

    survivor = "w2" if owner == "w1" else "w1"
    wait_until(
        lambda: api.call("get", "/health").get_json()["workers"] == [survivor],
        20,
        message=f"{owner}'s lease to expire",
    )

    def settled() -> dict[str, str] | None:
        job = api.call("post", "/session/sync", 202).get_json()
        api.wait_job(job["id"])
        states = send_states(settings, session["id"])
        return states if set(states.values()) <= {"sent", "failed"} else None

    states = wait_until(settled, 90, interval=1.0, message="every message sent or failed")
    api.wait_status("vendas", "CONNECTED", worker_id=survivor)

    on_phone = Counter(m["body"] for m in sim.sent(PHONE))
    twice = [body for body, n in on_phone.items() if n > 1]
    assert twice == []
    for body in bodies:
        message = api.call("get", f"/session/vendas/messages/{messages[body]}", 200).get_json()
        if message["send_state"] == "sent":
            assert on_phone[body] == 1, body
            assert message["ack"] != "ERROR"
        else:
            assert states[body] == "failed" and message["ack"] == "ERROR" and message["error"], message
            assert on_phone[body] == 0, body
    assert states[in_flight] in ("sent", "failed")
    # Sends of a session leave in order, across the move.
    sent_order = [m["body"] for m in sim.sent(PHONE)]
    assert sent_order == [b for b in bodies if b in on_phone]


def test_a_send_that_never_reached_whatsapp_is_sent_once_by_the_new_owner(api, sim, start_worker, settings):
    workers = {w: start_worker(w, env=WORKER) for w in ("w1", "w2")}
    session = link_session(api, sim, "vendas")
    owner = session["worker_id"]
    sim.offline(True)  # the page keeps the message PENDING and retries: it stays ``sending``
    try:
        queued = api.call("post", "/session/vendas/messages", 202, json={"to": "5511977770001", "text": "oi"})
        wait_until(
            lambda: send_states(settings, session["id"]).get("oi") == "sending",
            20,
            interval=0.05,
            message="the send to be in progress",
        )
        kill_the_page(workers[owner])  # the page dies with the message: WhatsApp never got it
    finally:
        sim.offline(False)
    assert sim.sent(PHONE) == []

    message = settled_on_survivor(api, owner, queued.get_json()["message"]["id"])
    assert message["send_state"] == "sent", message
    [on_phone] = sim.sent(PHONE)
    assert on_phone["body"] == "oi" and on_phone["id"] == message["wa_message_id"].rsplit("_", 1)[-1]
    time.sleep(1)
    assert len(sim.sent(PHONE)) == 1


def test_a_send_still_pending_in_the_page_when_its_worker_dies_is_sent_once(api, sim, start_worker, settings):
    # The page waits 1 s for WhatsApp's answer, then the message goes on PENDING inside it.
    env = {**WORKER, "SEND_TIMEOUT": "4"}
    workers = {w: start_worker(w, env=env) for w in ("w1", "w2")}
    session = link_session(api, sim, "vendas")
    owner = session["worker_id"]
    sim.offline(True)
    try:
        queued = api.call("post", "/session/vendas/messages", 202, json={"to": "5511977770001", "text": "oi"})
        message_id = queued.get_json()["message"]["id"]
        time.sleep(6)  # the send job is long past the page's wait
        held = api.call("get", f"/session/vendas/messages/{message_id}", 200).get_json()
        assert held["ack"] == "PENDING" and held["send_state"] != "sent", held
        kill_the_page(workers[owner])  # the page dies with the message: WhatsApp never got it
    finally:
        sim.offline(False)
    assert sim.sent(PHONE) == []

    message = settled_on_survivor(api, owner, message_id)
    assert message["send_state"] == "sent" and message["ack"] == "SERVER", message
    assert [m["body"] for m in sim.sent(PHONE)] == ["oi"]
