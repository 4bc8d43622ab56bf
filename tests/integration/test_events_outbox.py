"""The events outbox: one row per change, in the change's transaction, numbered without gaps.

Both databases. The writers are the real services the workers call; the events are
read back from the ``events`` table.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, update

from shared.models import Event, Message, WhatsappSession
from shared.services import events, inbox, outbox, session_events
from shared.ulid import is_ulid
from shared.uow import UnitOfWork
from tests.integration.test_messages_store import Linked, inbound, make_linked


def stored(settings, session_id: str | None = None) -> list[Event]:
    """Every event (of one session), in id order."""
    with UnitOfWork(settings) as uow:
        query = select(Event).order_by(Event.id)
        if session_id is not None:
            query = query.where(Event.session_id == session_id)
        return list(uow.db.scalars(query))


def page_event(settings, linked: Linked, event: str, payload: dict) -> bool:
    return session_events.apply_event(
        UnitOfWork(settings),
        linked.id,
        linked.worker_id,
        linked.epoch,
        event,
        payload,
        lease_token=linked.token,
    )


@pytest.fixture
def linked(settings, tenant) -> Linked:
    return make_linked(settings, tenant.company_id)


def test_status_and_qr_changes_write_numbered_events(settings, linked):
    assert page_event(settings, linked, "disconnected", {"reason": "conflict"})
    assert page_event(settings, linked, "qr", {"qr": "2@first"})
    assert page_event(settings, linked, "qr", {"qr": "2@second"})  # same status: only a QR event
    found = stored(settings)
    assert [(e.type, e.seq) for e in found] == [
        ("session.status", 1),
        ("session.status", 2),
        ("session.qr", 3),
        ("session.qr", 4),
    ]
    assert found[0].payload_dict == {
        "old_status": "CONNECTED",
        "status": "DISCONNECTED",
        "reason": "conflict",
    }
    assert found[1].payload_dict["status"] == "QRCODE"
    assert [e.payload_dict["qr"] for e in found[2:]] == ["2@first", "2@second"]
    assert all(is_ulid(e.id) and e.session_name == "vendas" for e in found)
    assert all(e.company_id == linked.company_id for e in found)


def test_a_fenced_out_writer_writes_no_event(settings, linked):
    stale = Linked(linked.id, linked.token, linked.company_id, epoch=2)
    assert not page_event(settings, stale, "qr", {"qr": "2@x"})
    assert stored(settings) == []


def test_messages_write_received_ack_sent_and_failed(settings, linked):
    uow = UnitOfWork(settings)
    fenced = dict(lease_token=linked.token)
    assert inbox.record_message(uow, linked.id, "w1", 3, inbound(1), **fenced)
    assert inbox.record_message(uow, linked.id, "w1", 3, inbound(1), **fenced)  # replay: no new event
    assert inbox.record_ack(uow, linked.id, "w1", 3, {"wa_id": inbound(1)["wa_id"], "ack": 3}, **fenced)
    types = [e.type for e in stored(settings)]
    assert types == ["message.received", "message.ack"]
    received, ack = stored(settings)
    assert received.payload_dict["message"]["body"] == inbound(1)["body"]
    assert ack.payload_dict["previous_ack"] == "SERVER" and ack.payload_dict["ack"] == "READ"


def test_removing_with_purge_keeps_the_events(settings, linked):
    assert session_events.deactivate(UnitOfWork(settings), linked.id, "w1", 3, True, lease_token=linked.token)
    found = stored(settings)
    assert [e.type for e in found] == ["session.status", "session.removed"]
    assert found[1].payload_dict == {"purged": True, "reason": "removed"}
    with UnitOfWork(settings) as uow:
        assert uow.db.get(WhatsappSession, linked.id) is None


def test_a_rolled_back_change_takes_its_event_and_number_with_it(settings, linked):
    with UnitOfWork(settings) as uow:
        events.emit(uow.db, linked.id, events.SESSION_QR, {"qr": "lost"})
        # no commit: the unit of work rolls back
    assert page_event(settings, linked, "qr", {"qr": "kept"})
    assert [(e.seq, e.payload_dict.get("qr")) for e in stored(settings) if e.type == "session.qr"] == [
        (2, "kept")
    ]


def test_sends_write_sent_then_failed_events(settings, linked, tenant):
    with UnitOfWork(settings) as uow:
        message = Message(
            company_id=tenant.company_id,
            session_id=linked.id,
            direction="out",
            body="hi",
            send_state="queued",
        )
        uow.db.add(message)
        uow.commit()
        message_id = message.id
    fenced = dict(lease_token=linked.token)
    uow = UnitOfWork(settings)
    assert outbox.mark_sending(
        uow, linked.id, "w1", 3, message_id, wa_key_id="K", wa_message_id="true_x_K", **fenced
    )
    assert outbox.mark_sent(uow, linked.id, "w1", 3, message_id, {"ack": 1}, **fenced)
    found = stored(settings)
    assert [e.type for e in found] == ["message.sent", "message.ack"]
    assert found[0].payload_dict["message"]["send_state"] == "sent"


def test_concurrent_writers_leave_no_gap_and_ids_follow_each_session(settings, tenant, database_url):
    """Ten sessions, a hundred events each from ten threads: gapless, ids in each session's order."""
    token = make_linked(settings, tenant.company_id, "s0").token
    ids = [make_linked(settings, tenant.company_id, f"t{n}", token).id for n in range(10)]
    errors: list[BaseException] = []

    def write(session_id: str) -> None:
        try:
            for n in range(100):
                with UnitOfWork(settings) as uow:
                    events.emit(uow.db, session_id, events.SESSION_QR, {"qr": str(n)})
                    uow.commit()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(sid,)) for sid in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    found = stored(settings)
    assert len(found) == 1000 and len({e.id for e in found}) == 1000
    for session_id in ids:
        mine = [e for e in found if e.session_id == session_id]
        # In id order, each session's numbers run 1..100 and its payloads in write order.
        assert [e.seq for e in mine] == list(range(1, 101))
        assert [e.payload_dict["qr"] for e in mine] == [str(n) for n in range(100)]


def test_cleanup_reports_purged_sessions_and_drops_events_past_retention(settings, tenant, other_tenant):
    from datetime import timedelta

    from shared.models import utcnow
    from shared.services import maintenance

    old = utcnow() - timedelta(days=400)
    with UnitOfWork(settings) as uow:
        gone = WhatsappSession(company_id=tenant.company_id, name="gone", is_active=False, updated_at=old)
        theirs = WhatsappSession(company_id=other_tenant.company_id, name="theirs")
        uow.db.add_all([gone, theirs])
        uow.commit()
        gone_id, theirs_id = gone.id, theirs.id
    for session_id in (gone_id, theirs_id):
        with UnitOfWork(settings) as uow:
            events.emit(uow.db, session_id, events.SESSION_QR, {"qr": "old"})
            uow.db.flush()
            uow.db.execute(update(Event).values(created_at=old))
            uow.commit()
    result = maintenance.apply_cleanup(UnitOfWork(settings), tenant.company_id)
    assert result["sessions_to_purge"] == 1 and result["events_purged"] == 1
    found = stored(settings)
    # The other company's old event is not this company's to purge; the purge itself is news.
    assert sorted((e.session_id, e.type) for e in found) == sorted(
        [(theirs_id, "session.qr"), (gone_id, "session.removed")]
    )
    removed = next(e for e in found if e.type == "session.removed")
    assert removed.payload_dict == {"purged": True, "reason": "cleanup"} and removed.seq == 2
