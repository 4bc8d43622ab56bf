"""Routing of session jobs: placement, forwarding, fencing by epoch, stranded jobs."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shared.models import Job, WhatsappSession, Worker, utcnow
from shared.services.ownership import (
    Verdict,
    fail_interrupted_jobs,
    fail_stranded_jobs,
    orphaned_sessions,
    route_job,
)
from shared.uow import UnitOfWork
from tests.integration.test_services import RecordingPublisher


@pytest.fixture
def world(settings, tenant):
    """Workers w1 (live), w2 (live), dead (lease expired); a session owned by dead at epoch 4."""
    with UnitOfWork(settings) as uow:
        for worker_id, age in (("w1", 0), ("w2", 0), ("dead", 3600)):
            uow.db.add(
                Worker(
                    id=worker_id,
                    queue=f"worker.{worker_id}",
                    capacity=5,
                    heartbeat_at=utcnow() - timedelta(seconds=age),
                )
            )
        session = WhatsappSession(
            company_id=tenant.company_id, name="vendas", worker_id="dead", epoch=4, status="CONNECTED"
        )
        uow.db.add(session)
        uow.commit()
        return session.id


def add_job(settings, tenant, session_id, kind, **params) -> str:
    with UnitOfWork(settings) as uow:
        job = Job(
            company_id=tenant.company_id,
            session_id=session_id,
            kind=kind,
            params=json.dumps(params),
            status="running",
        )
        uow.db.add(job)
        uow.commit()
        return job.id


def session_row(settings, session_id) -> WhatsappSession:
    with UnitOfWork(settings) as uow:
        return uow.db.get(WhatsappSession, session_id)


def test_a_dead_owner_is_replaced_and_the_job_forwarded(settings, tenant, world):
    publisher = RecordingPublisher()
    job_id = add_job(settings, tenant, world, "restart", epoch=4)
    routing = route_job(UnitOfWork(settings), publisher, job_id, me="w2")
    assert routing.verdict is Verdict.FORWARDED and routing.owner == "w1" and routing.epoch == 5
    assert publisher.sent == [("restart", job_id, "worker.w1")]
    row = session_row(settings, world)
    assert (row.worker_id, row.epoch) == ("w1", 5)
    with UnitOfWork(settings) as uow:
        job = uow.db.get(Job, job_id)
        assert job.status == "queued" and job.queue == "worker.w1" and job.params_dict["epoch"] == 5


def test_the_owner_runs_its_own_job(settings, tenant, world):
    with UnitOfWork(settings) as uow:
        uow.db.get(WhatsappSession, world).worker_id = "w1"
        uow.commit()
    publisher = RecordingPublisher()
    routing = route_job(
        UnitOfWork(settings), publisher, add_job(settings, tenant, world, "start", epoch=4), "w1"
    )
    assert routing.verdict is Verdict.RUN and routing.epoch == 4 and publisher.sent == []


def test_a_restart_issued_for_an_older_epoch_is_stale(settings, tenant, world):
    publisher = RecordingPublisher()
    routing = route_job(
        UnitOfWork(settings), publisher, add_job(settings, tenant, world, "restart", epoch=3), "w1"
    )
    assert routing.verdict is Verdict.STALE and "epoch 3" in routing.reason
    assert publisher.sent == []
    assert (session_row(settings, world).worker_id, session_row(settings, world).epoch) == ("dead", 4)


@pytest.mark.parametrize("kind", ["stop", "remove"])
def test_closing_jobs_survive_a_move_and_any_live_worker_takes_them(settings, tenant, world, kind):
    publisher = RecordingPublisher()
    routing = route_job(
        UnitOfWork(settings), publisher, add_job(settings, tenant, world, kind, epoch=2), "w2"
    )
    assert routing.verdict is Verdict.RUN and routing.owner == "w2" and routing.epoch == 5
    assert publisher.sent == []


def test_no_live_worker_with_capacity(settings, tenant, world):
    with UnitOfWork(settings) as uow:
        for worker_id in ("w1", "w2"):
            uow.db.get(Worker, worker_id).capacity = 0
        uow.commit()
    routing = route_job(
        UnitOfWork(settings), RecordingPublisher(), add_job(settings, tenant, world, "start"), "w1"
    )
    assert routing.verdict is Verdict.NO_WORKER and "capacity" in routing.reason
    assert session_row(settings, world).epoch == 4


def test_a_job_for_a_purged_session_is_gone(settings, tenant, world):
    job_id = add_job(settings, tenant, world, "remove", purge=True)
    with UnitOfWork(settings) as uow:
        uow.db.delete(uow.db.get(WhatsappSession, world))
        uow.commit()
    assert route_job(UnitOfWork(settings), RecordingPublisher(), job_id, "w1").verdict is Verdict.GONE


def test_stranded_and_interrupted_jobs_are_failed_and_orphans_found(settings, tenant, world):
    with UnitOfWork(settings) as uow:
        uow.db.add_all(
            [
                Job(kind="start", session_id=world, status="queued", queue="worker.dead"),
                Job(kind="start", status="queued", queue="worker.w1"),
                Job(kind="start", status="queued", queue="control"),
                Job(kind="restart", status="running", worker_id="dead", queue="worker.dead"),
                Job(kind="restart", status="running", worker_id="w2", queue="worker.w2"),
            ]
        )
        uow.commit()
    assert orphaned_sessions(UnitOfWork(settings), None) == []  # a job is still pending for it
    assert fail_stranded_jobs(UnitOfWork(settings), None) == 2
    assert [s.id for s in orphaned_sessions(UnitOfWork(settings), None)] == [world]
    assert fail_interrupted_jobs(UnitOfWork(settings), "w2") == 1
    with UnitOfWork(settings) as uow:
        statuses = sorted(j.status for j in uow.db.query(Job))
    assert statuses == ["failed", "failed", "failed", "queued", "queued"]
