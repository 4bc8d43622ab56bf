"""Broker and database outages: 503 with a clear message, and nothing half-written."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy import func, select

from api import create_app
from shared.models import Job, WhatsappSession
from shared.uow import UnitOfWork


def closed_port() -> int:
    """A local TCP port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def broker_down_client(settings):
    down = settings.with_overrides(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0", BROKER_TIMEOUT=1.0)
    return create_app(down).test_client()


def counts(settings) -> tuple[int, int]:
    with UnitOfWork(settings) as uow:
        return (
            uow.db.scalar(select(func.count()).select_from(WhatsappSession)),
            uow.db.scalar(select(func.count()).select_from(Job)),
        )


def test_create_with_broker_down_is_503_and_writes_nothing(broker_down_client, tenant, settings):
    response = broker_down_client.post("/session", json={"name": "vendas"}, headers=tenant.admin)
    assert response.status_code == 503
    assert "broker" in response.get_json()["message"]
    assert counts(settings) == (0, 0)


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("post", "/session/vendas/restart", None),
        ("delete", "/session/vendas", None),
        ("delete", "/session/vendas?purge=true", None),
        ("patch", "/session/vendas", {"is_active": False}),
        ("post", "/session/cleanup", None),
        ("post", "/session/sync", None),
    ],
)
def test_every_enqueueing_route_is_503_and_changes_nothing(
    client, broker_down_client, tenant, settings, redis_client, broker_prefix, method, path, body
):
    from tests.broker_inspect import drain

    assert client.post("/session", json={"name": "vendas"}, headers=tenant.admin).status_code == 202
    drain(redis_client, broker_prefix, "control")
    before = client.get("/session/vendas", headers=tenant.agent).get_json()
    response = getattr(broker_down_client, method)(path, json=body, headers=tenant.admin)
    assert response.status_code == 503 and "broker" in response.get_json()["message"]
    after = client.get("/session/vendas", headers=tenant.agent).get_json()
    assert after == before
    assert counts(settings) == (1, 1)


def test_reads_still_work_with_broker_down(broker_down_client, client, tenant, redis_client, broker_prefix):
    from tests.broker_inspect import drain

    client.post("/session", json={"name": "vendas"}, headers=tenant.admin)
    drain(redis_client, broker_prefix, "control")
    assert broker_down_client.get("/session", headers=tenant.agent).status_code == 200
    assert broker_down_client.get("/session/stats", headers=tenant.agent).status_code == 200


def test_health_with_broker_down_is_503(broker_down_client):
    response = broker_down_client.get("/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["ok"] is False and body["database"] == "ok"
    assert body["broker"].startswith("unavailable")


def test_database_down_is_503(settings):
    down = settings.with_overrides(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{closed_port()}/nothing")
    client = create_app(down).test_client()
    response = client.get("/session", headers={"Authorization": "Bearer zh_whatever"})
    assert response.status_code == 503
    assert "database" in response.get_json()["message"]
    health = client.get("/health")
    assert health.status_code == 503 and health.get_json()["database"].startswith("unavailable")
