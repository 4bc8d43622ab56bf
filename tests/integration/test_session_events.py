"""Event writes are fenced by owner, epoch and lease; events map to the documented columns."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import undefer

from shared.models import Event, WhatsappSession, utcnow
from shared.services import session_events
from shared.services import workers as worker_services
from shared.services.events import ADMIN_ONLY_TYPES, EVENT_TYPES, SESSION_PAIRING_CODE
from shared.services.ownership import sessions_to_restore
from shared.uow import UnitOfWork


@pytest.fixture
def token(settings) -> str:
    """The lease token of the process registered as w1."""
    return worker_services.register_worker(
        UnitOfWork(settings), "w1", hostname="h", pid=1, capacity=5, lease_seconds=30
    )


@pytest.fixture
def session_id(settings, tenant, token) -> str:
    with UnitOfWork(settings) as uow:
        row = WhatsappSession(company_id=tenant.company_id, name="vendas", worker_id="w1", epoch=3)
        uow.db.add(row)
        uow.commit()
        return row.id


def row(settings, session_id) -> WhatsappSession:
    with UnitOfWork(settings) as uow:
        return uow.db.get(WhatsappSession, session_id, options=[undefer(WhatsappSession.auth_state)])


@pytest.mark.parametrize("worker,epoch", [("w1", 2), ("w2", 3), ("w1", 4)])
def test_writes_from_a_stale_owner_or_epoch_change_nothing(settings, session_id, token, worker, epoch):
    assert_fenced_out(settings, session_id, worker, epoch, token)


def assert_fenced_out(settings, session_id, worker, epoch, token) -> None:
    fenced = dict(lease_token=token)
    assert not session_events.apply_event(
        UnitOfWork(settings), session_id, worker, epoch, "qr", {"qr": "2@x"}, **fenced
    )
    assert not session_events.set_memory_status(
        UnitOfWork(settings), session_id, worker, epoch, "error", "x", **fenced
    )
    assert not session_events.save_login_state(
        UnitOfWork(settings), session_id, worker, epoch, b"s", **fenced
    )
    assert not session_events.deactivate(
        UnitOfWork(settings), session_id, worker, epoch, purge=True, **fenced
    )
    current = row(settings, session_id)
    assert current.status == "DISCONNECTED" and current.qr_code is None
    assert current.auth_state is None and current.is_active is True


def test_events_write_what_the_design_says(settings, session_id, token):
    def apply(event, payload=None):
        assert session_events.apply_event(
            UnitOfWork(settings), session_id, "w1", 3, event, payload or {}, lease_token=token
        )
        return row(settings, session_id)

    assert apply("connecting").status == "CONNECTING"
    waiting = apply("qr", {"qr": "2@abc"})
    assert waiting.status == "QRCODE" and waiting.qr_code == "2@abc"
    assert apply("authenticated").qr_code is None
    ready = apply("ready", {"phone_number": "5511", "push_name": "Loja"})
    assert (ready.status, ready.phone_number, ready.push_name) == ("CONNECTED", "5511", "Loja")
    assert ready.last_seen is not None
    assert session_events.save_login_state(
        UnitOfWork(settings), session_id, "w1", 3, b"archive", lease_token=token
    )
    failed = apply("auth_failure", {"reason": "repeated start failures"})
    assert failed.status == "ERROR" and failed.last_error == "repeated start failures"
    stopped = apply("disconnected", {"reason": "stopped"})
    assert stopped.status == "DISCONNECTED" and stopped.auth_state == b"archive"
    logged_out = apply("disconnected", {"reason": "logout"})
    assert logged_out.last_error == "logout" and logged_out.auth_state is None


def test_restore_picks_sessions_meant_to_be_live(settings, tenant):
    cases = {
        "connected": dict(status="CONNECTED"),
        "qr": dict(status="QRCODE"),
        "stopped-with-login": dict(status="DISCONNECTED", auth_state=b"a", last_error=None),
        "stopped-waiting-for-qr": dict(status="DISCONNECTED", last_error=None),
        "qr-timeout": dict(status="DISCONNECTED", last_error="qr timeout"),
        "conflict": dict(status="DISCONNECTED", auth_state=b"a", last_error="conflict"),
        "logout": dict(status="DISCONNECTED", last_error="logout"),
        "error": dict(status="ERROR", auth_state=b"a", last_error="bad"),
        "inactive": dict(status="CONNECTED", is_active=False),
        "elsewhere": dict(status="CONNECTED", worker_id="w2"),
    }
    with UnitOfWork(settings) as uow:
        for name, fields in cases.items():
            fields = {"worker_id": "w1", **fields}
            if fields.get("auth_state"):
                from shared.models import utcnow

                fields["auth_state_updated_at"] = utcnow()
            uow.db.add(WhatsappSession(company_id=tenant.company_id, name=name, **fields))
        uow.commit()
        names = {s.id: s.name for s in uow.db.query(WhatsappSession)}
    restored = {names[sid] for sid, _ in sessions_to_restore(UnitOfWork(settings), "w1")}
    assert restored == {"connected", "qr", "stopped-with-login", "stopped-waiting-for-qr"}


def test_a_pairing_code_is_an_admin_event_written_with_the_fence(settings, session_id, token):
    assert SESSION_PAIRING_CODE == "session.pairing_code" and SESSION_PAIRING_CODE in EVENT_TYPES
    assert SESSION_PAIRING_CODE in ADMIN_ONLY_TYPES
    payload = {"code": "ABCD1234", "phone": "5511999990001"}

    def events() -> list[Event]:
        with UnitOfWork(settings) as uow:
            return list(
                uow.db.scalars(select(Event).where(Event.session_id == session_id).order_by(Event.id))
            )

    # Fenced out: neither the change nor its event.
    assert not session_events.apply_event(
        UnitOfWork(settings), session_id, "w1", 2, "pairing_code", payload, lease_token=token
    )
    assert events() == []

    assert session_events.apply_event(
        UnitOfWork(settings), session_id, "w1", 3, "qr", {"qr": "2@abc"}, lease_token=token
    )
    before = utcnow()
    assert session_events.apply_event(
        UnitOfWork(settings), session_id, "w1", 3, "pairing_code", payload, lease_token=token
    )
    waiting = row(settings, session_id)
    assert waiting.status == "QRCODE" and waiting.qr_code is None  # the page shows the code, not a QR
    kinds = [(e.type, e.seq) for e in events()]
    assert kinds == [("session.status", 1), ("session.qr", 2), ("session.pairing_code", 3)]
    data = events()[-1].payload_dict
    assert {k: data[k] for k in ("code", "phone")} == payload
    expires = datetime.fromisoformat(data["expires_at"])
    interval = timedelta(seconds=settings.PAIRING_CODE_INTERVAL)
    assert before + interval <= expires <= utcnow() + interval


def test_not_portable_keeps_the_status_and_says_why(settings, session_id, token):
    fenced = dict(lease_token=token)
    assert session_events.apply_event(
        UnitOfWork(settings), session_id, "w1", 3, "ready", {"phone_number": "5511999990001"}, **fenced
    )
    reason = "IndexedDB wawc_db_enc/keys holds a AES-GCM CryptoKey with no recorded material"
    assert session_events.apply_event(
        UnitOfWork(settings), session_id, "w1", 3, "not_portable", {"reason": reason}, **fenced
    )
    current = row(settings, session_id)
    assert (current.status, current.last_error) == ("CONNECTED", reason)
    with UnitOfWork(settings) as uow:
        statuses = uow.db.scalars(select(Event).where(Event.session_id == session_id)).all()
    assert [json.loads(e.payload)["status"] for e in statuses if e.type == "session.status"] == ["CONNECTED"]
