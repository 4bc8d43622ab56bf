"""Item 8: a database outage longer than the lease re-places nothing."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from shared.celery_factory import create_celery
from shared.config import set_settings
from shared.models import Job
from shared.uow import UnitOfWork
from tests.e2e.stack import wait_until
from tests.e2e.test_session_life import link_session

PAUSE = 8.0  # twice the tests' 4 s lease


@pytest.fixture
def settings(settings):
    """Several syncs in a row: no coalescing of requests."""
    quick = settings.with_overrides(MAINTENANCE_COALESCE_SECONDS=0.0)
    set_settings(quick)
    return quick


def placement(api) -> dict[str, tuple[str, int, str]]:
    sessions = api.call("get", "/session", 200).get_json()["items"]
    return {s["name"]: (s["worker_id"], s["epoch"], s["status"]) for s in sessions}


def sync_results(settings) -> list[dict]:
    """Results of every sync job, once none is pending."""
    with UnitOfWork(settings) as uow:
        jobs = list(uow.db.scalars(select(Job).where(Job.kind == "sync")))
    if any(job.status in ("queued", "running") for job in jobs):
        return []
    return [job.result_dict for job in jobs if job.status == "succeeded"]


def test_item_8_a_database_outage_longer_than_the_lease_moves_no_session(
    api, sim, start_worker, settings, private_postgres
):
    start_worker("w1")
    start_worker("w2")
    link_session(api, sim, "loja-a", phone="5511999990001")
    link_session(api, sim, "loja-b", phone="5511999990002")
    before = placement(api)
    assert {owner for owner, _, _ in before.values()} == {"w1", "w2"}
    beat = create_celery(settings)

    private_postgres.pause()
    try:
        time.sleep(PAUSE - 2)
        for _ in range(4):  # beat ticks that reach the workers as the database comes back
            beat.send_task("zaphub.beat.sync", queue="control")
            time.sleep(0.5)
    finally:
        private_postgres.resume()
    for _ in range(3):  # and an admin's syncs, beside further ticks
        api.call("post", "/session/sync", 202)
        beat.send_task("zaphub.beat.sync", queue="control")
        time.sleep(1)

    results = wait_until(lambda: sync_results(settings), 60, message="the syncs to finish")
    assert any(r["skipped"] for r in results), results
    assert all(r["orphans_requeued"] == 0 and r["stranded_jobs_failed"] == 0 for r in results), results
    time.sleep(settings.WORKER_LEASE)  # past the hold: a normal sync finds nothing to move
    after_hold = api.call("post", "/session/sync", 202).get_json()
    result = api.wait_job(after_hold["id"])["result"]
    assert result["skipped"] is None and result["orphans_requeued"] == 0
    assert placement(api) == before
    assert {status for _, _, status in before.values()} == {"CONNECTED"}
