"""A session's whole life through the real stack: API → Redis → worker → Chromium → simulator."""

from __future__ import annotations

import io

import zxingcpp
from PIL import Image

from tests.e2e.stack import wait_until

PHONE = "5511999990001"


def decode_qr_png(png: bytes) -> str:
    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(results) == 1
    return results[0].text


def link_session(api, sim, name: str, phone: str = PHONE) -> dict:
    """Create ``name`` and scan its QR from the fake phone; returns the CONNECTED session."""
    created = api.call("post", "/session", 202, json={"name": name}).get_json()
    api.wait_status(name, "QRCODE")
    qr_text = api.call("get", f"/session/{name}/qr", 200).get_json()["qr_code"]
    sim.scan(qr_text, phone=phone, push_name="Loja")
    connected = api.wait_status(name, "CONNECTED", phone_number=phone)
    wait_until(lambda: api.session(name)["has_login_state"], 30, message="login state saved")
    assert api.wait_job(created["job"]["id"])["status"] == "succeeded"
    return connected


def test_full_life(api, sim, start_worker):
    worker = start_worker("w1")
    created = api.call("post", "/session", 202, json={"name": "vendas"}).get_json()
    api.wait_status("vendas", "QRCODE")

    png = api.call("get", "/session/vendas/qr?format=png", 200).data
    assert decode_qr_png(png) == sim.current_ref()
    sim.scan(decode_qr_png(png), phone=PHONE, push_name="Loja")
    connected = api.wait_status("vendas", "CONNECTED", phone_number=PHONE)
    assert connected["push_name"] == "Loja" and connected["worker_id"] == "w1"
    job = api.wait_job(created["job"]["id"])
    assert job["status"] == "succeeded" and job["worker_id"] == "w1"
    wait_until(lambda: api.session("vendas")["has_login_state"], 30, message="login state saved")
    scans = len(sim.state()["devices"])
    details = wait_until(
        lambda: (d := api.call("get", "/session/vendas/details", 200).get_json())["live"] and d,
        10,
        message="the worker's live state",
    )
    assert details["live"] == {
        "worker_id": "w1",
        "status": "connected",
        "live": True,
        "phone_number": PHONE,
        "push_name": "Loja",
        "last_error": None,
    }
    assert details["owner"]["id"] == "w1" and details["owner_alive"] is True

    restart = api.call("post", "/session/vendas/restart", 202).get_json()
    assert api.wait_job(restart["job"]["id"])["status"] == "succeeded"
    api.wait_status("vendas", "CONNECTED", phone_number=PHONE)
    assert len(sim.state()["devices"]) == scans  # no new link: no scan was needed
    assert len(worker.browsers()) == 1

    sim.logout(PHONE)
    gone = api.wait_status("vendas", "DISCONNECTED")
    assert gone["last_error"] == "logout" and gone["has_login_state"] is False

    removal = api.call("delete", "/session/vendas", 202).get_json()
    assert api.wait_job(removal["job"]["id"])["status"] == "succeeded"
    final = api.session("vendas")
    assert final["is_active"] is False and final["status"] == "DISCONNECTED"
    wait_until(lambda: worker.browsers() == {}, 20, message="browser closed")
    assert not (worker.sessions_dir / created["id"]).exists()

    purge = api.call("delete", "/session/vendas?purge=true", 202).get_json()
    assert api.wait_job(purge["job"]["id"])["result"]["purged"] is True
    assert api.call("get", "/session/vendas").status_code == 404


def test_worker_restart_restores_connected_sessions_without_a_scan(api, sim, start_worker):
    worker = start_worker("w1")
    link_session(api, sim, "vendas")
    devices = len(sim.state()["devices"])

    worker.terminate()
    assert worker.browsers() == {}
    start_worker("w1")
    restored = api.wait_status("vendas", "CONNECTED", phone_number=PHONE)
    assert restored["worker_id"] == "w1"
    assert len(sim.state()["devices"]) == devices


def test_lost_worker_sessions_move_to_a_live_worker_without_a_scan(api, sim, start_worker):
    first = start_worker("w1")
    session = link_session(api, sim, "vendas")
    first.kill()  # no goodbye: nothing saved at shutdown, heartbeat stops

    second = start_worker("w2")  # a fresh machine: its own, empty sessions folder
    wait_until(
        lambda: api.call("get", "/health").get_json()["workers"] == ["w2"], 20, message="w1's lease to expire"
    )
    sync = api.call("post", "/session/sync", 202).get_json()
    assert api.wait_job(sync["id"])["result"]["orphans_requeued"] == 1
    moved = api.wait_status("vendas", "CONNECTED", worker_id="w2")
    assert moved["epoch"] == session["epoch"] + 1
    assert moved["phone_number"] == PHONE
    assert list(second.browsers().values()) == [str(second.sessions_dir / session["id"])]
    assert not any(d["phone"] != PHONE for d in sim.state()["devices"])
