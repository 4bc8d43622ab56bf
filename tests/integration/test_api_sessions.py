"""The session routes against a real database (SQLite and PostgreSQL) and real Redis."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from shared.config import CONTROL_QUEUE
from shared.models import Job, WhatsappSession, Worker, utcnow
from shared.uow import UnitOfWork
from tests.broker_inspect import drain, published


@pytest.fixture(autouse=True)
def empty_queues(redis_client, broker_prefix):
    drain(redis_client, broker_prefix, CONTROL_QUEUE, "worker.w1", "worker.w2")
    yield
    drain(redis_client, broker_prefix, CONTROL_QUEUE, "worker.w1", "worker.w2")


def create(client, tenant, name="vendas", **body):
    return client.post("/session", json={"name": name, **body}, headers=tenant.admin)


def test_create_returns_202_with_session_and_queued_job(client, tenant, redis_client, broker_prefix):
    response = create(client, tenant, config={"webhook": "http://127.0.0.1/x"})
    assert response.status_code == 202
    body = response.get_json()
    assert body["name"] == "vendas"
    assert body["status"] == "DISCONNECTED"
    assert body["is_active"] is True
    assert body["config"] == {"webhook": "http://127.0.0.1/x"}
    assert body["job"]["kind"] == "create"
    assert body["job"]["status"] == "queued"
    assert body["job"]["queue"] == CONTROL_QUEUE
    assert [(m.task, m.args) for m in published(redis_client, broker_prefix, CONTROL_QUEUE)] == [
        ("zaphub.session.assign", [body["job"]["id"]])
    ]
    job = client.get(f"/jobs/{body['job']['id']}", headers=tenant.agent)
    assert job.status_code == 200 and job.get_json()["session_id"] == body["id"]


def test_duplicate_name_is_409_and_writes_nothing(client, tenant, settings):
    assert create(client, tenant).status_code == 202
    again = create(client, tenant)
    assert again.status_code == 409
    assert "already exists" in again.get_json()["message"]
    with UnitOfWork(settings) as uow:
        assert uow.db.scalar(select(func.count()).select_from(Job)) == 1


def test_same_name_in_two_companies(client, tenant, other_tenant):
    assert create(client, tenant).status_code == 202
    assert create(client, other_tenant).status_code == 202


def test_list_filters_and_paginates(client, tenant, settings):
    for index in range(5):
        assert create(client, tenant, name=f"s{index}").status_code == 202
    with UnitOfWork(settings) as uow:
        row = uow.db.scalar(select(WhatsappSession).where(WhatsappSession.name == "s1"))
        row.status = "CONNECTED"
        uow.commit()
    client.patch("/session/s2", json={"is_active": False}, headers=tenant.admin)

    page = client.get("/session?per_page=2&page=2", headers=tenant.agent).get_json()
    assert page["total"] == 5 and page["pages"] == 3 and len(page["items"]) == 2
    beyond = client.get("/session?per_page=2&page=4", headers=tenant.agent).get_json()
    assert beyond["total"] == 5 and beyond["items"] == []
    none = client.get("/session?status=error", headers=tenant.agent).get_json()
    assert none["total"] == 0 and none["items"] == []
    connected = client.get("/session?status=connected", headers=tenant.agent).get_json()
    assert [s["name"] for s in connected["items"]] == ["s1"]
    inactive = client.get("/session?is_active=false", headers=tenant.agent).get_json()
    assert [s["name"] for s in inactive["items"]] == ["s2"]
    assert client.get("/session?status=bogus", headers=tenant.agent).status_code == 422
    assert client.get("/session?per_page=1000", headers=tenant.agent).status_code == 422


def test_stats_counts_by_status_activity_and_worker(client, tenant, other_tenant, settings):
    for name in ("a", "b", "c"):
        create(client, tenant, name=name)
    create(client, other_tenant, name="a")
    with UnitOfWork(settings) as uow:
        for row in uow.db.scalars(
            select(WhatsappSession).where(WhatsappSession.company_id == tenant.company_id)
        ):
            if row.name == "a":
                row.status, row.worker_id = "CONNECTED", "w1"
            if row.name == "b":
                row.is_active = False
        uow.commit()
    stats = client.get("/session/stats", headers=tenant.agent).get_json()
    assert stats["total"] == 3 and stats["active"] == 2 and stats["inactive"] == 1
    assert stats["by_status"]["CONNECTED"] == 1 and stats["by_status"]["DISCONNECTED"] == 2
    assert stats["by_worker"] == {"w1": 1, "unassigned": 2}


def test_get_details_and_update(client, tenant):
    create(client, tenant)
    one = client.get("/session/vendas", headers=tenant.agent)
    assert one.status_code == 200 and one.get_json()["name"] == "vendas"
    assert "auth_state" not in one.get_json()
    details = client.get("/session/vendas/details", headers=tenant.agent).get_json()
    assert details["session"]["name"] == "vendas"
    assert details["owner"] is None and details["owner_alive"] is False
    assert details["live"] is None
    assert [j["kind"] for j in details["jobs"]] == ["create"]

    renamed = client.patch(
        "/session/vendas", json={"name": "suporte", "config": {"k": 1}}, headers=tenant.admin
    )
    assert renamed.status_code == 200
    assert renamed.get_json()["name"] == "suporte" and renamed.get_json()["config"] == {"k": 1}
    assert renamed.get_json()["job"] is None
    assert client.get("/session/vendas", headers=tenant.agent).status_code == 404


def test_rename_onto_existing_name_is_409(client, tenant):
    create(client, tenant, name="a")
    create(client, tenant, name="b")
    response = client.patch("/session/a", json={"name": "b"}, headers=tenant.admin)
    assert response.status_code == 409
    assert client.get("/session/a", headers=tenant.agent).status_code == 200


def test_deactivate_enqueues_stop_and_reactivate_enqueues_start(client, tenant, redis_client, broker_prefix):
    create(client, tenant)
    drain(redis_client, broker_prefix, CONTROL_QUEUE)
    off = client.patch("/session/vendas", json={"is_active": False}, headers=tenant.admin).get_json()
    assert off["is_active"] is False and off["job"]["kind"] == "stop"
    on = client.patch("/session/vendas", json={"is_active": True}, headers=tenant.admin).get_json()
    assert on["job"]["kind"] == "start"
    assert [m.task for m in published(redis_client, broker_prefix, CONTROL_QUEUE)] == [
        "zaphub.session.stop",
        "zaphub.session.start",
    ]


def test_jobs_go_to_the_live_owner_queue(client, tenant, settings, redis_client, broker_prefix):
    create(client, tenant)
    with UnitOfWork(settings) as uow:
        uow.db.add(Worker(id="w1", queue="worker.w1", capacity=5, heartbeat_at=utcnow()))
        uow.db.add(Worker(id="w2", queue="worker.w2", capacity=5, heartbeat_at=utcnow().replace(year=2000)))
        row = uow.db.scalar(select(WhatsappSession))
        row.worker_id = "w1"
        uow.commit()
    restart = client.post("/session/vendas/restart", headers=tenant.admin).get_json()
    assert restart["job"]["queue"] == "worker.w1"
    assert [m.args for m in published(redis_client, broker_prefix, "worker.w1")] == [[restart["job"]["id"]]]

    with UnitOfWork(settings) as uow:  # owner dead: the job goes to control for reassignment
        uow.db.scalar(select(WhatsappSession)).worker_id = "w2"
        uow.commit()
    removal = client.delete("/session/vendas", headers=tenant.admin).get_json()
    assert removal["job"]["queue"] == CONTROL_QUEUE and removal["job"]["kind"] == "remove"
    assert removal["job"]["params"] == {"purge": False, "epoch": 0}
    assert removal["is_active"] is False


def test_restart_of_inactive_session_is_409(client, tenant):
    create(client, tenant)
    client.patch("/session/vendas", json={"is_active": False}, headers=tenant.admin)
    response = client.post("/session/vendas/restart", headers=tenant.admin)
    assert response.status_code == 409 and "inactive" in response.get_json()["message"]


def test_delete_with_purge_records_it(client, tenant):
    create(client, tenant)
    response = client.delete("/session/vendas?purge=true", headers=tenant.admin)
    assert response.status_code == 202
    assert response.get_json()["job"]["params"] == {"purge": True, "epoch": 0}


def test_cleanup_preview_and_run(client, tenant, settings):
    create(client, tenant, name="old")
    create(client, tenant, name="fresh")
    with UnitOfWork(settings) as uow:
        row = uow.db.scalar(select(WhatsappSession).where(WhatsappSession.name == "old"))
        row.is_active = False
        row.updated_at = utcnow().replace(year=2001)
        uow.commit()
    preview = client.get("/session/cleanup", headers=tenant.agent).get_json()
    assert preview["dry_run"] is True
    assert preview["sessions_to_purge"] == 1 and preview["purge_session_names"] == ["old"]
    assert client.get("/session/old", headers=tenant.agent).status_code == 200
    job = client.post("/session/cleanup", headers=tenant.admin)
    assert job.status_code == 202 and job.get_json()["kind"] == "cleanup"
    sync = client.post("/session/sync", headers=tenant.admin)
    assert sync.status_code == 202 and sync.get_json()["kind"] == "sync"


def test_qr_needs_a_waiting_session_and_renders_three_formats(client, tenant, settings):
    create(client, tenant)
    assert client.get("/session/vendas/qr", headers=tenant.admin).status_code == 409
    with UnitOfWork(settings) as uow:
        row = uow.db.scalar(select(WhatsappSession))
        row.status, row.qr_code = "QRCODE", "2@abc,def,ghi,jkl"
        uow.commit()
    as_json = client.get("/session/vendas/qr", headers=tenant.admin)
    assert as_json.get_json()["qr_code"] == "2@abc,def,ghi,jkl"
    png = client.get("/session/vendas/qr?format=png", headers=tenant.admin)
    assert png.mimetype == "image/png" and png.data.startswith(b"\x89PNG")
    svg = client.get("/session/vendas/qr", headers={**tenant.admin, "Accept": "image/svg+xml"})
    assert svg.mimetype == "image/svg+xml" and b"<svg" in svg.data
    assert client.get("/session/vendas/qr?format=gif", headers=tenant.admin).status_code == 422


def test_qr_png_decodes_to_the_stored_text(client, tenant, settings):
    import io

    import zxingcpp
    from PIL import Image

    create(client, tenant)
    with UnitOfWork(settings) as uow:
        row = uow.db.scalar(select(WhatsappSession))
        row.status, row.qr_code = "QRCODE", "2@Zm9vYmFy,a2V5MQ==,a2V5Mg==,c2VjcmV0"
        uow.commit()
    png = client.get("/session/vendas/qr?format=png", headers=tenant.admin).data
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert [d.text for d in decoded] == ["2@Zm9vYmFy,a2V5MQ==,a2V5Mg==,c2VjcmV0"]


def test_liveness_touches_neither_database_nor_broker(settings):
    from api import create_app
    from shared.config import set_settings

    app = create_app(settings.with_overrides(DATABASE_URL="postgresql://nobody@127.0.0.1:1/none"))
    try:
        client = app.test_client()
        assert client.get("/health/live").get_json() == {"ok": True}
        assert client.get("/health").status_code == 503
    finally:
        set_settings(settings)  # create_app made the unreachable database the process's default


def test_health_reports_database_and_broker(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["database"] == "ok" and body["broker"] == "ok" and body["ok"] is True
