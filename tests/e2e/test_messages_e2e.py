"""Messages in and out through the whole stack: fake phone → page → worker → database → API.

Real worker processes drive Chromium against the simulator; the API is read and
called as a client would. Each test links its own session (the database is emptied
between tests).
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.stack import wait_until
from tests.e2e.test_session_life import PHONE, link_session

pytestmark = [pytest.mark.e2e]

CONTACTS = [(f"55119888800{i:02d}", f"Cliente {i}", f"Push {i}") for i in range(1, 6)]
# Sends as fast as the page takes them, no jitter: these tests send many.
FAST_SENDS = {"SEND_RATE_PER_MINUTE": "6000", "SEND_JITTER_SECONDS": "0"}


def all_messages(api, name: str, headers: dict | None = None, **filters) -> list[dict]:
    """Every message of the session (newest first), following the cursor."""
    items: list[dict] = []
    query = {**filters, "limit": 100}
    while True:
        kwargs = {"query_string": query}
        if headers is not None:
            response = api.client.get(f"/session/{name}/messages", headers=headers, **kwargs)
            assert response.status_code == 200, response.get_data(as_text=True)
        else:
            response = api.call("get", f"/session/{name}/messages", 200, **kwargs)
        page = response.get_json()
        items.extend(page["items"])
        if not page["next_cursor"]:
            return items
        query = {**query, "before": page["next_cursor"]}


def bare_id(wa_message_id: str) -> str:
    """The key id of a serialized WhatsApp id (``false_<chat>_<id>``)."""
    return wa_message_id.rsplit("_", 1)[-1]


def push_from_contacts(sim, per_contact: int, tag: str) -> dict[str, list[str]]:
    """Each contact sends ``per_contact`` messages, all contacts at once; ids in sending order."""
    pushed: dict[str, list[str]] = {}

    def contact(number: str, name: str, push_name: str) -> None:
        pushed[number] = [
            sim.message(PHONE, number, f"{tag} {i} from {name}", name=name, push_name=push_name)["id"]
            for i in range(per_contact)
        ]

    threads = [threading.Thread(target=contact, args=c) for c in CONTACTS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return pushed


def wait_stored(api, name: str, count: int, timeout: float = 60) -> list[dict]:
    """Wait until ``count`` inbound messages are stored; fail on more."""

    def probe():
        stored = all_messages(api, name, direction="in")
        assert len(stored) <= count, f"{len(stored)} inbound messages stored, expected {count}"
        return stored if len(stored) == count else None

    return wait_until(probe, timeout, interval=0.5, message=f"{count} inbound messages stored")


def assert_each_once_in_order(stored: list[dict], pushed: dict[str, list[str]]) -> None:
    ids = [bare_id(m["wa_message_id"]) for m in stored]
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    oldest_first = sorted(stored, key=lambda m: (m["created_at"], m["id"]))
    for number, sent in pushed.items():
        in_chat = [bare_id(m["wa_message_id"]) for m in oldest_first if m["chat_id"] == f"{number}@c.us"]
        assert in_chat == sent, f"chat {number} out of order"


def test_200_messages_from_5_contacts_are_stored_once_in_order_with_contacts_named(api, sim, start_worker):
    start_worker("w1")
    link_session(api, sim, "vendas")

    pushed = push_from_contacts(sim, 40, "msg")
    stored = wait_stored(api, "vendas", 200)
    assert_each_once_in_order(stored, pushed)

    contacts = api.call("get", "/session/vendas/contacts?per_page=100", 200).get_json()
    by_number = {c["number"]: c for c in contacts["items"]}
    assert contacts["total"] == 5
    assert {n: (c["name"], c["push_name"]) for n, c in by_number.items()} == {
        number: (name, push_name) for number, name, push_name in CONTACTS
    }
    for message in stored:
        contact = by_number[message["chat_id"].split("@")[0]]
        assert message["contact_id"] == contact["id"]
        assert message["sender"] == f"{contact['number']}@c.us"
        assert message["ack"] == "SERVER" and message["direction"] == "in"


def test_failover_mid_stream_stores_every_message_once(api, sim, start_worker):
    workers = {w: start_worker(w) for w in ("w1", "w2")}
    session = link_session(api, sim, "vendas")
    owner = session["worker_id"]
    devices = len(sim.state()["devices"])
    pushed = push_from_contacts(sim, 40, "before")
    wait_stored(api, "vendas", 200)

    more: dict[str, list[str]] = {number: [] for number, _, _ in CONTACTS}
    killed = threading.Event()

    def keep_sending() -> None:
        for i in range(10):
            for number, name, push_name in CONTACTS:
                more[number].append(
                    sim.message(PHONE, number, f"after {i}", name=name, push_name=push_name)["id"]
                )
            if i == 2:
                workers[owner].kill()  # SIGKILL, browsers too: nothing saved, no goodbye
                killed.set()

    sender = threading.Thread(target=keep_sending)
    sender.start()
    sender.join()
    assert killed.is_set()
    # Messages sent while no browser runs for the session: kept by the phone.
    for number, name, _ in CONTACTS:
        more[number].append(sim.message(PHONE, number, "while down", name=name)["id"])

    survivor = "w2" if owner == "w1" else "w1"
    wait_until(
        lambda: api.call("get", "/health").get_json()["workers"] == [survivor],
        20,
        message=f"{owner}'s lease to expire",
    )
    sync = api.call("post", "/session/sync", 202).get_json()
    assert api.wait_job(sync["id"])["result"]["orphan_sessions"] == ["vendas"]
    api.wait_status("vendas", "CONNECTED", worker_id=survivor, phone_number=PHONE)
    assert len(sim.state()["devices"]) == devices  # restored, no new scan

    total = 200 + sum(len(ids) for ids in more.values())
    assert total == 255
    stored = wait_stored(api, "vendas", total)
    assert_each_once_in_order(stored, {n: pushed[n] + more[n] for n in pushed})


def send(client, headers: dict, name: str, to: str, text: str, key: str | None = None):
    if key is not None:
        headers = {**headers, "Idempotency-Key": key}
    return client.post(f"/session/{name}/messages", headers=headers, json={"to": to, "text": text})


def test_retried_sends_leave_once_and_acks_go_server_device_read(api, sim, start_worker, app, tenant):
    start_worker("w1", env=FAST_SENDS)
    link_session(api, sim, "vendas")
    chats = ["5511977770001", "5511977770002"]

    def request(i: int):
        return send(app.test_client(), tenant.admin, "vendas", chats[i % 2], f"pedido {i}", key=f"pedido-{i}")

    ids: list[str] = []
    with ThreadPoolExecutor(max_workers=3) as pool:
        for i in range(20):
            if i % 2:  # three tries at once
                responses = list(pool.map(request, [i] * 3))
            else:  # three tries one after the other
                responses = [request(i) for _ in range(3)]
            assert [r.status_code for r in responses] == [202] * 3, [r.get_json() for r in responses]
            [message_id] = {r.get_json()["message"]["id"] for r in responses}
            ids.append(message_id)
    assert len(set(ids)) == 20

    def message(message_id: str) -> dict:
        return api.call("get", f"/session/vendas/messages/{message_id}", 200).get_json()

    def all_at(ack: str) -> list[dict] | None:
        found = [message(i) for i in ids]
        return found if all(m["ack"] == ack for m in found) else None

    sent = wait_until(lambda: all_at("SERVER"), 60, interval=0.5, message="20 messages sent")
    assert all(m["send_state"] == "sent" for m in sent)
    outbound = all_messages(api, "vendas", direction="out")
    assert len(outbound) == 20
    on_phone = sim.sent(PHONE)
    assert sorted(m["body"] for m in on_phone) == sorted(f"pedido {i}" for i in range(20))
    assert [m["body"] for m in on_phone] == [f"pedido {i}" for i in range(20)]  # in order
    assert {bare_id(m["wa_message_id"]) for m in sent} == {m["id"] for m in on_phone}

    late = [request(i) for i in range(20)]  # a retry long after the send: still the first answer
    assert [r.get_json()["message"]["id"] for r in late] == ids
    assert all(r.get_json()["message"]["send_state"] == "sent" for r in late)

    for m in on_phone:
        sim.receipt(PHONE, m["id"], "device")
    wait_until(lambda: all_at("DEVICE"), 30, interval=0.5, message="20 messages DEVICE")
    for chat in chats:
        sim.read(PHONE, chat)
    read = wait_until(lambda: all_at("READ"), 30, interval=0.5, message="20 messages READ")
    for m in read:
        assert [h["ack"] for h in m["ack_history"]] == ["PENDING", "SERVER", "DEVICE", "READ"]
        assert [h["at"] for h in m["ack_history"]] == sorted(h["at"] for h in m["ack_history"])
    assert len(sim.sent(PHONE)) == 20


def test_a_missing_page_module_is_an_error_naming_it_and_other_sessions_keep_working(api, sim, start_worker):
    start_worker("w1", env=FAST_SENDS)
    link_session(api, sim, "boa")
    sim.modules(missing=["WAWebSendMsgChatAction"])
    try:
        api.call("post", "/session", 202, json={"name": "ruim"})
        api.wait_status("ruim", "QRCODE")
        qr_text = api.call("get", "/session/ruim/qr", 200).get_json()["qr_code"]
        sim.scan(qr_text, phone="5511999990002", push_name="Outra")
        failed = api.wait_status("ruim", "ERROR")
        assert failed["last_error"] == "WhatsApp Web changed: module WAWebSendMsgChatAction missing"
    finally:
        sim.modules(missing=[])

    assert api.session("boa")["status"] == "CONNECTED"
    queued = send(api.client, api.headers, "boa", "5511977770001", "ainda funciona").get_json()
    sim.message(PHONE, "5511977770001", "recebido")
    sent = wait_until(
        lambda: (
            (m := api.call("get", f"/session/boa/messages/{queued['message']['id']}", 200).get_json())[
                "send_state"
            ]
            == "sent"
            and m
        ),
        30,
        message="the other session's send",
    )
    assert sent["ack"] == "SERVER"
    assert [m["body"] for m in sim.sent(PHONE)] == ["ainda funciona"]
    inbound = wait_until(lambda: all_messages(api, "boa", direction="in"), 30, message="inbound")
    assert [m["body"] for m in inbound] == ["recebido"]
    assert api.session("ruim")["status"] == "ERROR"


def test_send_rules_on_the_live_stack(api, sim, start_worker, tenant, other_tenant):
    start_worker("w1", env=FAST_SENDS)
    api.call("post", "/session", 202, json={"name": "nova"})
    waiting = api.wait_status("nova", "QRCODE")
    refused = send(api.client, tenant.admin, "nova", "5511977770001", "oi")
    assert refused.status_code == 409
    assert "QRCODE" in refused.get_data(as_text=True)
    assert all_messages(api, "nova") == []
    assert waiting["status"] == "QRCODE"

    link_session(api, sim, "vendas")
    sim.message(PHONE, "5511977770001", "bom dia", push_name="Ana")
    # An agent reads and sends.
    inbound = wait_until(lambda: all_messages(api, "vendas", headers=tenant.agent), 30, message="inbound")
    reply = api.client.post(
        "/session/vendas/messages",
        headers=tenant.agent,
        json={"to": "5511977770001", "text": "bom dia, Ana", "reply_to": inbound[0]["id"]},
    )
    assert reply.status_code == 202
    reply_id = reply.get_json()["message"]["id"]
    wait_until(lambda: sim.sent(PHONE), 30, message="the agent's reply on the phone")
    [answer] = sim.sent(PHONE)
    assert answer["body"] == "bom dia, Ana"
    assert answer["quoted"] == bare_id(inbound[0]["wa_message_id"]), answer  # a reply to her message
    stored_reply = api.call("get", f"/session/vendas/messages/{reply_id}", 200).get_json()
    assert stored_reply["reply_to"] == inbound[0]["id"]
    assert stored_reply["quoted_wa_id"] == inbound[0]["wa_message_id"]

    sim.fail(PHONE, answer["id"])  # delivery fails: ERROR with a reason
    failed = wait_until(
        lambda: (
            (m := api.call("get", f"/session/vendas/messages/{reply_id}", 200).get_json())["ack"] == "ERROR"
            and m
        ),
        30,
        message="the failed delivery",
    )
    assert failed["send_state"] == "failed" and failed["error"] == "WhatsApp reported a delivery failure"
    for path in ("messages", f"messages/{reply_id}", "chats", "contacts"):
        response = api.client.get(f"/session/vendas/{path}", headers=tenant.agent)
        assert response.status_code == 200, path

    # Another company: every message route is 404, and nothing is sent.
    other = other_tenant.admin
    for path in ("messages", f"messages/{reply_id}", f"messages/{inbound[0]['id']}", "chats", "contacts"):
        response = api.client.get(f"/session/vendas/{path}", headers=other)
        assert response.status_code == 404, path
    assert send(api.client, other, "vendas", "5511977770001", "intruso").status_code == 404
    assert send(api.client, other_tenant.agent, "vendas", "5511977770001", "intruso").status_code == 404
    assert len(all_messages(api, "vendas", direction="out")) == 1
    assert [m["body"] for m in sim.sent(PHONE)] == ["bom dia, Ana"]
