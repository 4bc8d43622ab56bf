"""Messages from the page: stored once, fenced, contacts upserted, acks only forward (both databases)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from shared.models import Contact, Message, WhatsappSession
from shared.services import inbox
from shared.services import workers as worker_services
from shared.uow import UnitOfWork

OWN_NUMBER = "5511888880000"


@dataclass
class Linked:
    """A CONNECTED session owned by worker w1 at epoch 3, and w1's lease token."""

    id: str
    token: str
    company_id: str
    epoch: int = 3
    worker_id: str = "w1"


def make_linked(settings, company_id: str, name: str = "vendas", token: str | None = None) -> Linked:
    """Register w1 (once) and give the company a connected session owned by it."""
    if token is None:
        token = worker_services.register_worker(
            UnitOfWork(settings), "w1", hostname="h", pid=1, capacity=5, lease_seconds=30
        )
    with UnitOfWork(settings) as uow:
        row = WhatsappSession(
            company_id=company_id,
            name=name,
            status="CONNECTED",
            worker_id="w1",
            epoch=3,
            phone_number=OWN_NUMBER,
        )
        uow.db.add(row)
        uow.commit()
        return Linked(row.id, token, company_id)


@pytest.fixture
def linked(settings, tenant) -> Linked:
    return make_linked(settings, tenant.company_id)


def inbound(n: int, chat: str = "5511999990001@c.us", ack: int = 1, **extra) -> dict:
    """A page ``message`` payload of an incoming text."""
    number = chat.split("@")[0]
    return {
        "wa_id": f"false_{chat}_IN{n:04d}",
        "id": f"IN{n:04d}",
        "chat_id": chat,
        "from_me": False,
        "sender": chat,
        "recipient": f"{OWN_NUMBER}@c.us",
        "timestamp": 1_764_400_000 + n,
        "type": "chat",
        "body": f"hello {n}",
        "ack": ack,
        "quoted_wa_id": None,
        "contact": {"number": number, "name": None, "push_name": f"Contact {number[-4:]}"},
        **extra,
    }


def store(settings, linked: Linked, payload: dict, *, worker="w1", epoch=None, token=None) -> bool:
    return inbox.record_message(
        UnitOfWork(settings),
        linked.id,
        worker,
        linked.epoch if epoch is None else epoch,
        payload,
        lease_token=token or linked.token,
    )


def ack(settings, linked: Linked, wa_id: str, value: int, *, epoch=None, token=None) -> bool:
    return inbox.record_ack(
        UnitOfWork(settings),
        linked.id,
        "w1",
        linked.epoch if epoch is None else epoch,
        {"wa_id": wa_id, "chat_id": "x", "ack": value},
        lease_token=token or linked.token,
    )


def messages(settings, session_id: str) -> list[Message]:
    with UnitOfWork(settings) as uow:
        return list(
            uow.db.scalars(
                select(Message).where(Message.session_id == session_id).order_by(Message.created_at)
            )
        )


def test_an_inbound_message_is_stored_once_with_its_contact(settings, linked):
    payload = inbound(1)
    assert store(settings, linked, payload)
    assert store(settings, linked, payload)  # replayed after a reconnect
    assert store(settings, linked, {**payload, "ack": 3})
    [row] = messages(settings, linked.id)
    assert (row.direction, row.chat_id, row.sender, row.body, row.type) == (
        "in",
        "5511999990001@c.us",
        "5511999990001@c.us",
        "hello 1",
        "chat",
    )
    assert row.wa_key_id == "IN0001" and row.wa_timestamp.year == 2025
    assert row.ack == "READ" and [h["ack"] for h in row.ack_history_list] == ["SERVER", "READ"]
    with UnitOfWork(settings) as uow:
        contact = uow.db.scalar(select(Contact))
    assert (contact.number, contact.push_name) == ("5511999990001", "Contact 0001")
    assert row.contact_id == contact.id


def test_contacts_are_upserted_by_number(settings, linked):
    store(settings, linked, inbound(1))
    store(
        settings,
        linked,
        inbound(2, contact={"number": "5511999990001", "name": "Ana", "push_name": "Aninha"}),
    )
    with UnitOfWork(settings) as uow:
        contacts = list(uow.db.scalars(select(Contact)))
    assert [(c.number, c.name, c.push_name) for c in contacts] == [("5511999990001", "Ana", "Aninha")]


def test_a_reply_points_at_the_message_it_quotes(settings, linked):
    store(settings, linked, inbound(1))
    store(settings, linked, inbound(2, quoted_wa_id=inbound(1)["wa_id"]))
    first, second = messages(settings, linked.id)
    assert second.reply_to_id == first.id and second.quoted_wa_id == first.wa_message_id


