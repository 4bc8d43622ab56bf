"""``Prefer: wait=N`` (RFC 7240) on ``POST /session/cleanup`` and ``/session/sync``: the
finished job at once (200), or the job as it is after N seconds (202), on both databases,
with real Redis notices."""

from __future__ import annotations

import threading
import time

import pytest

from shared.models import Job
from shared.services import jobs as job_services
from shared.uow import UnitOfWork
from tests.e2e.stack import wait_until
from tests.integration.test_job_wait import NEVER, subscribers


def post_in_thread(
    client, headers, prefer: str | None, path: str = "/session/cleanup"
) -> tuple[threading.Thread, dict]:
    """``POST path`` in a thread of its own; the answer lands in the dict."""
    answer: dict = {}

    def run() -> None:
        extra = {"Prefer": prefer} if prefer else {}
        started = time.monotonic()
        response = client.post(path, headers=headers | extra)
        answer.update(
            status_code=response.status_code,
            body=response.get_json(),
            applied=response.headers.get("Preference-Applied"),
            seconds=time.monotonic() - started,
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, answer


def newest_job_id(settings, company_id: str) -> str | None:
    with UnitOfWork(settings) as uow:
        job = uow.db.query(Job).filter(Job.company_id == company_id).order_by(Job.created_at.desc()).first()
        return job.id if job else None


def test_a_job_that_finishes_within_the_wait_is_answered_200(client, settings, tenant, redis_client):
    client.application.extensions["zaphub"].settings = settings.with_overrides(
        JOB_WAIT_RECHECK_SECONDS=NEVER, JOB_WAIT_MAX_SECONDS=NEVER
    )
    thread, answer = post_in_thread(client, tenant.admin, "wait=3600")
    wait_until(lambda: newest_job_id(settings, tenant.company_id) is not None, 30, 0.02, "the job row")
    job_id = newest_job_id(settings, tenant.company_id)
    # Finish only once the request listens: then nothing but the notice can wake it.
    wait_until(lambda: subscribers(redis_client, settings, job_id) == 1, 30, 0.02, "the wait")
    job_services.start_job(UnitOfWork(settings), job_id, "w1")
    job_services.finish_job(UnitOfWork(settings), job_id, {"cleaned": 0})
    thread.join(60)  # a hang guard: without the notice it would wait an hour
    assert not thread.is_alive(), "the finish notice did not end the POST's wait"
    assert answer["status_code"] == 200
    assert answer["applied"] == "wait=3600"
    assert answer["body"]["id"] == job_id
    assert answer["body"]["status"] == "succeeded" and answer["body"]["result"] == {"cleaned": 0}


@pytest.mark.parametrize("path", ["/session/cleanup", "/session/sync"])
def test_a_job_not_finished_within_the_wait_is_answered_202_as_it_is(client, settings, tenant, path):
    thread, answer = post_in_thread(client, tenant.admin, "respond-async, wait=1", path)
    thread.join(60)
    assert answer["status_code"] == 202 and answer["applied"] == "wait=1"
    assert answer["body"]["status"] == "queued" and answer["body"]["kind"] == path.rsplit("/", 1)[1]
    assert answer["seconds"] >= 1.0


def test_the_wait_is_bounded_like_the_long_poll(client, settings, tenant):
    client.application.extensions["zaphub"].settings = settings.with_overrides(JOB_WAIT_MAX_SECONDS=1)
    thread, answer = post_in_thread(client, tenant.admin, "wait=3600")
    thread.join(60)
    assert answer["status_code"] == 202 and answer["applied"] == "wait=1"
    assert answer["seconds"] < 30


def test_without_a_readable_wait_the_answer_is_the_plain_202(client, settings, tenant):
    for prefer in (None, "wait=soon", "return=minimal"):
        thread, answer = post_in_thread(client, tenant.admin, prefer)
        thread.join(60)
        assert answer["status_code"] == 202 and answer["applied"] is None
        assert answer["body"]["status"] == "queued"
        assert answer["seconds"] < 5


def test_a_waiting_coalesced_request_holds_no_lock(client, settings, tenant):
    # The second request is coalesced into the first's job, which it read under the
    # company's row lock; while it waits, the company's next request must not wait on it.
    client.application.extensions["zaphub"].settings = settings.with_overrides(
        MAINTENANCE_COALESCE_SECONDS=3600, JOB_WAIT_RECHECK_SECONDS=NEVER
    )
    first = client.post("/session/cleanup", headers=tenant.admin)
    assert first.status_code == 202
    waiting, waited = post_in_thread(client, tenant.admin, "wait=30")
    time.sleep(0.5)  # the coalesced request is waiting by now
    started = time.monotonic()
    third = client.post("/session/cleanup", headers=tenant.admin)
    assert third.status_code == 202 and third.get_json()["id"] == first.get_json()["id"]
    assert time.monotonic() - started < 10, "the waiting request held the company's lock"
    job_services.start_job(UnitOfWork(settings), first.get_json()["id"], "w1")
    job_services.finish_job(UnitOfWork(settings), first.get_json()["id"], {"cleaned": 0})
    waiting.join(60)
    assert waited["status_code"] == 200 and waited["body"]["id"] == first.get_json()["id"]
