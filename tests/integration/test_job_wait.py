"""Waiting for a job: ``GET /jobs/<id>?wait=``, the finish notices on real Redis, and the
worker's re-read of a job row that is not committed yet (both databases)."""

from __future__ import annotations

import threading

import pytest

from shared import job_notices
from shared.jobs import JobKind
from shared.models import Job
from shared.services import jobs as job_services
from shared.uow import UnitOfWork
from tests.e2e.stack import wait_until

# Long enough that only a finish notice can end a wait within the join below.
NEVER = 3600.0


def queued_job(settings, company_id: str) -> str:
    """A committed, queued cleanup job of ``company_id``."""
    with UnitOfWork(settings) as uow:
        job = job_services.record_job(uow.db, kind=JobKind.CLEANUP, queue="control", company_id=company_id)
        uow.commit()
        return job.id


def long_poll_in_thread(client, headers, job_id: str, wait: float) -> tuple[threading.Thread, dict]:
    """``GET /jobs/<id>?wait=`` in a thread of its own; the answer lands in the dict."""
    answer: dict = {}

    def run() -> None:
        response = client.get(f"/jobs/{job_id}?wait={wait}", headers=headers)
        answer.update(status_code=response.status_code, body=response.get_json())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, answer


def subscribers(redis_client, settings, job_id: str) -> int:
    [(_, count)] = redis_client.pubsub_numsub(job_notices.channel(settings, job_id))
    return count


def test_a_finished_job_is_answered_without_waiting(client, settings, tenant, monkeypatch):
    job_id = queued_job(settings, tenant.company_id)
    job_services.finish_job(UnitOfWork(settings), job_id, {"done": True})

    reads: list[str] = []
    real_read = job_services._company_job

    def counted(*args):
        reads.append(args[2])
        return real_read(*args)

    # One read and no pause: a pause would be followed by a second read.
    monkeypatch.setattr(job_services, "_company_job", counted)
    response = client.get(f"/jobs/{job_id}?wait=30", headers=tenant.admin)
    assert response.status_code == 200
    assert reads == [job_id]
    assert response.get_json()["status"] == "succeeded"
    assert response.get_json()["result"] == {"done": True}


def test_an_unfinished_job_is_answered_as_it_is_once_the_wait_is_over(client, settings, tenant):
    job_id = queued_job(settings, tenant.company_id)
    response = client.get(f"/jobs/{job_id}?wait=0.3", headers=tenant.admin)
    assert response.status_code == 200
    assert response.get_json()["status"] == "queued"


def test_the_finish_notice_ends_the_wait(client, settings, tenant, redis_client):
    client.application.extensions["zaphub"].settings = settings.with_overrides(
        JOB_WAIT_RECHECK_SECONDS=NEVER, JOB_WAIT_MAX_SECONDS=NEVER
    )
    job_id = queued_job(settings, tenant.company_id)
    thread, answer = long_poll_in_thread(client, tenant.admin, job_id, NEVER)
    # Finish only once the request listens: then nothing but the notice can wake it.
    wait_until(lambda: subscribers(redis_client, settings, job_id) == 1, 30, 0.02, "the long-poll")
    job_services.finish_job(UnitOfWork(settings), job_id, {"cleaned": 0})
    thread.join(60)  # a hang guard: without the notice it would wait an hour
    assert not thread.is_alive(), "the finish notice did not wake the long-poll"
    assert answer["status_code"] == 200
    assert answer["body"]["status"] == "succeeded" and answer["body"]["result"] == {"cleaned": 0}
    assert subscribers(redis_client, settings, job_id) == 0  # the subscription is closed


def test_a_lost_notice_only_delays_the_answer(client, settings, tenant):
    client.application.extensions["zaphub"].settings = settings.with_overrides(JOB_WAIT_RECHECK_SECONDS=0.2)
    job_id = queued_job(settings, tenant.company_id)
    thread, answer = long_poll_in_thread(client, tenant.admin, job_id, 30)
    # Finished behind the notices' back, as sync or cleanup fail jobs.
    with UnitOfWork(settings) as uow:
        uow.db.get(Job, job_id).status = "failed"
        uow.commit()
    thread.join(60)
    assert not thread.is_alive()
    assert answer["status_code"] == 200 and answer["body"]["status"] == "failed"


def test_notices_go_out_on_the_jobs_channel(settings, tenant, redis_client):
    job_id = queued_job(settings, tenant.company_id)
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(job_notices.channel(settings, job_id))
    try:
        job_services.fail_job(UnitOfWork(settings), job_id, "boom")
        message = None
        for _ in range(50):
            message = pubsub.get_message(timeout=0.2)
            if message:
                break
        assert message is not None and message["data"] == b"failed"
    finally:
        pubsub.close()


@pytest.mark.parametrize("wait", ["-1", "61", "abc", "nan", "inf"])
def test_a_bad_wait_is_refused(client, settings, tenant, wait):
    job_id = queued_job(settings, tenant.company_id)
    response = client.get(f"/jobs/{job_id}?wait={wait}", headers=tenant.admin)
    assert response.status_code == 422
    assert "wait" in response.get_json()["message"]


def test_another_companys_job_is_missing_even_when_waited_for(client, settings, tenant, other_tenant):
    job_id = queued_job(settings, other_tenant.company_id)
    response = client.get(f"/jobs/{job_id}?wait=5", headers=tenant.admin)
    assert response.status_code == 404


def test_a_worker_reads_a_job_row_again_until_it_is_committed(settings, tenant, monkeypatch):
    reads: list[object] = []
    real_start = job_services._start

    def counted(*args):
        found = real_start(*args)
        reads.append(found)
        return found

    monkeypatch.setattr(job_services, "_start", counted)
    with UnitOfWork(settings) as api_side:
        # The API's side: the row is flushed, published, not committed yet.
        job = job_services.record_job(
            api_side.db, kind=JobKind.CLEANUP, queue="control", company_id=tenant.company_id
        )
        job_id = job.id
        worker = UnitOfWork(settings.with_overrides(JOB_VISIBLE_WAIT=60.0))
        started: dict = {}
        thread = threading.Thread(
            target=lambda: started.update(job=job_services.start_job(worker, job_id, "w1")), daemon=True
        )
        thread.start()
        wait_until(lambda: len(reads) >= 1, 30, 0.01, "the worker's first read")
        api_side.commit()
    thread.join(60)
    assert reads[0] is None  # it did look before the commit
    assert started["job"] is not None and started["job"].status == "running"


def test_a_row_committed_just_after_the_claim_looked_is_claimed_not_skipped(settings, tenant, monkeypatch):
    # The claim's UPDATE found nothing (the API had not committed); the read just after
    # finds the row queued: it must be claimed then, not taken for a finished job.
    job_id = queued_job(settings, tenant.company_id)
    real_claim = job_services._claim
    misses = iter([True])

    def late(*args):
        return None if next(misses, False) else real_claim(*args)

    monkeypatch.setattr(job_services, "_claim", late)
    started = job_services.start_job(UnitOfWork(settings), job_id, "w1")
    assert started is not None and started.status == "running" and started.worker_id == "w1"
    with UnitOfWork(settings) as uow:
        assert uow.db.get(Job, job_id).status == "running"
