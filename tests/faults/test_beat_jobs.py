"""Item 2: beat ticks do not pile up while no worker runs, nor leave rows forever."""

from __future__ import annotations

import time

from sqlalchemy import select

from shared.celery_factory import create_celery
from shared.models import Job
from shared.services import maintenance
from shared.uow import UnitOfWork
from tests.e2e.stack import WORKER_ENV, Beat, wait_until

TICK = 0.5  # beat's sync interval here, so ticks come fast


def beat_jobs(settings) -> list[Job]:
    """Jobs of no company: beat's runs."""
    with UnitOfWork(settings) as uow:
        return list(uow.db.scalars(select(Job).where(Job.company_id.is_(None))))


def finished_beat_jobs(settings, count: int) -> list[Job]:
    jobs = beat_jobs(settings)
    return jobs if len(jobs) == count and all(job.finished_at for job in jobs) else []


def test_item_2_beat_ticks_expire_and_noop_beat_rows_are_purged(
    start_worker, settings, private_redis, tmp_path
):
    broker = private_redis.client()
    # A real beat on the private broker, ticking a sync every TICK seconds.
    beat = Beat(settings, tmp_path, {**WORKER_ENV, "SYNC_INTERVAL": str(TICK)}).start()
    try:
        wait_until(lambda: broker.llen("control") >= 4, 30, message="beat ticks while no worker runs")
    finally:
        beat.stop()
    start_worker("w1", env={"BEAT_NOOP_RETENTION_SECONDS": "1"})
    wait_until(lambda: broker.llen("control") == 0, 20, message="the stale ticks to be consumed")
    time.sleep(1)
    assert beat_jobs(settings) == []  # each tick expired after one interval: none ran

    celery = create_celery(settings)
    for _ in range(3):  # ticks that do run, and change nothing
        celery.send_task("zaphub.beat.sync", queue="control")
    noop = wait_until(lambda: finished_beat_jobs(settings, 3), 30, message="three beat syncs")
    assert all(job.scheduled and job.noop for job in noop)
    time.sleep(1.5)  # past the retention the worker was given
    with UnitOfWork(settings.with_overrides(BEAT_NOOP_RETENTION_SECONDS=1.0)) as uow:
        preview = maintenance.plan_cleanup(uow.db, uow.settings, None).metrics()
    assert preview["beat_jobs_purged"] == 3

    celery.send_task("zaphub.beat.cleanup", queue="control")
    [cleanup] = wait_until(
        lambda: [j for j in beat_jobs(settings) if j.kind == "cleanup" and j.finished_at],
        30,
        message="the beat cleanup",
    )
    assert cleanup.result_dict["beat_jobs_purged"] == 3 and cleanup.noop is False
    assert [job.id for job in beat_jobs(settings)] == [cleanup.id]
