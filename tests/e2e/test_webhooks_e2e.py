"""Webhooks end to end: real webhook worker and beat processes, a real local receiver.

Events are written by the real services (the test process plays the session worker,
or a real one does, through the simulator); deliveries go out of ``python -m
workers.webhooks`` on the run's PostgreSQL database and Redis key prefix.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import pytest
import redis
from standardwebhooks import Webhook

from shared.config import set_settings
from shared.services import events
from shared.uow import UnitOfWork
from tests.conftest import REDIS_URL
from tests.e2e.stack import Beat, wait_until
from tests.e2e.test_session_life import link_session
from tests.integration.test_messages_store import make_linked
from tests.webhook_stack import WEBHOOK_ENV, Receiver, WebhookWorker


@pytest.fixture
def settings(settings):
    """The test process (API, event writers) may register loopback receivers too."""
    hooked = settings.with_overrides(WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8")
    set_settings(hooked)
    return hooked


@pytest.fixture
def processes():
    started: list = []
    yield started
    for process in started:
        process.kill()


@pytest.fixture
def receivers():
    opened: list[Receiver] = []
    yield opened
    for receiver in opened:
        receiver.close()


def start(processes, process):
    processes.append(process)
    return process.start()


def register(api, receiver, **body) -> dict:
    return api.call("post", "/webhooks", 201, json={"url": receiver.url, **body}).get_json()


def emit(settings, session_id: str, n: int = 1) -> list[str]:
    """Write ``n`` events for the session, one transaction each; their ids."""
    ids = []
    for index in range(n):
        with UnitOfWork(settings) as uow:
            ids.append(events.emit(uow.db, session_id, events.SESSION_QR, {"qr": f"2@{index}"}).id)
            uow.commit()
    return ids


def test_a_receiver_that_fails_three_times_gets_the_event_once(
    api, settings, tenant, tmp_path, processes, receivers
):
    receiver = Receiver(script=deque([500, 500, 500]))
    receivers.append(receiver)
    created = register(api, receiver)
    start(processes, WebhookWorker(settings, tmp_path, {"WEBHOOK_RETRY_WINDOW_SECONDS": "3"}))
    (event_id,) = emit(settings, make_linked(settings, tenant.company_id).id)
    wait_until(lambda: receiver.answered(200), 30, message="the delivery after three failures")
    time.sleep(1)  # nothing more may come
    assert [r.status for r in receiver.requests] == [500, 500, 500, 200]
    assert {r.headers["webhook-id"] for r in receiver.requests} == {event_id}
    delivered = receiver.answered(200)[0]
    assert Webhook(created["secret"]).verify(delivered.body, delivered.headers)["id"] == event_id
    page = api.call("get", f"/webhooks/{created['id']}/deliveries", 200).get_json()
    (delivery,) = page["items"]
    assert delivery["state"] == "delivered" and delivery["event"]["id"] == event_id
    assert [a["status_code"] for a in delivery["attempt_list"]] == [500, 500, 500, 200]
    assert all(a["latency_ms"] > 0 for a in delivery["attempt_list"])
    assert delivery["attempt_list"][0]["response_excerpt"] == "answered 500"


def test_an_event_dead_while_the_receiver_was_down_is_delivered_by_a_replay(
    api, settings, tenant, tmp_path, processes, receivers
):
    down = Receiver()
    down.close()  # nothing listens on its port for the whole retry window
    created = register(api, down)
    start(
        processes,
        WebhookWorker(settings, tmp_path, {"WEBHOOK_RETRY_WINDOW_SECONDS": "2", "WEBHOOK_MAX_ATTEMPTS": "4"}),
    )
    (event_id,) = emit(settings, make_linked(settings, tenant.company_id).id)

    def dead():
        return api.call("get", f"/webhooks/{created['id']}/deliveries?state=dead", 200).get_json()["items"]

    (delivery,) = wait_until(dead, 30, message="the delivery to run out of attempts")
    assert delivery["attempts"] == 4 and "refused" in delivery["last_error"]
    assert (
        len(api.call("get", f"/webhooks/{created['id']}/deliveries?state=failed", 200).get_json()["items"])
        == 1
    )
    back = Receiver(port=down.port)
    receivers.append(back)
    replayed = api.call(
        "post", f"/webhooks/{created['id']}/replay", 202, json={"event_id": event_id}
    ).get_json()
    assert replayed["queued"] == 1
    wait_until(lambda: back.ids() == {event_id}, 20, message="the replayed event")


def test_nothing_is_lost_when_the_worker_is_killed_and_redis_flushed(
    api, settings, tenant, tmp_path, processes, receivers
):
    receiver = Receiver(delay=1.0)  # slow: deliveries are in flight when the worker dies
    receivers.append(receiver)
    register(api, receiver)
    first = start(processes, WebhookWorker(settings, tmp_path, name="first"))
    session_id = make_linked(settings, tenant.company_id).id
    ids = set(emit(settings, session_id, 40))
    wait_until(lambda: len(receiver.requests) >= 3, 30, message="the first deliveries")
    first.kill()
    # Every broker key of this deployment: queued and unacknowledged delivery messages alike.
    client = redis.Redis.from_url(REDIS_URL)
    flushed = sum(client.delete(key) for key in client.scan_iter(match=f"{settings.BROKER_KEY_PREFIX}*"))
    assert flushed > 0
    received_before = len(receiver.ids())
    assert received_before < len(ids)
    start(processes, Beat(settings, tmp_path, WEBHOOK_ENV))
    start(processes, WebhookWorker(settings, tmp_path, name="second"))
    wait_until(lambda: receiver.ids() >= ids, 90, message="every event after the kill and the flush")


def test_a_thousand_events_of_ten_sessions_arrive_numbered_without_gaps(
    api, settings, tenant, tmp_path, processes, receivers
):
    receiver = Receiver()
    receivers.append(receiver)
    register(api, receiver)
    start(processes, Beat(settings, tmp_path, WEBHOOK_ENV))  # retries that wait past a countdown
    start(processes, WebhookWorker(settings, tmp_path, {"WEBHOOK_CONCURRENCY": "16"}))
    token = make_linked(settings, tenant.company_id, "s0").token
    sessions = [make_linked(settings, tenant.company_id, f"t{n}", token).id for n in range(10)]
    writers = [threading.Thread(target=emit, args=(settings, sid, 100)) for sid in sessions]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    wait_until(lambda: len(receiver.ids()) >= 1000, 120, interval=0.5, message="1,000 distinct events")
    bodies = {r.headers["webhook-id"]: r.json for r in receiver.answered(200)}
    for session_id in sessions:
        seqs = sorted(b["seq"] for b in bodies.values() if b["session"]["id"] == session_id)
        assert seqs == list(range(1, 101))
    # Sorting by (session, seq) gives each session's events in the order they were written.
    for session_id in sessions:
        mine = sorted(
            (b for b in bodies.values() if b["session"]["id"] == session_id), key=lambda b: b["seq"]
        )
        assert [b["data"]["qr"] for b in mine] == [f"2@{n}" for n in range(100)]


def test_a_real_session_reports_its_qr_and_connection(
    api, sim, start_worker, settings, tmp_path, processes, receivers
):
    receiver = Receiver()
    receivers.append(receiver)
    register(api, receiver, event_types=["session.status", "session.qr"], sessions=["vendas"])
    start(processes, WebhookWorker(settings, tmp_path))
    start_worker("w1")
    link_session(api, sim, "vendas")

    def connected():
        bodies = sorted((r.json for r in receiver.answered(200)), key=lambda b: b["seq"])
        return bodies if any(b["data"].get("status") == "CONNECTED" for b in bodies) else None

    bodies = wait_until(connected, 30, message="session.status CONNECTED at the receiver")
    assert [b["seq"] for b in bodies] == list(range(1, len(bodies) + 1))
    statuses = [b["data"]["status"] for b in bodies if b["type"] == "session.status"]
    assert statuses[-1] == "CONNECTED" and "QRCODE" in statuses
    assert any(b["type"] == "session.qr" and b["data"]["qr"] for b in bodies)
