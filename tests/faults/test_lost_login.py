"""Items 4, 5 and 6: a login (or a wait for one) is never lost to a blip, a restart or a shutdown."""

from __future__ import annotations

import time

from shared.models import WhatsappSession
from shared.uow import UnitOfWork
from tests.e2e.stack import wait_until
from tests.e2e.test_session_life import PHONE, link_session


def login_saved_at(settings, session_id: str):
    with UnitOfWork(settings) as uow:
        return uow.db.get(WhatsappSession, session_id).auth_state_updated_at


def live_on(api, name: str, worker_id: str) -> dict:
    """Wait until ``worker_id`` reports ``name`` connected from its own memory."""

    def probe():
        details = api.call("get", f"/session/{name}/details", 200).get_json()
        live = details.get("live") or {}
        return live.get("worker_id") == worker_id and live.get("status") == "connected" and details

    return wait_until(probe, 60, message=f"{name} connected on {worker_id}")


def test_item_4_events_lost_during_a_database_outage_are_replayed(api, sim, start_worker, private_postgres):
    first = start_worker("w1")
    api.call("post", "/session", 202, json={"name": "vendas"})
    session = api.wait_status("vendas", "QRCODE")
    ref = sim.current_ref()

    private_postgres.stop()
    try:
        sim.scan(ref, phone=PHONE, push_name="Loja")  # authenticated and ready happen now
        time.sleep(8)
    finally:
        private_postgres.start()

    back = api.wait_status("vendas", "CONNECTED", phone_number=PHONE, timeout=60)
    assert back["push_name"] == "Loja"
    wait_until(lambda: api.session("vendas")["has_login_state"], 60, message="login state saved")
    devices = len(sim.state()["devices"])

    first.kill()  # nothing more is saved: the stored state must be enough
    start_worker("w2")
    wait_until(
        lambda: api.call("get", "/health").get_json()["workers"] == ["w2"], 20, message="w1's lease to expire"
    )
    sync = api.call("post", "/session/sync", 202).get_json()
    assert api.wait_job(sync["id"])["result"]["orphans_requeued"] == 1
    assert live_on(api, "vendas", "w2")["live"]["phone_number"] == PHONE
    assert api.wait_status("vendas", "CONNECTED", phone_number=PHONE)["worker_id"] == "w2"
    assert api.session("vendas")["epoch"] == session["epoch"] + 1
    assert len(sim.state()["devices"]) == devices  # no new scan


def test_item_5_a_restart_saves_the_login_first_and_reuses_the_live_profile(api, sim, start_worker, settings):
    worker = start_worker("w1")
    session = link_session(api, sim, "vendas")
    profile = worker.sessions_dir / session["id"]
    inode = profile.stat().st_ino
    (profile / "zaphub-test-marker").write_text("this folder must survive the restart")
    saved_before = login_saved_at(settings, session["id"])
    devices = len(sim.state()["devices"])
    log_offset = len(worker.log_path.read_text())

    restart = api.call("post", "/session/vendas/restart", 202).get_json()
    assert api.wait_job(restart["job"]["id"])["status"] == "succeeded"
    api.wait_status("vendas", "CONNECTED", phone_number=PHONE)

    # A fresh login state was stored before the browser closed for the restart.
    restart_log = worker.log_path.read_text()[log_offset:]
    closed_at = restart_log.index(f"session {session['id']}: event disconnected")
    assert f"session {session['id']}: login state saved" in restart_log[:closed_at]
    assert login_saved_at(settings, session["id"]) > saved_before
    # The live profile folder was reused, not rebuilt from the archive.
    assert profile.stat().st_ino == inode
    assert (profile / "zaphub-test-marker").exists()
    assert "login state restored" not in restart_log
    assert list(worker.browsers().values()) == [str(profile)]
    assert len(sim.state()["devices"]) == devices  # no new scan


def test_item_6_a_session_waiting_for_its_qr_comes_back_after_a_graceful_worker_restart(
    api, sim, start_worker
):
    worker = start_worker("w1")
    # A session that ended with a reason (QR timeout) must stay down across the restart.
    api.call("post", "/session", 202, json={"name": "expirou"})
    api.wait_status("expirou", "QRCODE")
    assert api.wait_status("expirou", "DISCONNECTED", timeout=60)["last_error"] == "qr timeout"

    api.call("post", "/session", 202, json={"name": "vendas"})
    first_qr = api.wait_status("vendas", "QRCODE")
    qr_before = api.call("get", "/session/vendas/qr", 200).get_json()["qr_code"]
    worker.terminate()
    stopped = api.session("vendas")
    assert stopped["status"] == "DISCONNECTED" and stopped["last_error"] is None

    again = start_worker("w1")
    back = api.wait_status("vendas", "QRCODE", timeout=45)
    assert back["worker_id"] == "w1" and back["epoch"] == first_qr["epoch"]
    qr_after = api.call("get", "/session/vendas/qr", 200).get_json()["qr_code"]
    assert qr_after != qr_before
    assert qr_after in {p["ref"] for p in sim.state()["pairings"] if p["state"] == "waiting"}
    assert len(again.browsers()) == 1

    time.sleep(3)  # a reconcile round: the ended session is not brought back
    ended = api.session("expirou")
    assert ended["status"] == "DISCONNECTED" and ended["last_error"] == "qr timeout"
