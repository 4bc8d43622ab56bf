"""Recovery logic of sync and cleanup, called directly (both databases).

Republishing lost jobs, orphans behind old pending jobs, the CONNECTING mark, the
outage hold, purging beat runs that changed nothing, and coalesced maintenance requests.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from shared import db as shared_db
from shared.jobs import JobKind
from shared.models import Job, WhatsappSession, Worker, utcnow
from shared.services import jobs as job_services
from shared.services import maintenance, sessions
from shared.services.ownership import (
    orphaned_sessions,
    placement_hold,
    republish_lost_jobs,
    requeue_orphans,
    route_job,
)
from shared.uow import UnitOfWork
from tests.integration.test_ownership import world  # noqa: F401 - fixture
from tests.integration.test_services import RecordingPublisher

LONG_AGO = timedelta(seconds=3600)


def add_queued(settings, tenant, queue: str, age: timedelta, session_id: str | None = None) -> str:
    with UnitOfWork(settings) as uow:
        job = Job(
            company_id=tenant.company_id,
            session_id=session_id,
            kind="start",
            status="queued",
            queue=queue,
            created_at=utcnow() - age,
            published_at=utcnow() - age,
            publish_count=1,
        )
        uow.db.add(job)
        uow.commit()
        return job.id


def job_row(settings, job_id: str) -> Job:
    with UnitOfWork(settings) as uow:
        return uow.db.get(Job, job_id)


def test_every_publish_is_recorded(uow, tenant, world):  # noqa: F811
    publisher = RecordingPublisher()
    created = sessions.create_session(uow, publisher, tenant.company_id, "nova")
    first = job_row(uow.settings, created.job.id)
    assert first.publish_count == 1 and first.published_at is not None
    job_services.start_job(UnitOfWork(uow.settings), created.job.id, "w2")
    route_job(UnitOfWork(uow.settings), publisher, created.job.id, "w2")  # placed on w1: forwarded
    forwarded = job_row(uow.settings, created.job.id)
    assert forwarded.queue == "worker.w1" and forwarded.publish_count == 2
    assert forwarded.published_at >= first.published_at


def test_jobs_queued_too_long_are_republished_once(settings, tenant, world):  # noqa: F811
    on_control = add_queued(settings, tenant, "control", LONG_AGO)
    on_live = add_queued(settings, tenant, "worker.w1", LONG_AGO)
    on_dead = add_queued(settings, tenant, "worker.dead", LONG_AGO)
    recent = add_queued(settings, tenant, "control", timedelta(seconds=1))
    publisher = RecordingPublisher()
    republished = republish_lost_jobs(UnitOfWork(settings), publisher, tenant.company_id)
    assert sorted(republished) == sorted([on_control, on_live, on_dead])
    assert sorted(publisher.sent) == sorted(
        [("start", on_control, "control"), ("start", on_live, "worker.w1"), ("start", on_dead, "control")]
    )
    assert job_row(settings, on_dead).queue == "control" and job_row(settings, on_dead).publish_count == 2
    assert recent not in republished
    # Just republished: not again on the next run, and never for another company.
    assert republish_lost_jobs(UnitOfWork(settings), publisher, None) == []
    assert republish_lost_jobs(UnitOfWork(settings), publisher, "another-company") == []


def test_an_old_pending_job_does_not_block_orphan_recovery(settings, tenant, world):  # noqa: F811
    job_id = add_queued(settings, tenant, "control", timedelta(seconds=1), session_id=world)
    assert orphaned_sessions(UnitOfWork(settings), None) == []
    with UnitOfWork(settings) as uow:
        uow.db.get(Job, job_id).published_at = utcnow() - LONG_AGO
        uow.commit()
    assert [s.id for s in orphaned_sessions(UnitOfWork(settings), None)] == [world]


def test_an_orphan_is_marked_connecting_unless_it_changed(settings, tenant, world):  # noqa: F811
    with UnitOfWork(settings) as uow:
        uow.db.get(WhatsappSession, world).qr_code = "2@stale"
        uow.commit()
    orphans = orphaned_sessions(UnitOfWork(settings), None)
    with UnitOfWork(settings) as uow:  # the owner came back and wrote a newer epoch meanwhile
        uow.db.execute(update(WhatsappSession).where(WhatsappSession.id == world).values(epoch=5))
        uow.commit()
    publisher = RecordingPublisher()
    assert requeue_orphans(UnitOfWork(settings), publisher, orphans) == []
    assert publisher.sent == []
    with UnitOfWork(settings) as uow:
        assert uow.db.get(WhatsappSession, world).status == "CONNECTED"

    orphans = orphaned_sessions(UnitOfWork(settings), None)
    [(session, job_id)] = requeue_orphans(UnitOfWork(settings), publisher, orphans)
    assert session.id == world and publisher.sent == [("start", job_id, "control")]
    with UnitOfWork(settings) as uow:
        row = uow.db.get(WhatsappSession, world)
        assert (row.status, row.qr_code, row.worker_id, row.epoch) == ("CONNECTING", None, "dead", 5)


def test_placement_holds_after_an_outage_or_when_every_worker_is_silent(settings, world, monkeypatch):  # noqa: F811
    assert placement_hold(UnitOfWork(settings)) is None
    monkeypatch.setattr(shared_db, "_last_outage", time.monotonic() - 1)
    assert placement_hold(UnitOfWork(settings)).startswith("database outage seen 1.")
    monkeypatch.setattr(shared_db, "_last_outage", time.monotonic() - settings.WORKER_LEASE - 1)
    assert placement_hold(UnitOfWork(settings)) is None
    with UnitOfWork(settings) as uow:  # every heartbeat lapsed at once, "dead" still owns a session
        uow.db.execute(update(Worker).values(heartbeat_at=utcnow() - timedelta(seconds=3600)))
        uow.commit()
    assert "every worker went silent" in placement_hold(UnitOfWork(settings))
    with UnitOfWork(settings) as uow:  # all of them stopped on purpose: nothing to wait for
        uow.db.execute(update(Worker).values(stopped_at=utcnow()))
        uow.commit()
    assert placement_hold(UnitOfWork(settings)) is None


def test_beat_runs_that_changed_nothing_are_purged_after_their_retention(settings, tenant):
    old, fresh = utcnow() - timedelta(seconds=settings.BEAT_NOOP_RETENTION_SECONDS + 60), utcnow()
    with UnitOfWork(settings) as uow:
        uow.db.add_all(
            [
                Job(kind="sync", status="succeeded", scheduled=True, noop=True, finished_at=old),
                Job(kind="sync", status="succeeded", scheduled=True, noop=True, finished_at=old),
                Job(kind="sync", status="succeeded", scheduled=True, noop=False, finished_at=old),
                Job(kind="sync", status="succeeded", scheduled=True, noop=True, finished_at=fresh),
                Job(kind="sync", status="succeeded", company_id=tenant.company_id, finished_at=old),
            ]
        )
        uow.commit()
    # Beat rows belong to no company: a company's preview and run both count none.
    assert maintenance.cleanup_preview(UnitOfWork(settings), tenant.company_id)["beat_jobs_purged"] == 0
    assert maintenance.apply_cleanup(UnitOfWork(settings), tenant.company_id)["beat_jobs_purged"] == 0
    with UnitOfWork(settings) as uow:
        planned = maintenance.plan_cleanup(uow.db, settings, None).metrics()["beat_jobs_purged"]
    assert planned == maintenance.apply_cleanup(UnitOfWork(settings), None)["beat_jobs_purged"] == 2
    with UnitOfWork(settings) as uow:
        assert len(list(uow.db.scalars(select(Job)))) == 3


@pytest.mark.parametrize(
    ("result", "noop"),
    [
        ({"dry_run": False, "stale_jobs": 0, "purge_session_names": []}, True),
        ({"skipped": "database outage seen 1.0 s ago", "orphans_requeued": 0}, True),
        ({"orphans_requeued": 1}, False),
    ],
)
def test_changed_nothing(result, noop):
    assert maintenance.changed_nothing(result) is noop


def test_a_second_request_within_the_window_gets_the_same_job(uow, tenant, other_tenant):
    publisher = RecordingPublisher()
    first = maintenance.request_sync(uow, publisher, tenant.company_id)
    assert maintenance.request_sync(UnitOfWork(uow.settings), publisher, tenant.company_id).id == first.id
    cleanup = maintenance.request_cleanup(UnitOfWork(uow.settings), publisher, tenant.company_id)
    other = maintenance.request_sync(UnitOfWork(uow.settings), publisher, other_tenant.company_id)
    assert len({first.id, cleanup.id, other.id}) == 3 and len(publisher.sent) == 3
    with UnitOfWork(uow.settings) as u:
        u.db.get(Job, first.id).created_at = utcnow() - timedelta(
            seconds=uow.settings.MAINTENANCE_COALESCE_SECONDS + 1
        )
        u.commit()
    assert maintenance.request_sync(UnitOfWork(uow.settings), publisher, tenant.company_id).id != first.id


class NoBrowserContext:
    """Just enough of a worker context to receive a job; any browser action would fail."""

    manager = None

    def __init__(self, settings) -> None:
        self.settings = settings
        self.worker_id = "w2"

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.settings)


@pytest.mark.parametrize("kind", [kind.value for kind in JobKind])
def test_a_duplicate_delivery_of_a_finished_job_changes_nothing(uow, tenant, kind, monkeypatch):
    from workers import tasks
    from workers.runner import run_session_job

    job_id = add_queued(uow.settings, tenant, "control", timedelta(0))
    with UnitOfWork(uow.settings) as u:
        u.db.get(Job, job_id).kind = kind
        u.commit()
    job_services.start_job(UnitOfWork(uow.settings), job_id, "w1")
    job_services.finish_job(UnitOfWork(uow.settings), job_id, {"done": True})
    before = job_row(uow.settings, job_id)
    ctx = NoBrowserContext(uow.settings)
    if kind in (JobKind.CLEANUP, JobKind.SYNC):
        monkeypatch.setattr(tasks, "current", lambda: ctx)
        tasks._run_maintenance(job_id, lambda *_: pytest.fail("a finished job ran again"))
    else:
        assert run_session_job(ctx, RecordingPublisher(), job_id) == {"done": True}
    after = job_row(uow.settings, job_id)
    assert after.status == "succeeded" and after.worker_id == "w1"
    assert (after.result, after.finished_at, after.started_at) == (
        before.result,
        before.finished_at,
        before.started_at,
    )
