"""Cleanup and sync jobs run by a real worker, from the API and from beat's schedule."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from shared.celery_factory import create_celery
from shared.models import Job, WhatsappSession, utcnow
from shared.uow import UnitOfWork
from tests.e2e.stack import wait_until


def test_cleanup_job_result_holds_the_metrics(api, start_worker, settings, tenant):
    start_worker("w1")
    with UnitOfWork(settings) as uow:
        uow.db.add(
            WhatsappSession(
                company_id=tenant.company_id,
                name="old",
                is_active=False,
                updated_at=utcnow() - timedelta(days=365),
            )
        )
        uow.commit()
    preview = api.call("get", "/session/cleanup", 200).get_json()
    job = api.call("post", "/session/cleanup", 202).get_json()
    done = api.wait_job(job["id"])
    assert done["status"] == "succeeded" and done["worker_id"] == "w1"
    assert done["result"]["sessions_to_purge"] == preview["sessions_to_purge"] == 1
    assert done["result"]["dry_run"] is False
    assert api.call("get", "/session/old").status_code == 404


def test_beat_tasks_record_global_jobs(start_worker, settings, tmp_path):
    worker = start_worker("w1")
    stray = worker.sessions_dir / ("f" * 32)
    stray.mkdir(parents=True)
    celery = create_celery(settings)
    for task in ("zaphub.beat.cleanup", "zaphub.beat.sync"):
        celery.send_task(task, queue="control")

    def finished() -> list[Job]:
        with UnitOfWork(settings) as uow:
            jobs = list(uow.db.scalars(select(Job).where(Job.company_id.is_(None))))
        return jobs if len(jobs) == 2 and all(j.status == "succeeded" for j in jobs) else []

    jobs = {job.kind: job for job in wait_until(finished, 30, message="beat jobs")}
    assert jobs["cleanup"].result_dict["profile_folders_removed"] == 1
    assert jobs["sync"].result_dict["orphans_requeued"] == 0
    assert not stray.exists()
