"""Items 1 and 3: jobs whose message was lost, or whose worker died, never stay pending."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from shared.config import set_settings
from shared.models import Job
from shared.uow import UnitOfWork
from tests.e2e.stack import wait_until
from tests.e2e.test_session_life import link_session

# Workers republish after 2 s instead of a minute.
FAST_REPUBLISH = {"JOB_REPUBLISH_SECONDS": "2"}


@pytest.fixture
def settings(settings):
    """These tests sync several times in a row: no coalescing of requests."""
    quick = settings.with_overrides(MAINTENANCE_COALESCE_SECONDS=0.0)
    set_settings(quick)
    return quick


def sync(api) -> dict:
    """Run a company sync and return its result."""
    job = api.call("post", "/session/sync", 202).get_json()
    done = api.wait_job(job["id"])
    assert done["status"] == "succeeded", done
    return done["result"]


def live_worker_ids(api) -> list[str]:
    return api.call("get", "/health").get_json()["workers"]


def assert_not_connected_with_a_dead_owner(api, name: str) -> None:
    details = api.call("get", f"/session/{name}/details", 200).get_json()
    assert not (details["session"]["status"] == "CONNECTED" and not details["owner_alive"]), details


def test_item_1_lost_broker_messages_are_republished_and_orphans_recovered(
    api, sim, start_worker, private_redis
):
    first = start_worker("w1", env=FAST_REPUBLISH)
    velha = link_session(api, sim, "velha")
    first.terminate()  # no worker runs: the next two messages wait on ``control``
    nova = api.call("post", "/session", 202, json={"name": "nova"}).get_json()
    restart = api.call("post", "/session/velha/restart", 202).get_json()
    assert {nova["job"]["queue"], restart["job"]["queue"]} == {"control"}
    private_redis.client().flushall()  # ... and are lost

    workers = {w: start_worker(w, env=FAST_REPUBLISH) for w in ("w1", "w2")}
    result = wait_until(
        lambda: (r := sync(api))["jobs_republished"] and r, 20, message="the lost jobs to be republished"
    )
    assert result["jobs_republished"] == 2
    assert api.wait_job(nova["job"]["id"])["status"] == "succeeded"
    assert api.wait_job(restart["job"]["id"])["status"] == "succeeded"
    api.wait_status("nova", "QRCODE")
    connected = api.wait_status("velha", "CONNECTED")

    owner = connected["worker_id"]
    workers[owner].kill()
    wait_until(lambda: owner not in live_worker_ids(api), 20, message=f"{owner}'s lease to expire")
    result = sync(api)
    assert "velha" in result["orphan_sessions"]
    assert_not_connected_with_a_dead_owner(api, "velha")
    moved = api.wait_status("velha", "CONNECTED", phone_number=velha["phone_number"])
    assert moved["worker_id"] != owner and moved["epoch"] > connected["epoch"]


def test_item_3_a_job_whose_worker_died_mid_run_is_failed_by_the_next_sync(
    api, sim, start_worker, settings, tenant
):
    doomed = start_worker("w1")
    start_worker("w2")
    session = link_session(api, sim, "vendas")
    assert session["worker_id"] == "w1"
    restart = api.call("post", "/session/vendas/restart", 202).get_json()["job"]
    wait_until(
        lambda: api.call("get", f"/jobs/{restart['id']}", 200).get_json()["status"] == "running",
        20,
        interval=0.02,
        message="the restart to be running on w1",
    )
    doomed.kill()  # mid-run: its message stays unacked in Redis for visibility_timeout
    with UnitOfWork(settings) as uow:  # and a job of a worker that is never seen again
        ghost = Job(
            company_id=tenant.company_id,
            session_id=session["id"],
            kind="start",
            status="running",
            worker_id="ghost",
            queue="worker.ghost",
        )
        uow.db.add(ghost)
        uow.commit()
        ghost_id = ghost.id

    wait_until(lambda: live_worker_ids(api) == ["w2"], 20, message="w1's lease to expire")
    result = sync(api)
    assert result["stranded_jobs_failed"] == 2 and result["orphan_sessions"] == ["vendas"]
    with UnitOfWork(settings) as uow:
        jobs = {job.id: job for job in uow.db.scalars(select(Job).where(Job.session_id == session["id"]))}
    for job_id in (restart["id"], ghost_id):
        assert jobs[job_id].status == "failed" and "worker died" in jobs[job_id].error
    assert_not_connected_with_a_dead_owner(api, "vendas")
    moved = api.wait_status("vendas", "CONNECTED", worker_id="w2")
    assert moved["phone_number"] == session["phone_number"]

    def unfinished() -> list[str]:
        with UnitOfWork(settings) as uow:
            return list(uow.db.scalars(select(Job.id).where(Job.status.in_(["queued", "running"]))))

    wait_until(lambda: not unfinished(), 20, message="every job to finish")
