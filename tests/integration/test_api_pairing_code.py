"""``POST /session/<name>/pairing-code`` against a real database (SQLite and PostgreSQL) and Redis.

No worker runs here: a thread stands in for it and closes the pair job the way the
worker's runner does, so the route's wait, its answers and what it enqueues are real.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from shared.config import CONTROL_QUEUE
from shared.jobs import JobKind
from shared.models import Event, Job, WhatsappSession, Worker, utcnow
from shared.services import jobs as job_services
from shared.services import session_events
from shared.services import workers as worker_services
from shared.uow import UnitOfWork
from tests.broker_inspect import drain, published

PHONE = "5511999990001"
RESULT = {"code": "ABCD1234", "phone": PHONE, "expires_at": "2030-01-01T00:00:00+00:00"}


@pytest.fixture(autouse=True)
def empty_queues(redis_client, broker_prefix):
    drain(redis_client, broker_prefix, CONTROL_QUEUE, "worker.w1")
    yield
    drain(redis_client, broker_prefix, CONTROL_QUEUE, "worker.w1")


@pytest.fixture
def fast_client(settings):
    """The API with a short wait for the worker, so the 202 path takes half a second."""
    from api import create_app

    return create_app(settings.with_overrides(PAIRING_CODE_WAIT=0.5)).test_client()


def make_session(settings, tenant, name="vendas", status="QRCODE", **fields) -> str:
    with UnitOfWork(settings) as uow:
        row = WhatsappSession(company_id=tenant.company_id, name=name, status=status, **fields)
        uow.db.add(row)
        uow.commit()
        return row.id


def pair_jobs(settings) -> list[Job]:
    with UnitOfWork(settings) as uow:
        return list(uow.db.scalars(select(Job).where(Job.kind == JobKind.PAIR.value)))


def fake_worker(settings, *, error: str | None = None) -> threading.Thread:
    """Closes the first pair job that shows up, as the worker's runner would."""

    def run() -> None:
        for _ in range(200):
            jobs = pair_jobs(settings)
            if jobs:
                if error:
                    job_services.fail_job(UnitOfWork(settings), jobs[0].id, error)
                else:
                    job_services.finish_job(UnitOfWork(settings), jobs[0].id, {"worker_id": "w1", **RESULT})
                return
            threading.Event().wait(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_answers_the_workers_code(client, tenant, settings, redis_client, broker_prefix):
    make_session(settings, tenant)
    worker = fake_worker(settings)
    response = client.post("/session/vendas/pairing-code", json={"phone": PHONE}, headers=tenant.admin)
    worker.join(5)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == RESULT
    (job,) = pair_jobs(settings)
    assert job.params_dict == {"phone": PHONE, "epoch": 0} and job.queue == CONTROL_QUEUE
    assert [(m.task, m.args) for m in published(redis_client, broker_prefix, CONTROL_QUEUE)] == [
        ("zaphub.session.pair", [job.id])
    ]


def test_goes_to_the_live_owners_queue(fast_client, tenant, settings, redis_client, broker_prefix):
    with UnitOfWork(settings) as uow:
        uow.db.add(Worker(id="w1", queue="worker.w1", capacity=5, heartbeat_at=utcnow()))
        uow.commit()
    make_session(settings, tenant, worker_id="w1", epoch=2)
    response = fast_client.post("/session/vendas/pairing-code", json={"phone": PHONE}, headers=tenant.admin)
    assert response.status_code == 202
    job = response.get_json()
    assert job["kind"] == "pair" and job["status"] == "queued" and job["queue"] == "worker.w1"
    assert job["params"] == {"phone": PHONE, "epoch": 2}
    assert [m.args for m in published(redis_client, broker_prefix, "worker.w1")] == [[job["id"]]]


def test_a_refused_request_gives_the_jobs_error(client, tenant, settings):
    make_session(settings, tenant)
    worker = fake_worker(settings, error="PairingRefused: the page refused to link by phone number: x")
    response = client.post("/session/vendas/pairing-code", json={"phone": PHONE}, headers=tenant.admin)
    worker.join(5)
    assert response.status_code == 409
    assert "the page refused to link by phone number" in response.get_json()["message"]


@pytest.mark.parametrize(
    "body",
    [{"phone": "+5511999990001"}, {"phone": "1234567"}, {"phone": "1" * 16}, {"phone": 5511999990001}, {}],
)
def test_a_bad_phone_is_422_and_enqueues_nothing(client, tenant, settings, body):
    make_session(settings, tenant)
    response = client.post("/session/vendas/pairing-code", json=body, headers=tenant.admin)
    assert response.status_code == 422
    assert "phone" in response.get_data(as_text=True)
    assert pair_jobs(settings) == []


@pytest.mark.parametrize(
    "status,words",
    [("CONNECTED", "already linked"), ("DISCONNECTED", "not waiting"), ("CONNECTING", "QRCODE")],
)
def test_only_a_session_waiting_to_link_gets_a_code(client, tenant, settings, status, words):
    make_session(settings, tenant, status=status)
    response = client.post("/session/vendas/pairing-code", json={"phone": PHONE}, headers=tenant.admin)
    assert response.status_code == 409
    assert words in response.get_json()["message"]
    assert pair_jobs(settings) == []


def test_admins_only_and_never_another_companys_session(client, tenant, other_tenant, settings):
    make_session(settings, tenant)
    as_agent = client.post("/session/vendas/pairing-code", json={"phone": PHONE}, headers=tenant.agent)
    assert as_agent.status_code == 403
    elsewhere = client.post("/session/vendas/pairing-code", json={"phone": PHONE}, headers=other_tenant.admin)
    assert elsewhere.status_code == 404
    assert pair_jobs(settings) == []


def test_agents_never_read_the_code_from_a_job(client, tenant, settings):
    make_session(settings, tenant)
    worker = fake_worker(settings)
    client.post("/session/vendas/pairing-code", json={"phone": PHONE}, headers=tenant.admin)
    worker.join(5)
    (job,) = pair_jobs(settings)
    as_admin = client.get(f"/jobs/{job.id}", headers=tenant.admin).get_json()
    assert as_admin["result"]["code"] == RESULT["code"]
    as_agent = client.get(f"/jobs/{job.id}", headers=tenant.agent).get_json()
    assert "code" not in as_agent["result"] and as_agent["result"]["phone"] == PHONE
    details = client.get("/session/vendas/details", headers=tenant.agent).get_json()
    assert all("code" not in (j["result"] or {}) for j in details["jobs"])


def test_pairing_code_events_are_for_admins_only(client, tenant, settings):
    # From CONNECTING, so the change also makes a session.status event agents may read.
    session_id = make_session(settings, tenant, status="CONNECTING", worker_id="w1", epoch=1)
    token = worker_services.register_worker(
        UnitOfWork(settings), "w1", hostname="h", pid=1, capacity=5, lease_seconds=30
    )
    assert session_events.apply_event(
        UnitOfWork(settings),
        session_id,
        "w1",
        1,
        "pairing_code",
        {"code": "WXYZ5678", "phone": PHONE},
        lease_token=token,
    )
    admin = client.get("/events?type=session.pairing_code", headers=tenant.admin).get_json()["items"]
    assert [e["payload"]["code"] for e in admin] == ["WXYZ5678"]
    agent = client.get("/events", headers=tenant.agent).get_json()["items"]
    assert [e["type"] for e in agent] == ["session.status"]
    asked = client.get("/events?type=session.pairing_code", headers=tenant.agent)
    assert asked.status_code == 403 and "session.pairing_code" in asked.get_json()["message"]
    with UnitOfWork(settings) as uow:
        assert uow.db.scalar(select(func.count()).select_from(Event)) == len(admin) + len(agent)


def test_the_worker_task_has_the_jobs_explicit_name():
    from workers.tasks import pair_session

    assert pair_session.name == "zaphub.session.pair"
