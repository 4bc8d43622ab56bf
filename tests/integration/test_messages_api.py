"""The message, chat and contact routes against real databases and Redis (both databases)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from shared.config import CONTROL_QUEUE
from shared.models import Job, Message, WhatsappSession
from shared.uow import UnitOfWork
from tests.broker_inspect import drain, published
from tests.integration.test_messages_store import inbound, make_linked, store
from tests.integration.test_sql_counts import StatementCounter

OWNER_QUEUE = "worker.w1"


@pytest.fixture(autouse=True)
def empty_queues(redis_client, broker_prefix):
    drain(redis_client, broker_prefix, CONTROL_QUEUE, OWNER_QUEUE)
    yield
    drain(redis_client, broker_prefix, CONTROL_QUEUE, OWNER_QUEUE)


@pytest.fixture
def linked(settings, tenant):
    return make_linked(settings, tenant.company_id)


def send(client, headers, body=None, name="vendas", key=None, **fields):
    body = {"to": "5511999990001", "text": "Olá", **fields} if body is None else body
    extra = {"Idempotency-Key": key} if key else {}
    return client.post(f"/session/{name}/messages", json=body, headers={**headers, **extra})


def counts(settings) -> tuple[int, int]:
    with UnitOfWork(settings) as uow:
        return (
            uow.db.scalar(select(func.count()).select_from(Message)),
            uow.db.scalar(select(func.count()).select_from(Job)),
        )


def test_send_is_202_with_a_pending_message_and_a_send_job_on_the_owner_queue(
    client, tenant, linked, redis_client, broker_prefix
):
    response = send(client, tenant.agent)
    assert response.status_code == 202, response.data
    body = response.get_json()
    message, job = body["message"], body["job"]
    assert (message["direction"], message["ack"], message["send_state"]) == ("out", "PENDING", "queued")
    assert message["chat_id"] == message["recipient"] == "5511999990001@c.us"
    assert message["sender"] == "5511888880000@c.us" and message["job_id"] == job["id"]
    assert (job["kind"], job["queue"], job["params"]) == (
        "send",
        OWNER_QUEUE,
        {"epoch": 3, "message_id": message["id"]},
    )
    assert [(m.task, m.args) for m in published(redis_client, broker_prefix, OWNER_QUEUE)] == [
        ("zaphub.message.send", [job["id"]])
    ]
    one = client.get(f"/session/vendas/messages/{message['id']}", headers=tenant.agent).get_json()
    assert [h["ack"] for h in one["ack_history"]] == ["PENDING"]


def test_a_group_chat_id_and_a_reply(client, tenant, linked, settings):
    store(settings, linked, inbound(1))
    [quoted] = client.get("/session/vendas/messages", headers=tenant.agent).get_json()["items"]
    reply = send(client, tenant.admin, to="120363012345678901@g.us", reply_to=quoted["id"]).get_json()
    assert reply["message"]["chat_id"] == "120363012345678901@g.us"
    assert reply["message"]["reply_to"] == quoted["id"]
    assert reply["message"]["quoted_wa_id"] == quoted["wa_message_id"]


@pytest.mark.parametrize(
    "body,field",
    [
        ({"to": "5511999990001", "text": ""}, "text"),
        ({"to": "5511999990001", "text": "x" * 65_537}, "text"),
        ({"to": "5511999990001", "text": "   "}, "text"),
        ({"to": "5511999990001"}, "text"),
        ({"to": "12345", "text": "hi"}, "to"),
        ({"to": "+5511999990001", "text": "hi"}, "to"),
        ({"to": "5511999990001@s.whatsapp.net", "text": "hi"}, "to"),
        ({"to": "abc@c.us", "text": "hi"}, "to"),
        ({"to": "٥٥١١٩٩٩٩٩٠٠٠١", "text": "hi"}, "to"),
        ({"text": "hi"}, "to"),
        ({"to": "5511999990001", "text": "hi", "reply_to": "0" * 32}, "reply_to"),
    ],
    ids=[
        "empty-text",
        "text-too-long",
        "blank-text",
        "no-text",
        "short-number",
        "plus-sign",
        "not-a-chat-id",
        "letters",
        "non-ascii-digits",
        "no-to",
        "unknown-reply-to",
    ],
)
def test_bad_input_is_422_naming_the_field_and_writes_and_sends_nothing(
    client, tenant, linked, settings, redis_client, broker_prefix, body, field
):
    response = send(client, tenant.agent, body=body)
    assert response.status_code == 422, response.data
    assert field in response.get_json()["errors"]["json"]
    assert counts(settings) == (0, 0)
    assert published(redis_client, broker_prefix, OWNER_QUEUE) == []


@pytest.mark.parametrize("char", ["x", "é", "😀"])
def test_a_text_of_exactly_65536_characters_is_accepted(client, tenant, linked, settings, char):
    # Above the API's usual 64 KiB body limit, even when every character is escaped.
    import json

    body = json.dumps({"to": "5511999990001", "text": char * 65_536})  # ensure_ascii: \u escapes
    response = client.post(
        "/session/vendas/messages", data=body, content_type="application/json", headers=tenant.agent
    )
    assert response.status_code == 202, response.data[:200]
    assert (
        len(client.get("/session/vendas/messages", headers=tenant.agent).get_json()["items"][0]["body"])
        == 65_536
    )


def test_a_reply_to_another_sessions_message_is_422(client, tenant, linked, settings):
    other = make_linked(settings, tenant.company_id, name="suporte", token=linked.token)
    store(settings, other, inbound(1))
    with UnitOfWork(settings) as uow:
        foreign = uow.db.scalar(select(Message.id))
    response = send(client, tenant.agent, reply_to=foreign)
    assert response.status_code == 422 and "reply_to" in response.get_json()["errors"]["json"]


@pytest.mark.parametrize("status", ["DISCONNECTED", "CONNECTING", "QRCODE", "ERROR"])
def test_sending_when_not_connected_is_409_with_the_status(
    client, tenant, linked, settings, redis_client, broker_prefix, status
):
    with UnitOfWork(settings) as uow:
        uow.db.get(WhatsappSession, linked.id).status = status
        uow.commit()
    response = send(client, tenant.agent)
    assert response.status_code == 409
    assert f"session is {status}" in response.get_json()["message"]
    assert counts(settings) == (0, 0)
    assert published(redis_client, broker_prefix, OWNER_QUEUE) == []


def test_the_same_idempotency_key_returns_the_first_message_and_sends_once(
    client, tenant, linked, settings, redis_client, broker_prefix
):
    first = send(client, tenant.agent, key="order-42")
    again = [send(client, tenant.agent, key="order-42") for _ in range(3)]
    assert first.status_code == 202 and all(r.status_code == 202 for r in again)
    assert {r.get_json()["message"]["id"] for r in again} == {first.get_json()["message"]["id"]}
    assert {r.get_json()["job"]["id"] for r in again} == {first.get_json()["job"]["id"]}
    assert counts(settings) == (1, 1)
    assert len(published(redis_client, broker_prefix, OWNER_QUEUE)) == 1
    other = send(client, tenant.agent, key="order-43")
    assert other.get_json()["message"]["id"] != first.get_json()["message"]["id"]
    mismatch = send(client, tenant.agent, key="order-42", text="something else")
    assert mismatch.status_code == 409 and "Idempotency-Key" in mismatch.get_json()["message"]


def test_a_retry_after_the_session_dropped_still_returns_the_first_message(client, tenant, linked, settings):
    first = send(client, tenant.agent, key="k1").get_json()
    with UnitOfWork(settings) as uow:
        uow.db.get(WhatsappSession, linked.id).status = "DISCONNECTED"
        uow.commit()
    again = send(client, tenant.agent, key="k1")
    assert again.status_code == 202 and again.get_json()["message"]["id"] == first["message"]["id"]


@pytest.mark.parametrize("key", ["", "x" * 129, "a b", "é"])
def test_a_bad_idempotency_key_is_422(client, tenant, linked, settings, key):
    response = client.post(
        "/session/vendas/messages",
        json={"to": "5511999990001", "text": "hi"},
        headers={**tenant.agent, "Idempotency-Key": key},
    )
    assert response.status_code == 422 and "Idempotency-Key" in response.get_json()["errors"]["headers"]
    assert counts(settings) == (0, 0)


def test_concurrent_duplicates_create_one_message(app, tenant, linked, settings, redis_client, broker_prefix):
    barrier = threading.Barrier(6)
    answers: list = []

    def post() -> None:
        client = app.test_client()
        barrier.wait()
        answers.append(send(client, tenant.agent, key="burst"))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in answers] == [202] * 6, [r.data for r in answers]
    assert len({r.get_json()["message"]["id"] for r in answers}) == 1
    assert counts(settings) == (1, 1)
    assert len(published(redis_client, broker_prefix, OWNER_QUEUE)) == 1


def test_broker_down_is_503_and_writes_nothing(tenant, linked, settings):
    from api import create_app
    from tests.integration.test_outages import closed_port

    down = settings.with_overrides(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0", BROKER_TIMEOUT=1.0)
    response = send(create_app(down).test_client(), tenant.agent, key="k")
    assert response.status_code == 503 and "broker" in response.get_json()["message"]
    assert counts(settings) == (0, 0)


def test_list_is_newest_first_with_filters(client, tenant, linked, settings):
    for n in range(3):
        store(settings, linked, inbound(n, chat="5511999990001@c.us"))
    store(settings, linked, inbound(3, chat="5511999990002@c.us"))
    send(client, tenant.agent, to="5511999990002")

    def bodies(query=""):
        page = client.get(f"/session/vendas/messages{query}", headers=tenant.agent)
        assert page.status_code == 200, page.data
        return [m["body"] for m in page.get_json()["items"]]

    assert bodies() == ["Olá", "hello 3", "hello 2", "hello 1", "hello 0"]
    assert bodies("?chat=5511999990002") == ["Olá", "hello 3"]
    assert bodies("?chat=5511999990001@c.us&direction=in") == ["hello 2", "hello 1", "hello 0"]
    assert bodies("?direction=out") == ["Olá"]
    assert bodies("?since=2100-01-01T00:00:00Z") == []
    assert client.get("/session/vendas/messages?chat=abc", headers=tenant.agent).status_code == 422
    assert client.get("/session/vendas/messages?limit=101", headers=tenant.agent).status_code == 422


def test_cursor_pages_are_stable_while_messages_arrive(client, tenant, linked, settings):
    for n in range(7):
        store(settings, linked, inbound(n))
    seen: list[str] = []
    url = "/session/vendas/messages?limit=3"
    extra = 100
    while url:
        page = client.get(url, headers=tenant.agent).get_json()
        seen += [m["body"] for m in page["items"]]
        store(settings, linked, inbound(extra))  # arrives between two pages
        extra += 1
        url = (
            f"/session/vendas/messages?limit=3&before={page['next_cursor']}" if page["next_cursor"] else None
        )
    assert seen == [f"hello {n}" for n in range(6, -1, -1)]


@pytest.mark.parametrize("cursor", ["nonsense", "AAAA", "x" * 150, "tampered", "another-deployment"])
def test_a_cursor_that_is_not_ours_is_422_naming_before(client, tenant, linked, settings, cursor):
    from shared.cursors import encode_cursor
    from shared.models import utcnow

    for n in range(3):
        store(settings, linked, inbound(n))
    if cursor == "tampered":
        good = client.get("/session/vendas/messages?limit=1", headers=tenant.agent).get_json()["next_cursor"]
        cursor = good[:-2] + ("AA" if good[-2:] != "AA" else "BB")
    elif cursor == "another-deployment":
        cursor = encode_cursor(settings.with_overrides(SECRET_KEY="someone-else"), utcnow(), "0" * 32)
    response = client.get(f"/session/vendas/messages?before={cursor}", headers=tenant.agent)
    assert response.status_code == 422
    assert "before" in response.get_json()["errors"]["query"]


def test_one_message_with_its_ack_history_and_404s(client, tenant, linked, settings):
    store(settings, linked, inbound(1))
    from tests.integration.test_messages_store import ack

    ack(settings, linked, inbound(1)["wa_id"], 3)
    [item] = client.get("/session/vendas/messages", headers=tenant.agent).get_json()["items"]
    one = client.get(f"/session/vendas/messages/{item['id']}", headers=tenant.agent).get_json()
    assert one["ack"] == "READ" and [h["ack"] for h in one["ack_history"]] == ["SERVER", "READ"]
    assert client.get("/session/vendas/messages/nosuch", headers=tenant.agent).status_code == 404


def test_chats_have_last_message_unread_count_and_contact(client, tenant, linked, settings):
    from tests.integration.test_messages_store import ack

    for n in range(3):
        store(settings, linked, inbound(n, chat="5511999990001@c.us"))
    ack(settings, linked, inbound(0)["wa_id"], 3)  # the phone read the first one
    store(settings, linked, inbound(5, chat="5511999990002@c.us"))
    send(client, tenant.agent, to="5511999990001")
    chats = client.get("/session/vendas/chats", headers=tenant.agent).get_json()
    assert chats["total"] == 2
    first, second = chats["items"]
    assert first["chat_id"] == "5511999990001@c.us" and first["last_message"]["body"] == "Olá"
    assert (first["message_count"], first["unread_count"]) == (4, 2)
    assert first["contact"]["push_name"] == "Contact 0001"
    assert (second["chat_id"], second["unread_count"]) == ("5511999990002@c.us", 1)
    contacts = client.get("/session/vendas/contacts?per_page=1", headers=tenant.agent).get_json()
    assert contacts["total"] == 2 and contacts["pages"] == 2
    assert [c["number"] for c in contacts["items"]] == ["5511999990001"]


def test_details_show_the_send_queue(client, tenant, linked):
    send(client, tenant.agent)
    send(client, tenant.agent)
    details = client.get("/session/vendas/details", headers=tenant.agent).get_json()
    queue = details["send_queue"]
    assert queue["pending"] == 2 and queue["oldest_pending_age"] >= 0
    assert queue["next_send_not_before"] is None


MESSAGE_ROUTES = [
    ("get", "/session/{name}/messages", None),
    ("post", "/session/{name}/messages", {"to": "5511999990001", "text": "hi"}),
    ("get", "/session/{name}/messages/{message_id}", None),
    ("get", "/session/{name}/chats", None),
    ("get", "/session/{name}/contacts", None),
]


@pytest.mark.parametrize("method,path,body", MESSAGE_ROUTES)
def test_another_company_gets_404_on_every_message_route(
    client, tenant, other_tenant, linked, settings, method, path, body
):
    store(settings, linked, inbound(1))
    with UnitOfWork(settings) as uow:
        message_id = uow.db.scalar(select(Message.id))
    foreign = getattr(client, method)(
        path.format(name="vendas", message_id=message_id), json=body, headers=other_tenant.admin
    )
    missing = getattr(client, method)(
        path.format(name="nosuch", message_id=message_id), json=body, headers=other_tenant.admin
    )
    assert foreign.status_code == missing.status_code == 404
    assert foreign.get_json()["message"].replace("vendas", "X") == missing.get_json()["message"].replace(
        "nosuch", "X"
    )
    assert b"hello" not in foreign.data
    assert counts(settings)[0] == 1


@pytest.mark.parametrize("method,path,body", MESSAGE_ROUTES)
@pytest.mark.parametrize("role", ["agent", "admin"])
def test_agents_and_admins_may_read_and_send(client, tenant, linked, settings, method, path, body, role):
    store(settings, linked, inbound(1))
    with UnitOfWork(settings) as uow:
        message_id = uow.db.scalar(select(Message.id))
    response = getattr(client, method)(
        path.format(name="vendas", message_id=message_id), json=body, headers=getattr(tenant, role)
    )
    assert response.status_code == (202 if method == "post" else 200), response.data


@pytest.mark.parametrize("method,path,body", MESSAGE_ROUTES)
def test_message_routes_need_a_token(client, linked, method, path, body):
    response = getattr(client, method)(path.format(name="vendas", message_id="x"), json=body)
    assert response.status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        "/session/vendas/messages?limit={n}",
        "/session/vendas/chats?per_page={n}",
        "/session/vendas/contacts?per_page={n}",
    ],
)
def test_list_routes_cost_the_same_number_of_statements_for_any_page_size(
    client, tenant, linked, settings, path
):
    for n in range(30):
        store(settings, linked, inbound(n, chat=f"55119999{n:05d}@c.us"))
    with StatementCounter(settings, client, tenant.agent) as sql:
        small, large = sql.cost(path.format(n=1), items=1), sql.cost(path.format(n=25), items=25)
    assert small == large, (small, large)
