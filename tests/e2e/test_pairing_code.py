"""Linking a session by phone number with an 8-character code, through the whole stack.

API → Redis → worker → Chromium → simulator: the page switches from the QR to the code,
the fake phone types it, and the session ends exactly as after a QR scan. The page
renews the code on the worker's interval; renewals reach ``GET /events``.
"""

from __future__ import annotations

import re

import pytest

from tests.e2e.stack import wait_until
from tests.simulator import ControlError

pytestmark = [pytest.mark.e2e]

PHONE = "5511999990042"
# The worker renews codes this often (real seconds); the simulator's codes live 180 virtual
# seconds, so at a clock of 180 / RENEW_EVERY they expire in step with the renewals.
RENEW_EVERY = 4.0
PAIRING_ENV = {"PAIRING_CODE_INTERVAL": str(RENEW_EVERY)}
CODE_RE = re.compile(r"^[A-Z0-9]{8}$")


def ask_code(api, name: str, phone: str = PHONE) -> dict:
    response = api.call("post", f"/session/{name}/pairing-code", 200, json={"phone": phone})
    body = response.get_json()
    assert CODE_RE.match(body["code"]) and body["phone"] == phone and body["expires_at"]
    return body


def pairing_events(api, name: str) -> list[dict]:
    page = api.call(
        "get", "/events", 200, query_string={"session": name, "type": "session.pairing_code", "limit": 100}
    ).get_json()
    return page["items"]


def test_link_by_phone_number_instead_of_a_qr_scan(api, sim, start_worker, tenant):
    start_worker("w1", env=PAIRING_ENV)
    created = api.call("post", "/session", 202, json={"name": "vendas"}).get_json()
    api.wait_status("vendas", "QRCODE")

    first = ask_code(api, "vendas")
    # The page now shows the code, not a QR: the QR is gone from the session.
    assert api.call("get", "/session/vendas/qr").status_code == 409
    link = next(c for c in sim.state()["link_codes"] if c["phone"] == PHONE)
    assert link["state"] == "waiting"

    with pytest.raises(ControlError) as wrong:
        sim.pair(PHONE, "ZZZZ9999" if first["code"] != "ZZZZ9999" else "YYYY8888")
    assert wrong.value.status == 400
    assert api.session("vendas")["status"] == "QRCODE"

    # The phone shows the code as ABCD-EFGH; typed either way it links.
    sim.pair(PHONE, f"{first['code'][:4]}-{first['code'][4:]}", push_name="Loja")
    connected = api.wait_status("vendas", "CONNECTED", phone_number=PHONE)
    assert connected["push_name"] == "Loja" and connected["worker_id"] == "w1"
    state = sim.state()
    assert [p for p in state["pairings"] if p["state"] == "scanned"] == []  # no QR was scanned
    assert [d["phone"] for d in state["devices"]] == [PHONE]
    wait_until(lambda: api.session("vendas")["has_login_state"], 30, message="login state saved")
    assert api.wait_job(created["job"]["id"])["status"] == "succeeded"

    # The code reached the event feed too, for admins only.
    events = pairing_events(api, "vendas")
    assert [e["payload"]["code"] for e in events] == [first["code"]]
    agent = api.client.get("/events?session=vendas", headers=tenant.agent)
    assert agent.status_code == 200
    assert {e["type"] for e in agent.get_json()["items"]}.isdisjoint({"session.pairing_code", "session.qr"})

    # Linked now: no more codes.
    again = api.call("post", "/session/vendas/pairing-code", 409, json={"phone": PHONE}).get_json()
    assert "CONNECTED" in again["message"]


def test_the_code_renews_and_an_old_one_no_longer_links(api, sim, start_worker):
    start_worker("w1", env=PAIRING_ENV)
    api.call("post", "/session", 202, json={"name": "suporte"})
    api.wait_status("suporte", "QRCODE")

    first = ask_code(api, "suporte")
    sim.clock(180 / RENEW_EVERY)  # the simulator's codes now live as long as the renewal interval
    renewed = wait_until(
        lambda: (items := pairing_events(api, "suporte")) and len(items) >= 2 and items,
        RENEW_EVERY * 4,
        message="a renewed pairing code",
    )
    assert renewed[0]["payload"]["code"] == first["code"]
    latest = renewed[-1]["payload"]
    assert latest["code"] != first["code"] and latest["phone"] == PHONE and latest["expires_at"]
    assert api.session("suporte")["status"] == "QRCODE"

    with pytest.raises(ControlError) as old:
        sim.pair(PHONE, first["code"])
    assert old.value.status == 410
    assert api.session("suporte")["status"] == "QRCODE"

    sim.clock(10)
    current = pairing_events(api, "suporte")[-1]["payload"]["code"]
    sim.pair(PHONE, current)
    api.wait_status("suporte", "CONNECTED", phone_number=PHONE)


def test_a_page_that_cannot_link_by_number_gives_the_jobs_error(api, sim, start_worker):
    sim.modules(["WAWebAltDeviceLinkingApi"])  # a WhatsApp Web update renamed the module
    start_worker("w1", env=PAIRING_ENV)
    api.call("post", "/session", 202, json={"name": "caixa"})
    api.wait_status("caixa", "QRCODE")
    refused = api.call("post", "/session/caixa/pairing-code", 409, json={"phone": PHONE}).get_json()
    assert "module WAWebAltDeviceLinkingApi missing" in refused["message"]
    assert api.session("caixa")["status"] == "QRCODE"  # the QR stays up: it can still be scanned
    assert api.call("get", "/session/caixa/qr", 200).get_json()["qr_code"]
