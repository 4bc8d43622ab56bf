"""Item 17: a company's sync and cleanup count only its own sessions, and coalesce."""

from __future__ import annotations

from sqlalchemy import update

from shared.models import WhatsappSession
from shared.uow import UnitOfWork
from tests.e2e.conftest import Api


def test_item_17_company_maintenance_counts_only_its_own_sessions_and_coalesces(
    client, tenant, other_tenant, sim, start_worker, settings
):
    sim.clock(1.0)  # the first QR lives a minute: no event rewrites the rows meanwhile
    start_worker("w1", env={"SYNC_INTERVAL": "600"})  # no periodic reconcile either
    acme, globex = Api(client, tenant), Api(client, other_tenant)
    for company in (acme, globex):
        company.call("post", "/session", 202, json={"name": "vendas"})
        company.wait_status("vendas", "QRCODE")
    with UnitOfWork(settings) as uow:  # globex's row drifts from w1's memory: a sync corrects it
        uow.db.execute(
            update(WhatsappSession)
            .where(WhatsappSession.company_id == other_tenant.company_id)
            .values(status="CONNECTING")
        )
        uow.commit()

    first = acme.call("post", "/session/sync", 202).get_json()
    again = acme.call("post", "/session/sync", 202).get_json()
    assert again["id"] == first["id"]  # within the window: the job already queued
    result = acme.wait_job(first["id"])["result"]
    assert (result["local_corrected"], result["local_closed"], result["orphan_sessions"]) == (0, 0, [])
    assert globex.session("vendas")["status"] == "CONNECTING"  # not touched by acme's sync

    theirs = globex.call("post", "/session/sync", 202).get_json()
    assert theirs["id"] != first["id"]
    assert globex.wait_job(theirs["id"])["result"]["local_corrected"] == 1
    assert globex.session("vendas")["status"] == "QRCODE"

    cleanup = acme.call("post", "/session/cleanup", 202).get_json()
    assert acme.call("post", "/session/cleanup", 202).get_json()["id"] == cleanup["id"]
    done = acme.wait_job(cleanup["id"])["result"]
    assert done["profile_folders_removed"] == 0 and done["beat_jobs_purged"] == 0
