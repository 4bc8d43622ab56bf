"""Domain services called directly: jobs, workers, cleanup (both databases)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from shared.jobs import JobKind
from shared.models import Job, WhatsappSession, Worker, utcnow
from shared.services import jobs as job_services
from shared.services import maintenance, sessions, workers
from shared.uow import UnitOfWork


class RecordingPublisher:
    """Collects what would be published; can be told to fail like a dead broker."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.fail = fail

    def publish(self, kind, job_id, queue):
        from shared.errors import Unavailable

        if self.fail:
            raise Unavailable("message broker is unavailable")
        self.sent.append((JobKind(kind).value, job_id, queue))


def test_job_advances_queued_running_succeeded_and_is_idempotent(uow, tenant):
    publisher = RecordingPublisher()
    created = sessions.create_session(uow, publisher, tenant.company_id, "vendas")
    job_id = created.job.id
    assert publisher.sent == [("create", job_id, "control")]
    running = job_services.start_job(UnitOfWork(uow.settings), job_id, "w1")
    assert running.status == "running" and running.worker_id == "w1" and running.started_at
    job_services.finish_job(UnitOfWork(uow.settings), job_id, {"worker": "w1"})
    job_services.fail_job(UnitOfWork(uow.settings), job_id, "late duplicate")  # ignored
    again = job_services.start_job(UnitOfWork(uow.settings), job_id, "w2")  # redelivery
    assert again.status == "succeeded" and again.worker_id == "w1"
    done = job_services.get_job(UnitOfWork(uow.settings), tenant.company_id, job_id)
    assert done.result_dict == {"worker": "w1"} and done.error is None and done.finished_at


def test_start_job_of_an_invisible_row_returns_none(uow):
    assert job_services.start_job(uow, "f" * 32, "w1") is None


def test_publish_failure_rolls_back_everything(uow, tenant):
    from shared.errors import Unavailable

    with pytest.raises(Unavailable):
        sessions.create_session(uow, RecordingPublisher(fail=True), tenant.company_id, "vendas")
    with UnitOfWork(uow.settings) as check:
        assert check.db.scalars(select(WhatsappSession)).all() == []
        assert check.db.scalars(select(Job)).all() == []


def test_choose_worker_prefers_least_loaded_live_worker_under_capacity(uow, tenant):
    register = dict(hostname="h", lease_seconds=30)
    workers.register_worker(UnitOfWork(uow.settings), "w1", pid=1, capacity=2, **register)
    w2_token = workers.register_worker(UnitOfWork(uow.settings), "w2", pid=2, capacity=2, **register)
    workers.register_worker(UnitOfWork(uow.settings), "dead", pid=3, capacity=50, **register)
    with UnitOfWork(uow.settings) as u:
        u.db.get(Worker, "dead").heartbeat_at = utcnow() - timedelta(hours=1)
        for index, owner in enumerate(["w1", "w1", "w2"]):
            u.db.add(WhatsappSession(company_id=tenant.company_id, name=f"s{index}", worker_id=owner))
        u.commit()
    with UnitOfWork(uow.settings) as u:
        assert workers.worker_loads(u.db) == {"w1": 2, "w2": 1}
        assert workers.choose_worker(u.db, lease_seconds=30).id == "w2"
        u.db.add(WhatsappSession(company_id=tenant.company_id, name="s9", worker_id="w2"))
        u.commit()
    with UnitOfWork(uow.settings) as u:
        assert workers.choose_worker(u.db, lease_seconds=30) is None  # everyone full
    workers.mark_stopped(UnitOfWork(uow.settings), "w2", w2_token)
    with UnitOfWork(uow.settings) as u:
        assert [w.id for w in workers.live_workers(u.db, 30)] == ["w1"]


def test_cleanup_applies_exactly_what_the_preview_promised(uow, tenant, other_tenant):
    old = utcnow() - timedelta(days=400)
    with UnitOfWork(uow.settings) as u:
        u.db.add_all(
            [
                WhatsappSession(company_id=tenant.company_id, name="gone", is_active=False, updated_at=old),
                WhatsappSession(company_id=tenant.company_id, name="kept", is_active=True, updated_at=old),
                WhatsappSession(
                    company_id=tenant.company_id, name="stale-qr", status="CONNECTED", qr_code="2@x"
                ),
                WhatsappSession(
                    company_id=other_tenant.company_id, name="gone", is_active=False, updated_at=old
                ),
                Job(company_id=tenant.company_id, kind="create", status="queued", created_at=old),
            ]
        )
        u.commit()
    preview = maintenance.cleanup_preview(UnitOfWork(uow.settings), tenant.company_id)
    assert preview == {
        "dry_run": True,
        "sessions_to_purge": 1,
        "purge_session_names": ["gone"],
        "stale_jobs": 1,
        "stale_qr_codes": 1,
        "beat_jobs_purged": 0,
        "events_purged": 0,
        "jobs_purged": 0,
    }
    applied = maintenance.apply_cleanup(UnitOfWork(uow.settings), tenant.company_id)
    assert applied == {**preview, "dry_run": False}
    with UnitOfWork(uow.settings) as u:
        names = sorted(
            (s.company_id == tenant.company_id, s.name) for s in u.db.scalars(select(WhatsappSession))
        )
        assert names == [(False, "gone"), (True, "kept"), (True, "stale-qr")]
        assert u.db.scalar(select(Job)).status == "failed"
        assert u.db.scalar(select(WhatsappSession).where(WhatsappSession.name == "stale-qr")).qr_code is None
    again = maintenance.cleanup_preview(UnitOfWork(uow.settings), tenant.company_id)
    assert again["sessions_to_purge"] == 0 and again["stale_jobs"] == 0