@pytest.mark.parametrize(
    "worker,epoch,token",
    [("w1", 2, None), ("w1", 4, None), ("w2", 3, None), ("w1", 3, "0" * 32)],
    ids=["older-epoch", "newer-epoch", "other-worker", "other-process"],
)
def test_fenced_out_writers_store_nothing(settings, linked, worker, epoch, token):
    assert store(settings, linked, inbound(1))
    assert not store(settings, linked, inbound(2), worker=worker, epoch=epoch, token=token)
    assert not inbox.record_ack(
        UnitOfWork(settings),
        linked.id,
        worker,
        epoch,
        {"wa_id": inbound(1)["wa_id"], "ack": 3},
        lease_token=token or linked.token,
    )
    [row] = messages(settings, linked.id)
    assert row.ack == "SERVER"
    with UnitOfWork(settings) as uow:
        assert uow.db.scalar(select(func.count()).select_from(Contact)) == 1


def test_acks_only_move_forward_and_error_is_final(settings, linked):
    store(settings, linked, inbound(1))
    wa_id = inbound(1)["wa_id"]
    assert ack(settings, linked, wa_id, 3)  # READ
    assert not ack(settings, linked, wa_id, 1)  # a late SERVER
    assert not ack(settings, linked, wa_id, 2)  # a late DEVICE
    assert not ack(settings, linked, wa_id, -1)  # a read message cannot fail
    assert ack(settings, linked, wa_id, 4)  # PLAYED
    [row] = messages(settings, linked.id)
    assert [h["ack"] for h in row.ack_history_list] == ["SERVER", "READ", "PLAYED"]
    assert all(h["at"] for h in row.ack_history_list)

    store(settings, linked, inbound(2, ack=0))
    failing = inbound(2)["wa_id"]
    assert ack(settings, linked, failing, -1)
    assert not ack(settings, linked, failing, 3)
    assert messages(settings, linked.id)[1].ack == "ERROR"
    assert not ack(settings, linked, "false_unknown@c.us_X", 3)


def test_an_own_message_from_the_page_updates_our_row(settings, linked):
    with UnitOfWork(settings) as uow:
        row = Message(
            company_id=linked.company_id,
            session_id=linked.id,
            direction="out",
            body="hi",
            chat_id="5511999990001@c.us",
            wa_message_id="true_5511999990001@c.us_OUT1",
            wa_key_id="OUT1",
            send_state="sending",
        )
        uow.db.add(row)
        uow.commit()
    echo = inbound(9, **{"wa_id": "true_5511999990001@c.us_OUT1", "id": "OUT1", "from_me": True, "ack": 1})
    assert store(settings, linked, echo)
    [stored] = messages(settings, linked.id)
    assert (stored.direction, stored.send_state, stored.ack, stored.body) == ("out", "sent", "SERVER", "hi")


def test_a_message_sent_from_the_phone_is_stored_as_outbound(settings, linked):
    assert store(settings, linked, inbound(5, from_me=True, wa_id="true_5511999990001@c.us_PH1"))
    [row] = messages(settings, linked.id)
    assert (row.direction, row.send_state) == ("out", "sent")


def test_worker_events_route_to_the_message_store(settings, linked):
    from workers.context import WorkerContext

    ctx = WorkerContext(settings.with_overrides(WORKER_ID="w1"))
    ctx.lease_token = linked.token
    ctx.adopt(linked.id, linked.epoch)
    ctx.on_event(linked.id, "message", inbound(1))
    ctx.on_event(linked.id, "message_ack", {"wa_id": inbound(1)["wa_id"], "chat_id": "x", "ack": 2})
    [row] = messages(settings, linked.id)
    assert row.ack == "DEVICE"


def test_message_events_are_retried_through_a_database_outage(settings, linked, monkeypatch):
    from sqlalchemy.exc import OperationalError

    import workers.context as context_module
    from workers.context import WorkerContext

    real = inbox.record_message
    failures = iter([True, True])

    def flaky(*args, **kwargs):
        if next(failures, False):
            raise OperationalError("INSERT", {}, ConnectionError("database is down"))
        return real(*args, **kwargs)

    monkeypatch.setitem(context_module.MESSAGE_WRITES, "message", flaky)
    monkeypatch.setattr(context_module, "RETRY_FIRST_DELAY", 0.01)
    ctx = WorkerContext(settings.with_overrides(WORKER_ID="w1"))
    ctx.lease_token = linked.token
    ctx.adopt(linked.id, linked.epoch)
    ctx.on_event(linked.id, "message", inbound(1))
    assert [m.body for m in messages(settings, linked.id)] == ["hello 1"]


def test_one_table_maps_page_acks_both_ways():
    from shared import acks

    assert {n: acks.from_page(n).value for n in range(-1, 5)} == {
        -1: "ERROR",
        0: "PENDING",
        1: "SERVER",
        2: "DEVICE",
        3: "READ",
        4: "PLAYED",
    }
    assert all(acks.from_page(acks.to_page(ack)) is ack for ack in acks.Ack)
    assert inbox.page_ack(99).value == "PENDING" and inbox.page_ack(None).value == "PENDING"
    assert acks.advances("PENDING", "ERROR") and acks.advances("SERVER", "ERROR")
    assert not acks.advances("DEVICE", "ERROR") and not acks.advances("ERROR", "READ")
    assert acks.advances("SERVER", "READ") and not acks.advances("READ", "DEVICE")
