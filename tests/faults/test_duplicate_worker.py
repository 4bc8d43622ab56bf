"""Item 7: one worker id, one process: a twin refuses to start, a lost lease stops the loser."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import select

from shared.models import Job, Worker
from shared.uow import UnitOfWork
from tests.e2e.stack import WorkerProcess, wait_until
from tests.e2e.test_session_life import PHONE, link_session


def worker_row(settings, worker_id: str = "w1") -> Worker:
    with UnitOfWork(settings) as uow:
        return uow.db.get(Worker, worker_id)


def test_item_7_a_second_process_with_the_same_worker_id_refuses_to_start(
    api, sim, start_worker, settings, simulator_server, tmp_path
):
    first = start_worker("w1")
    link_session(api, sim, "vendas")
    browsers = first.browsers()
    holder = worker_row(settings)

    twin = WorkerProcess("w1", settings, simulator_server.url, tmp_path / "twin")
    done = subprocess.run(
        [sys.executable, "-m", "workers", "--loglevel=INFO"],
        env=twin.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "refusing to start a second process with the same WORKER_ID" in output
    assert "browser runtime started" not in output

    after = worker_row(settings)
    assert (after.pid, after.started_at, after.lease_token) == (
        holder.pid,
        holder.started_at,
        holder.lease_token,
    )
    assert api.session("vendas")["status"] == "CONNECTED"
    assert first.browsers() == browsers  # the same Chromium process goes on
    with UnitOfWork(settings) as uow:
        assert uow.db.scalars(select(Job).where(Job.status == "failed")).all() == []
    wait_until(lambda: worker_row(settings).heartbeat_at > after.heartbeat_at, 5, message="w1 beating")


def test_item_7_a_process_that_lost_its_lease_closes_its_browsers_and_exits(api, sim, start_worker, settings):
    worker = start_worker("w1")
    api.call("post", "/session", 202, json={"name": "vendas"})
    api.wait_status("vendas", "QRCODE")
    assert len(worker.browsers()) == 1

    with UnitOfWork(settings) as uow:  # another process took the lease
        uow.db.get(Worker, "w1").lease_token = "f" * 32
        uow.commit()
    exit_code = wait_until(lambda: worker.process.poll(), 30, message="the worker to exit")
    assert exit_code not in (0, None)
    wait_until(lambda: worker.browsers() == {}, 20, message="its browsers closed")
    assert worker_row(settings).stopped_at is None  # it did not write as the new holder


def test_item_7_a_sigkilled_worker_restarts_at_once_under_the_same_id(
    api, sim, start_worker, settings, simulator_server, tmp_path
):
    slow_lease = {"WORKER_LEASE": "120"}  # the dead process's heartbeat stays fresh throughout
    first = WorkerProcess("w1", settings, simulator_server.url, tmp_path)
    first.env.update(slow_lease)
    first.start()
    again: WorkerProcess | None = None
    try:
        link_session(api, sim, "vendas")
        devices = len(sim.state()["devices"])
        first.kill()

        again = WorkerProcess("w1", settings, simulator_server.url, tmp_path)
        again.env.update(slow_lease)
        again.start(timeout=60)
        assert worker_row(settings).pid == again.process.pid
        wait_until(lambda: len(again.browsers()) == 1, 60, message="the session restored")
        assert api.wait_status("vendas", "CONNECTED", phone_number=PHONE)["worker_id"] == "w1"
        assert len(sim.state()["devices"]) == devices
    finally:
        for process in (first, again):
            if process is not None:
                process.terminate(timeout=30)
                process.kill()
