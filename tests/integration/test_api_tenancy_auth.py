"""Authentication, roles and tenant isolation on every route."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from shared.config import CONTROL_QUEUE
from shared.models import WhatsappSession
from shared.services import accounts
from shared.uow import UnitOfWork
from tests.broker_inspect import drain

# Every route that addresses one session: (method, path template, body).
SESSION_ROUTES = [
    ("get", "/session/{name}", None),
    ("get", "/session/{name}/details", None),
    ("patch", "/session/{name}", {"config": {"x": 1}}),
    ("delete", "/session/{name}", None),
    ("delete", "/session/{name}?purge=true", None),
    ("post", "/session/{name}/restart", None),
    ("get", "/session/{name}/qr", None),
    ("get", "/session/{name}/qr?format=png", None),
]


@pytest.fixture(autouse=True)
def empty_queues(redis_client, broker_prefix):
    yield
    drain(redis_client, broker_prefix, CONTROL_QUEUE)


@pytest.fixture
def acme_session(client, tenant, settings):
    created = client.post("/session", json={"name": "vendas"}, headers=tenant.admin).get_json()
    with UnitOfWork(settings) as uow:  # give it a QR so the qr route has something to leak
        row = uow.db.get(WhatsappSession, created["id"])
        row.status, row.qr_code = "QRCODE", "2@secret,ref,keys,here"
        uow.commit()
    return created


@pytest.mark.parametrize("method,path,body", SESSION_ROUTES)
def test_other_company_gets_404_exactly_like_a_missing_session(
    client, tenant, other_tenant, acme_session, method, path, body
):
    foreign = getattr(client, method)(path.format(name="vendas"), json=body, headers=other_tenant.admin)
    missing = getattr(client, method)(path.format(name="nosuch"), json=body, headers=other_tenant.admin)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.get_json()["message"].replace("vendas", "X") == missing.get_json()["message"].replace(
        "nosuch", "X"
    )
    assert b"secret" not in foreign.data


def test_other_company_sees_nothing_in_collections(client, tenant, other_tenant, acme_session):
    listing = client.get("/session", headers=other_tenant.agent).get_json()
    assert listing["total"] == 0 and listing["items"] == []
    stats = client.get("/session/stats", headers=other_tenant.agent).get_json()
    assert stats["total"] == 0 and stats["by_worker"] == {}
    preview = client.get("/session/cleanup", headers=other_tenant.agent).get_json()
    assert preview["sessions_to_purge"] == 0


def test_other_company_cannot_read_a_job(client, tenant, other_tenant, acme_session):
    job_id = acme_session["job"]["id"]
    assert client.get(f"/jobs/{job_id}", headers=tenant.agent).status_code == 200
    foreign = client.get(f"/jobs/{job_id}", headers=other_tenant.admin)
    missing = client.get("/jobs/0123456789abcdef0123456789abcdef", headers=other_tenant.admin)
    assert foreign.status_code == missing.status_code == 404


def test_foreign_session_is_untouched_by_other_companys_writes(
    client, tenant, other_tenant, acme_session, settings
):
    for method, path, body in SESSION_ROUTES:
        getattr(client, method)(path.format(name="vendas"), json=body, headers=other_tenant.admin)
    with UnitOfWork(settings) as uow:
        row = uow.db.get(WhatsappSession, acme_session["id"])
        assert row.is_active is True and row.config == "{}"


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/session"),
        ("post", "/session"),
        ("get", "/session/stats"),
        ("get", "/session/cleanup"),
        ("post", "/session/cleanup"),
        ("post", "/session/sync"),
        ("get", "/session/vendas"),
        ("get", "/jobs/abc"),
    ],
)
@pytest.mark.parametrize("header", [None, "Bearer", "Bearer nope", "Basic abc", "bearer  "])
def test_requests_without_a_valid_token_are_401(client, tenant, method, path, header):
    headers = {"Authorization": header} if header is not None else {}
    response = getattr(client, method)(path, headers=headers, json={"name": "x"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.get_json()["message"]


def test_revoked_token_stops_working(client, tenant, settings):
    assert client.get("/session", headers=tenant.agent).status_code == 200
    accounts.revoke_token(UnitOfWork(settings), "agent@acme.test")
    assert client.get("/session", headers=tenant.agent).status_code == 401


def test_rotated_token_replaces_the_old_one(client, tenant, settings):
    new = accounts.rotate_token(UnitOfWork(settings), "admin@acme.test")
    assert client.get("/session", headers=tenant.admin).status_code == 401
    assert client.get("/session", headers={"Authorization": f"Bearer {new}"}).status_code == 200


def test_tokens_are_stored_hashed(tenant, settings):
    from shared.models import User

    with UnitOfWork(settings) as uow:
        stored = [u.token_hash for u in uow.db.scalars(select(User))]
    assert tenant.admin_token not in stored
    assert accounts.hash_token(tenant.admin_token) in stored


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("post", "/session", {"name": "x"}),
        ("patch", "/session/vendas", {"is_active": False}),
        ("delete", "/session/vendas", None),
        ("post", "/session/vendas/restart", None),
        ("post", "/session/cleanup", None),
        ("post", "/session/sync", None),
    ],
)
def test_agents_may_not_change_anything(client, tenant, acme_session, settings, method, path, body):
    response = getattr(client, method)(path, json=body, headers=tenant.agent)
    assert response.status_code == 403
    assert "admin" in response.get_json()["message"]
    with UnitOfWork(settings) as uow:
        assert uow.db.get(WhatsappSession, acme_session["id"]).is_active is True


@pytest.mark.parametrize(
    "path", ["/session", "/session/stats", "/session/cleanup", "/session/vendas", "/session/vendas/details"]
)
def test_agents_may_read(client, tenant, acme_session, path):
    assert client.get(path, headers=tenant.agent).status_code == 200
