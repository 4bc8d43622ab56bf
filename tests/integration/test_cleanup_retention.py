"""Cleanup purges finished jobs past JOB_RETENTION_DAYS, counted in the plan (both databases)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from shared.models import Job, utcnow
from shared.services import maintenance
from shared.uow import UnitOfWork


def _job(company_id: str | None, *, days: float, status: str = "succeeded", **fields) -> Job:
    moment = utcnow() - timedelta(days=days)
    fields = {"created_at": moment, "finished_at": moment, **fields}
    return Job(company_id=company_id, kind="start", status=status, **fields)


def test_old_finished_jobs_are_purged_and_counted_within_the_scope(uow, tenant, other_tenant):
    with UnitOfWork(uow.settings) as u:
        jobs = {
            "ours-old": _job(tenant.company_id, days=40),
            "ours-old-failed": _job(tenant.company_id, days=31, status="failed"),
            "ours-recent": _job(tenant.company_id, days=29),
            # Unfinished: failed as stale first, never deleted at once.
            "ours-old-queued": _job(tenant.company_id, days=40, status="queued", finished_at=None),
            "theirs-old": _job(other_tenant.company_id, days=40),
            # A beat run that changed nothing: beat_jobs_purged counts it, jobs_purged must not.
            "beat-noop": _job(None, days=40, scheduled=True, noop=True),
            "beat-changed": _job(None, days=40, scheduled=True),
        }
        u.db.add_all(jobs.values())
        u.commit()
        ids = {name: job.id for name, job in jobs.items()}

    preview = maintenance.cleanup_preview(UnitOfWork(uow.settings), tenant.company_id)
    assert (preview["jobs_purged"], preview["stale_jobs"], preview["beat_jobs_purged"]) == (2, 1, 0)
    applied = maintenance.apply_cleanup(UnitOfWork(uow.settings), tenant.company_id)
    assert applied == {**preview, "dry_run": False}

    def left() -> set[str]:
        with UnitOfWork(uow.settings) as u:
            names = {job_id: name for name, job_id in ids.items()}
            return {names[job_id] for job_id in u.db.scalars(select(Job.id))}

    assert left() == {"ours-recent", "ours-old-queued", "theirs-old", "beat-noop", "beat-changed"}

    with UnitOfWork(uow.settings) as u:
        planned = maintenance.plan_cleanup(u.db, u.settings, None).metrics()
    assert (planned["jobs_purged"], planned["beat_jobs_purged"]) == (2, 1)  # theirs-old, beat-changed
    applied = maintenance.apply_cleanup(UnitOfWork(uow.settings), None)
    assert (applied["jobs_purged"], applied["beat_jobs_purged"]) == (2, 1)
    # The queued one was failed by the first cleanup: it goes a retention after it finished.
    assert left() == {"ours-recent", "ours-old-queued"}


def test_job_retention_is_a_setting(uow, tenant):
    with UnitOfWork(uow.settings) as u:
        u.db.add_all([_job(tenant.company_id, days=2), _job(tenant.company_id, days=0.5)])
        u.commit()
    assert maintenance.cleanup_preview(UnitOfWork(uow.settings), tenant.company_id)["jobs_purged"] == 0
    short = uow.settings.with_overrides(JOB_RETENTION_DAYS=1)
    assert maintenance.cleanup_preview(UnitOfWork(short), tenant.company_id)["jobs_purged"] == 1
    assert maintenance.apply_cleanup(UnitOfWork(short), tenant.company_id)["jobs_purged"] == 1
    with UnitOfWork(uow.settings) as u:
        assert len(list(u.db.scalars(select(Job)))) == 1


def test_the_probe_finds_each_kind_of_work_within_its_scope(uow, tenant, other_tenant):
    # The probe gates the cleanup's transaction: a kind it missed would never be cleaned.
    def nothing(company_id: str | None) -> bool:
        return maintenance.nothing_to_clean(UnitOfWork(uow.settings), company_id)

    assert nothing(tenant.company_id) and nothing(None)
    for job in (
        _job(other_tenant.company_id, days=40),  # finished past retention
        _job(other_tenant.company_id, days=1, status="queued", finished_at=None),  # stale
    ):
        with UnitOfWork(uow.settings) as u:
            u.db.add(job)
            u.commit()
        assert nothing(tenant.company_id) and not nothing(other_tenant.company_id) and not nothing(None)
        with UnitOfWork(uow.settings) as u:
            u.db.delete(u.db.get(Job, job.id))
            u.commit()
    with UnitOfWork(uow.settings) as u:
        u.db.add(_job(None, days=2, scheduled=True, noop=True))  # a beat run past its day
        u.commit()
    assert nothing(tenant.company_id) and not nothing(None)
