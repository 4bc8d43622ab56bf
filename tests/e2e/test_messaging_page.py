"""E2E tests of messages inside the page: real Chromium, the simulator, the SessionManager.

No database, no Celery: ``message`` / ``message_ack`` events are collected from the
``on_event`` callback, the fake phone is driven through the simulator's control API.
One linked session ("inbox") is shared by the tests that only add messages to it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from tests.e2e.runtime_fixtures import CLOCK_SCALE, EventLog, link, session_manager
from tests.simulator import SimulatorControl, SimulatorServer
from workers.whatsapp import messaging
from workers.whatsapp.messaging import (
    ACK_DEVICE,
    ACK_ERROR,
    ACK_PENDING,
    ACK_READ,
    ACK_SERVER,
    new_message_id,
    own_message_key,
)
from workers.whatsapp.sessions import (
    ChatNotFound,
    QuotedMessageNotFound,
    SessionManager,
    SessionNotConnected,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

PHONE = "5511999990101"
ME = f"{PHONE}@c.us"
CONTACTS = [(f"55119888800{i:02d}", f"Contact {i}") for i in range(1, 6)]


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorControl]:
    server = SimulatorServer(port=0, clock_scale=CLOCK_SCALE).start()
    control = SimulatorControl(server.url)
    control.clock(CLOCK_SCALE)
    try:
        yield control
    finally:
        server.stop()


@pytest.fixture(scope="module")
def events() -> EventLog:
    return EventLog()


@pytest.fixture(scope="module")
def manager(simulator, events, tmp_path_factory) -> Iterator[SessionManager]:
    sessions = tmp_path_factory.mktemp("sessions")
    with session_manager(simulator.base_url + "/", events, sessions, crash_restart_limit=3) as mgr:
        yield mgr


@pytest.fixture(scope="module")
def inbox(manager, simulator, events) -> str:
    """Session "inbox" linked to PHONE.

    Messages that reach the page before the driver subscribes are replayed when it does,
    so tests need not wait for the subscription.
    """
    link(manager, simulator, events, "inbox", PHONE, push_name="Inbox")
    return "inbox"


def _incoming(payload: dict) -> bool:
    return not payload["from_me"]


def test_inbound_messages_arrive_in_order_with_contacts_named(manager, simulator, inbox, events):
    mark = events.mark()
    pushed: dict[str, list[str]] = {number: [] for number, _ in CONTACTS}
    for round_ in range(4):
        for number, name in CONTACTS:
            sent = simulator.message(PHONE, number, f"msg {round_} from {name}", push_name=name)
            pushed[number].append(sent["id"])
    got = events.collect(inbox, "message", 20, mark, timeout=30, where=_incoming)
    manager.flush_events()
    assert len({p["wa_id"] for p in got}) == 20  # each once
    for number, name in CONTACTS:
        in_chat = [p for p in got if p["chat_id"] == f"{number}@c.us"]
        assert [p["id"] for p in in_chat] == pushed[number]  # in order within the chat
        first = in_chat[0]
        assert first["wa_id"] == f"false_{number}@c.us_{first['id']}"
        assert first["sender"] == f"{number}@c.us" and first["recipient"] == ME
        assert first["contact"] == {"number": number, "name": None, "push_name": name}
        assert first["type"] == "chat" and first["ack"] == ACK_SERVER
        assert first["quoted_wa_id"] is None
        assert abs(first["timestamp"] - time.time()) < 120
    assert got[0]["body"] == "msg 0 from Contact 1"


def test_send_text_records_once_and_acks_move_forward(manager, simulator, inbox, events):
    to = "5511977770001"
    msg_id = new_message_id()
    assert msg_id.startswith("3EB0") and len(msg_id) == 20
    mark = events.mark()
    sent = manager.send_text(inbox, chat_id=to, text="hello there", message_id=msg_id)
    key = own_message_key(to, msg_id)
    assert sent["wa_id"] == key and sent["id"] == msg_id
    assert sent["from_me"] is True and sent["ack"] == ACK_SERVER
    assert sent["sender"] == ME and sent["recipient"] == f"{to}@c.us" and sent["chat_id"] == f"{to}@c.us"
    assert sent["contact"]["number"] == to

    again = manager.send_text(inbox, chat_id=f"{to}@c.us", text="hello there", message_id=msg_id)
    assert again["wa_id"] == key  # the key was in the page: not sent twice
    assert [(m["id"], m["chat"], m["body"]) for m in simulator.sent(PHONE)] == [(msg_id, to, "hello there")]

    simulator.receipt(PHONE, msg_id, "device")
    # Receipts closer together than a page poll reach the page as the latest one only.
    events.wait_for(inbox, "message_ack", mark, where=lambda p: p["wa_id"] == key and p["ack"] == ACK_DEVICE)
    simulator.read(PHONE, to)
    acks = events.collect(inbox, "message_ack", 3, mark, where=lambda p: p["wa_id"] == key)
    assert [a["ack"] for a in acks] == [ACK_SERVER, ACK_DEVICE, ACK_READ]
    assert acks[0]["chat_id"] == f"{to}@c.us"
    own = [p for s, n, p in events.items[mark:] if s == inbox and n == "message" and p["wa_id"] == key]
    assert len(own) == 1 and own[0]["ack"] == ACK_PENDING  # the page's own 'add'
    assert events.items[mark:].index((inbox, "message", own[0])) < events.items[mark:].index(
        (inbox, "message_ack", acks[0])
    )

    found = manager.find_message(inbox, key)
    assert found is not None and found["ack"] == ACK_READ and found["body"] == "hello there"
    assert manager.find_message(inbox, own_message_key(to, "3EB0000000000000NOPE")) is None


def test_reply_failure_and_bad_targets(manager, simulator, inbox, events):
    contact = "5511977770002"
    incoming = simulator.message(PHONE, contact, "question?", name="Saved Name")
    quoted_key = f"false_{contact}@c.us_{incoming['id']}"
    events.wait_for(inbox, "message", where=lambda p: p["wa_id"] == quoted_key)

    mark = events.mark()
    reply = manager.send_text(
        inbox, chat_id=contact, text="answer", message_id=new_message_id(), quoted_wa_id=quoted_key
    )
    assert reply["quoted_wa_id"] == quoted_key
    assert reply["contact"] == {"number": contact, "name": "Saved Name", "push_name": None}
    assert simulator.sent(PHONE)[-1]["quoted"] == incoming["id"]

    simulator.fail(PHONE, reply["id"])
    failed = events.wait_for(
        inbox, "message_ack", mark, where=lambda p: p["wa_id"] == reply["wa_id"] and p["ack"] < 0
    )
    assert failed["ack"] == ACK_ERROR

    with pytest.raises(QuotedMessageNotFound):
        manager.send_text(
            inbox, chat_id=contact, text="x", message_id=new_message_id(), quoted_wa_id="false_1@c.us_NONE"
        )
    with pytest.raises(ChatNotFound):
        manager.send_text(inbox, chat_id="120363000000000001@g.us", text="x", message_id=new_message_id())
    with pytest.raises(ValueError):
        manager.send_text(inbox, chat_id="not-a-number", text="x", message_id=new_message_id())
    with pytest.raises(ValueError):
        manager.send_text(inbox, chat_id=contact, text="x", message_id="bad id!")
    with pytest.raises(SessionNotConnected):
        manager.send_text("nobody", chat_id=contact, text="x", message_id=new_message_id())
    with pytest.raises(SessionNotConnected):
        manager.find_message("nobody", quoted_key)


def test_missing_module_fails_only_that_session(manager, simulator, inbox, events):
    simulator.modules(["WAWebSendMsgChatAction"])
    try:
        mark = events.mark()
        manager.start("broken")
        qr = events.wait_for("broken", "qr", mark)
        simulator.scan(qr["qr"], phone="5511999990102")
        failure = events.wait_for("broken", "auth_failure", mark)
    finally:
        simulator.modules([])
    reason = "WhatsApp Web changed: module WAWebSendMsgChatAction missing"
    assert failure == {"reason": reason}
    names = [n for s, n, _ in events.items[mark:] if s == "broken"]
    assert names.index("ready") < names.index("auth_failure")
    deadline = time.monotonic() + 15
    while "broken" in manager.live_ids() and time.monotonic() < deadline:
        time.sleep(0.1)
    status = manager.status("broken")
    assert status["status"] == "error" and status["last_error"] == reason
    assert "broken" not in manager.live_ids()
    with pytest.raises(SessionNotConnected):
        manager.send_text("broken", chat_id="5511977770003", text="x", message_id=new_message_id())

    # The other session is untouched and still receives.
    assert manager.status(inbox)["status"] == "connected"
    mark = events.mark()
    pushed = simulator.message(PHONE, "5511977770003", "still here")
    assert events.wait_for(inbox, "message", mark, where=lambda p: p["id"] == pushed["id"])


def test_messages_while_browser_closed_arrive_after_start(manager, simulator, inbox, events):
    old_archive = manager.snapshot(inbox)
    to = "5511977770004"
    sent = manager.send_text(inbox, chat_id=to, text="before the stop", message_id=new_message_id())
    manager.stop(inbox)
    pushed = [simulator.message(PHONE, "5511977770005", f"while closed {i}")["id"] for i in range(3)]
    simulator.read(PHONE, to)  # a receipt while no browser runs

    mark = events.mark()
    manager.start(inbox)
    got = events.collect(inbox, "message", 3, mark, where=lambda p: p["id"] in pushed)
    assert [p["id"] for p in got] == pushed
    seen_read = events.wait_for(
        inbox,
        "message",
        mark,
        where=lambda p: p["wa_id"] == sent["wa_id"] and p["ack"] == ACK_READ,
    )
    assert seen_read["from_me"] is True

    # A crash relaunch keeps the binding: messages still flow.
    pid = manager.browser_pid(inbox)
    mark = events.mark()
    os.kill(pid, signal.SIGKILL)
    events.wait_for(inbox, "ready", mark)
    after_crash = simulator.message(PHONE, "5511977770005", "after the crash")
    assert events.wait_for(inbox, "message", mark, where=lambda p: p["id"] == after_crash["id"])

    # A reload (new document, same context) keeps the binding and subscribes again.
    page = manager._sessions[inbox].page
    manager.runtime.submit(page.reload(wait_until="domcontentloaded"))
    mark = events.mark()
    after_reload = simulator.message(PHONE, "5511977770005", "after the reload")
    assert events.wait_for(inbox, "message", mark, where=lambda p: p["id"] == after_reload["id"])
    pushed.append(after_reload["id"])

    # An older login archive restores an older cursor: delivered again, nothing lost.
    mark = events.mark()
    manager.start("restored", login_state=old_archive)
    again = events.collect(
        "restored", "message", 5, mark, where=lambda p: p["id"] in [*pushed, after_crash["id"]]
    )
    assert {p["id"] for p in again} == {*pushed, after_crash["id"]}
    manager.remove_local("restored")


def test_helpers():
    assert messaging.chat_id_for("+55 11 99999-0001") == "5511999990001@c.us"
    assert messaging.chat_id_for("5511999990001@c.us") == "5511999990001@c.us"
    assert messaging.chat_id_for("120363000000000001@g.us") == "120363000000000001@g.us"
    for bad in ("", "abc", "55@c.us@c.us", "5511@s.whatsapp.net"):
        with pytest.raises(ValueError):
            messaging.chat_id_for(bad)
    assert own_message_key("5511999990001", "3EB0AB") == "true_5511999990001@c.us_3EB0AB"
    assert new_message_id() != new_message_id()


def test_fake_phone_receipts_and_offline_queue():
    """The server side alone (no browser): the page's HTTP calls and the phone's control API."""
    with SimulatorServer() as server:
        control = SimulatorControl(server.url)
        page = SimulatorControl(server.url)  # same JSON client, used for the page's /api calls
        pairing = page._call("POST", "/api/pairing", {"page_id": "p1"})
        control.scan(pairing["ref"], phone=PHONE)
        device = page._call("GET", f"/api/pairing/{pairing['id']}?page_id=p1")["device"]
        creds = {"device_id": device["device_id"], "token": device["token"], "page_id": "p1"}

        incoming = control.message(PHONE, "5511977770009", "hi", name="Ann", push_name="Annie")
        first = page._call(
            "POST", "/api/send", {**creds, "to": "5511977770009", "body": "yo", "id": "3EB0AA"}
        )
        again = page._call(
            "POST", "/api/send", {**creds, "to": "5511977770009", "body": "yo", "id": "3EB0AA"}
        )
        assert first["ack"] == again["ack"] == ACK_SERVER and first["seq"] == again["seq"]
        assert [m["id"] for m in control.sent(PHONE)] == ["3EB0AA"]

        cursor = page._call("POST", "/api/poll", {**creds, "since": 0})["messages"][-1]["seq"]
        control.receipt(PHONE, "3EB0AA", "device")
        control.read(PHONE, "5511977770009@c.us")
        control.receipt(PHONE, "3EB0AA", "device")  # late, out of order: ignored
        fresh = page._call("POST", "/api/poll", {**creds, "since": cursor})["messages"]
        assert [(m["id"], m["ack"]) for m in fresh] == [("3EB0AA", ACK_READ)]

        control.fail(PHONE, "3EB0AA")
        assert control.sent(PHONE)[0]["ack"] == ACK_ERROR
        history = page._call("POST", "/api/login", {**creds, "since": 0})["messages"]
        assert {m["id"] for m in history} == {incoming["id"], "3EB0AA"}  # kept for a late page
        received = next(m for m in history if m["id"] == incoming["id"])
        assert (received["name"], received["push_name"]) == ("Ann", "Annie")

        assert control.modules(["WAWebMsgKey"]) == {"missing": ["WAWebMsgKey"]}
        assert page._call("GET", "/api/config")["missing_modules"] == ["WAWebMsgKey"]
        control.modules([])
