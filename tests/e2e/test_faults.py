"""Faults and races through the real stack: crashes, fencing, concurrent restarts, endings."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from sqlalchemy import select

from shared.celery_factory import create_celery
from shared.jobs import CeleryPublisher, JobKind
from shared.models import WhatsappSession
from shared.services.jobs import enqueue
from shared.uow import UnitOfWork
from tests.e2e.stack import wait_until
from tests.e2e.test_session_life import PHONE, link_session


def test_killed_chromium_comes_back_connected_by_itself(api, sim, start_worker):
    worker = start_worker("w1")
    link_session(api, sim, "vendas")
    [(pid, profile)] = worker.browsers().items()
    devices = len(sim.state()["devices"])

    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: (b := worker.browsers()) and pid not in b, 30, message="a new Chromium")
    back = api.wait_status("vendas", "CONNECTED", phone_number=PHONE)
    assert back["worker_id"] == "w1"
    assert list(worker.browsers().values()) == [profile]
    assert len(sim.state()["devices"]) == devices  # no new scan


def test_two_workers_share_sessions_and_jobs_run_on_the_owner(api, sim, start_worker):
    start_worker("w1")
    start_worker("w2")
    created = [api.call("post", "/session", 202, json={"name": f"s{i}"}).get_json() for i in range(4)]
    owners = {}
    for session in created:
        waiting = api.wait_status(session["name"], "QRCODE")
        owners[session["name"]] = waiting["worker_id"]
        assert api.wait_job(session["job"]["id"])["worker_id"] == waiting["worker_id"]
    assert sorted(owners.values()) == ["w1", "w1", "w2", "w2"]

    jobs = {name: api.call("post", f"/session/{name}/restart", 202).get_json()["job"] for name in owners}
    for name, job in jobs.items():
        assert job["queue"] == f"worker.{owners[name]}"
        done = api.wait_job(job["id"])
        assert done["status"] == "succeeded" and done["worker_id"] == owners[name]
        assert done["result"]["worker_id"] == owners[name]


def test_a_job_with_an_old_epoch_changes_nothing(api, sim, start_worker, settings, tenant):
    worker = start_worker("w1")
    session = link_session(api, sim, "vendas")
    assert session["epoch"] >= 1  # placed once: epoch 0 is an older placement
    browsers = worker.browsers()
    publisher = CeleryPublisher(create_celery(settings))
    with UnitOfWork(settings) as uow:  # issued before the session's last move
        stale = enqueue(
            uow,
            publisher,
            kind=JobKind.RESTART,
            queue="worker.w1",
            company_id=tenant.company_id,
            session_id=session["id"],
            params={"epoch": session["epoch"] - 1},
        )
    result = api.wait_job(stale.id)
    assert result["status"] == "failed" and "stale job" in result["error"]
    after = api.session("vendas")
    assert after["is_active"] is True and after["status"] == "CONNECTED"
    assert after["epoch"] == session["epoch"]
    assert worker.browsers() == browsers  # same Chromium process: nothing was restarted


def test_twenty_concurrent_restarts_end_with_one_live_connected_context(api, sim, start_worker, app, tenant):
    worker = start_worker("w1")
    link_session(api, sim, "vendas")
    job_ids: list[str] = []

    def restart() -> None:
        response = app.test_client().post("/session/vendas/restart", headers=tenant.admin)
        assert response.status_code == 202
        job_ids.append(response.get_json()["job"]["id"])

    threads = [threading.Thread(target=restart) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(job_ids) == 20
    finished = [api.wait_job(job_id, timeout=180) for job_id in job_ids]
    assert [job["status"] for job in finished] == ["succeeded"] * 20
    api.wait_status("vendas", "CONNECTED", phone_number=PHONE)
    time.sleep(2)  # anything still settling would show up as a second browser now
    assert len(worker.browsers()) == 1
    assert api.session("vendas")["status"] == "CONNECTED"


def test_qr_timeout_ends_disconnected_with_the_reason(api, sim, start_worker):
    worker = start_worker("w1")
    api.call("post", "/session", 202, json={"name": "vendas"})
    api.wait_status("vendas", "QRCODE")
    ended = api.wait_status("vendas", "DISCONNECTED", timeout=60)
    assert ended["last_error"] == "qr timeout" and ended["has_qr_code"] is False
    wait_until(lambda: worker.browsers() == {}, 20, message="context closed")
    time.sleep(3)  # the periodic reconcile must not bring it back
    assert api.session("vendas")["status"] == "DISCONNECTED"


# Both browser modes: a profile archive and a portable one are refused the same way.
@pytest.mark.parametrize("mode", ["profile", "shared"])
def test_corrupt_stored_login_state_is_an_error_not_a_crash_loop(api, sim, start_worker, settings, mode):
    env = {"BROWSER_MODE": mode}
    first = start_worker("w1", env=env)
    session = link_session(api, sim, "vendas")
    with UnitOfWork(settings) as uow:
        row = uow.db.scalar(select(WhatsappSession).where(WhatsappSession.id == session["id"]))
        row.auth_state = row.auth_state[:-40] + b"x" * 40
        uow.commit()
    # A restart on w1 would reuse its live profile and never read the archive: the archive
    # is what a fresh worker (another machine, or a crash that lost the folder) starts from.
    first.kill()
    second = start_worker("w2", env=env)
    wait_until(
        lambda: api.call("get", "/health").get_json()["workers"] == ["w2"], 20, message="w1's lease to expire"
    )
    sync = api.call("post", "/session/sync", 202).get_json()
    [start_job] = api.wait_job(sync["id"])["result"]["start_jobs"]
    job = api.wait_job(start_job)
    assert job["status"] == "failed" and "login state" in job["error"]
    failed = api.wait_status("vendas", "ERROR")
    assert "checksum" in failed["last_error"] and failed["worker_id"] == "w2"
    time.sleep(4)  # two reconcile rounds: nothing retries it in a loop
    assert api.session("vendas")["status"] == "ERROR"
    assert second.browsers() == {}
    assert "Traceback" not in failed["last_error"]


def test_conflicting_session_ends_disconnected_with_the_reason(api, sim, start_worker):
    worker = start_worker("w1")
    link_session(api, sim, "vendas")
    sim.conflict(PHONE)
    ended = api.wait_status("vendas", "DISCONNECTED")
    assert ended["last_error"] == "conflict"
    wait_until(lambda: worker.browsers() == {}, 20, message="context closed")
    time.sleep(3)  # not restored behind the other session's back
    assert api.session("vendas")["status"] == "DISCONNECTED"
