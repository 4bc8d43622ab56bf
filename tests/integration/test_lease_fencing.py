"""Item 7 (b): fenced writes are bound to the process holding the worker's lease (both databases)."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import pytest

from shared.models import WhatsappSession, Worker, utcnow
from shared.services import session_events
from shared.services import workers as worker_services
from shared.uow import UnitOfWork
from tests.integration.test_session_events import assert_fenced_out, row

LEASE = 30.0


def register(settings, pid: int, hostname: str = "elsewhere") -> str:
    return worker_services.register_worker(
        UnitOfWork(settings), "w1", hostname=hostname, pid=pid, capacity=5, lease_seconds=LEASE
    )


@pytest.fixture
def session_id(settings, tenant) -> str:
    with UnitOfWork(settings) as uow:
        session = WhatsappSession(company_id=tenant.company_id, name="vendas", worker_id="w1", epoch=3)
        uow.db.add(session)
        uow.commit()
        return session.id


def test_item_7_a_write_with_an_old_or_wrong_lease_token_is_fenced_out(settings, session_id):
    old = register(settings, pid=100)
    with UnitOfWork(settings) as uow:  # the first process went down gracefully
        uow.db.get(Worker, "w1").stopped_at = utcnow()
        uow.commit()
    new = register(settings, pid=200)
    assert new != old and len(new) == 32

    assert_fenced_out(settings, session_id, "w1", 3, old)
    assert_fenced_out(settings, session_id, "w1", 3, "0" * 32)
    assert not worker_services.heartbeat(UnitOfWork(settings), "w1", old)

    assert worker_services.heartbeat(UnitOfWork(settings), "w1", new)
    assert session_events.apply_event(
        UnitOfWork(settings), session_id, "w1", 3, "qr", {"qr": "2@x"}, lease_token=new
    )
    assert row(settings, session_id).qr_code == "2@x"


def test_item_7_a_live_lease_refuses_a_second_process_but_not_a_dead_or_stopped_one(settings):
    first = register(settings, pid=100, hostname="host-a")
    with pytest.raises(worker_services.WorkerIdInUse, match="WORKER_ID"):  # another machine
        register(settings, pid=200, hostname="host-b")
    assert worker_services.heartbeat(UnitOfWork(settings), "w1", first)  # still the holder

    # Same host, and the recorded process is gone (SIGKILLed): no need to wait for the lease.
    host = socket.gethostname()
    with UnitOfWork(settings) as uow:
        worker = uow.db.get(Worker, "w1")
        worker.hostname, worker.pid = host, _dead_pid()
        uow.commit()
    second = register(settings, pid=os.getpid(), hostname=host)
    with pytest.raises(worker_services.WorkerIdInUse):  # ...but a live one on this host holds it
        register(settings, pid=os.getpid() + 1, hostname=host)

    worker_services.mark_stopped(UnitOfWork(settings), "w1", second)
    register(settings, pid=300)  # stopped gracefully: free at once

    with UnitOfWork(settings) as uow:  # an expired lease is free too
        uow.db.get(Worker, "w1").heartbeat_at = utcnow() - timedelta(seconds=LEASE + 1)
        uow.commit()
    register(settings, pid=400)


def _dead_pid() -> int:
    """A pid that no process has right now."""
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1
