"""BROWSER_MODE=shared through the real stack: API → Redis → worker processes → Chromium → simulator.

The same promises as profile mode (link, restart and failover with no scan; a corrupt
state is an ERROR in both modes: tests/e2e/test_faults.py), plus moving a session between
workers of different modes.
"""

from __future__ import annotations

from tests.e2e.stack import wait_until
from tests.e2e.test_session_life import PHONE, link_session

SHARED = {"BROWSER_MODE": "shared"}


def _move_to(api, worker_id: str, name: str = "vendas") -> None:
    """Wait until only ``worker_id`` is alive, then sync until the session is placed there.

    A company's syncs within MAINTENANCE_COALESCE_SECONDS share one job, so a move right
    after another one asks again until a sync of its own ran.
    """
    wait_until(
        lambda: api.call("get", "/health").get_json()["workers"] == [worker_id],
        30,
        message="the old lease to end",
    )

    def placed() -> bool:
        sync = api.call("post", "/session/sync", 202).get_json()
        api.wait_job(sync["id"])
        return api.session(name)["worker_id"] == worker_id

    wait_until(placed, 60, interval=1.0, message=f"{name} placed on {worker_id}")


def _shared_only(worker) -> bool:
    """All of the worker's browsers are shared ones (no profile folder of a session)."""
    return all(".shared-browsers" in folder for folder in worker.browsers().values())


def test_shared_worker_links_restarts_and_fails_over_without_a_scan(api, sim, start_worker):
    first = start_worker("w1", env=SHARED)
    session = link_session(api, sim, "vendas")
    devices = len(sim.state()["devices"])
    assert len(first.browsers()) == 1 and _shared_only(first)
    assert not (first.sessions_dir / session["id"]).exists()

    restart = api.call("post", "/session/vendas/restart", 202).get_json()
    assert api.wait_job(restart["job"]["id"])["status"] == "succeeded"
    api.wait_status("vendas", "CONNECTED", phone_number=PHONE)

    first.kill()  # no goodbye: the stored portable state is all there is
    second = start_worker("w2", env=SHARED)
    _move_to(api, "w2")
    moved = api.wait_status("vendas", "CONNECTED", worker_id="w2", timeout=90)
    assert moved["phone_number"] == PHONE
    assert len(sim.state()["devices"]) == devices  # never scanned again
    assert second.browsers() and _shared_only(second)


def test_a_session_moves_profile_to_shared_to_profile_without_a_scan(api, sim, start_worker):
    profile = start_worker("w1")
    link_session(api, sim, "vendas")
    devices = len(sim.state()["devices"])

    profile.terminate()  # a planned switch: the login state is saved first
    shared = start_worker("w2", env=SHARED)
    _move_to(api, "w2")
    api.wait_status("vendas", "CONNECTED", worker_id="w2", phone_number=PHONE, timeout=90)
    assert shared.browsers() and _shared_only(shared)

    shared.terminate()
    back = start_worker("w3")
    _move_to(api, "w3")
    api.wait_status("vendas", "CONNECTED", worker_id="w3", phone_number=PHONE, timeout=90)
    assert [folder.rsplit("/", 1)[-1] for folder in back.browsers().values()] == [api.session("vendas")["id"]]
    assert len(sim.state()["devices"]) == devices
