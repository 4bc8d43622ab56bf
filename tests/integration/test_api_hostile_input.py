"""Issue 6, items 10-13 and 16: odd input never gives a 500 or a false outage (both databases)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from shared.config import CONTROL_QUEUE
from shared.models import WhatsappSession
from shared.uow import UnitOfWork
from tests.broker_inspect import drain


@pytest.fixture(autouse=True)
def empty_queues(redis_client, broker_prefix):
    yield
    drain(redis_client, broker_prefix, CONTROL_QUEUE)


def strict_json(raw: bytes):
    """Parse like a strict client: NaN and Infinity are errors."""

    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(raw, parse_constant=refuse)


def send_json(client, method: str, path: str, body: str, headers: dict):
    return client.open(
        path, method=method, data=body, headers={**headers, "Content-Type": "application/json"}
    )


NUL_ROUTES = [
    ("GET", "/session/a%00b"),
    ("PATCH", "/session/a%00b"),
    ("DELETE", "/session/a%00b"),
    ("PUT", "/session/a%00b"),
    ("GET", "/session/a%00b/details"),
    ("POST", "/session/a%00b/restart"),
    ("GET", "/session/a%00b/qr"),
    ("GET", "/jobs/a%00b"),
    ("DELETE", "/jobs/a%00b"),
]


@pytest.mark.parametrize("method,path", NUL_ROUTES)
def test_item_10_nul_byte_in_path_is_404(client, tenant, method, path):
    response = send_json(client, method, path, '{"is_active": false}', tenant.admin)
    assert response.status_code == 404
    assert response.get_json()["code"] == 404


@pytest.mark.parametrize(
    "body",
    [
        '{"name": "deep", "config": {"a": ' + "[" * 1000 + "]" * 1000 + "}}",
        '{"name": "deep", "config": {"a": ' + '{"b": ' * 1000 + "1" + "}" * 1000 + "}}",
        '{"name": "big", "config": {"a": ' + "7" * 5000 + "}}",
        '{"name": "broken", ',
    ],
    ids=["deep-lists", "deep-objects", "5000-digit-integer", "truncated"],
)
def test_item_11_unparseable_body_is_400_invalid_json(client, tenant, settings, body):
    response = send_json(client, "POST", "/session", body, tenant.admin)
    assert response.status_code == 400
    assert response.get_json()["message"] == "invalid JSON body"
    with UnitOfWork(settings) as uow:
        assert uow.db.scalar(select(WhatsappSession)) is None


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999999", "-1e999999"])
def test_item_12_non_standard_numbers_are_422_naming_the_field(client, tenant, settings, number):
    created = send_json(
        client, "POST", "/session", f'{{"name": "vendas", "config": {{"x": [1, {number}]}}}}', tenant.admin
    )
    assert created.status_code == 422, created.data
    assert "config" in created.get_json()["errors"]["json"]
    assert "config" in created.get_json()["message"]

    assert (
        client.post(
            "/session", json={"name": "vendas", "config": {"x": 1.5}}, headers=tenant.admin
        ).status_code
        == 202
    )
    patched = send_json(client, "PATCH", "/session/vendas", f'{{"config": {{"x": {number}}}}}', tenant.admin)
    assert patched.status_code == 422 and "config" in patched.get_json()["errors"]["json"]
    elsewhere = send_json(client, "PATCH", "/session/vendas", f'{{"is_active": {number}}}', tenant.admin)
    assert elsewhere.status_code == 422 and "is_active" in elsewhere.get_json()["errors"]["json"]

    listing = client.get("/session", headers=tenant.admin)
    assert strict_json(listing.data)["items"][0]["config"] == {"x": 1.5}


@pytest.mark.parametrize(
    "page", ["9223372036854775807", "9223372036854775808", "99999999999999999999", "5002"]
)
def test_item_13_huge_page_is_422(client, tenant, page):
    response = client.get(f"/session?page={page}&per_page=20", headers=tenant.admin)
    assert response.status_code == 422, response.data
    assert "page" in response.get_json()["errors"]["query"]
    assert client.get("/session?page=5001&per_page=20", headers=tenant.admin).status_code == 200


def test_item_13_a_value_the_database_refuses_is_not_an_outage(client, tenant, monkeypatch):
    from shared.services import sessions

    # Whatever slips past the schemas, a value out of the database's range is the
    # request's fault (PostgreSQL DataError, sqlite3 OverflowError), never an outage.
    original = sessions.find_all_by_company
    monkeypatch.setattr(
        sessions,
        "find_all_by_company",
        lambda uow, company, **args: original(uow, company, **{**args, "page": 2**62}),
    )
    response = client.get("/session", headers=tenant.admin)
    assert response.status_code == 422, response.data
    assert "unavailable" not in response.get_json()["message"]


def test_item_16_the_qr_is_admin_only(client, tenant, settings):
    client.post("/session", json={"name": "vendas"}, headers=tenant.admin)
    with UnitOfWork(settings) as uow:
        row = uow.db.scalar(select(WhatsappSession))
        row.status, row.qr_code = "QRCODE", "2@secret,ref,keys,here"
        uow.commit()
    for query in ("", "?format=png", "?format=svg", "?format=json"):
        as_agent = client.get(f"/session/vendas/qr{query}", headers=tenant.agent)
        assert as_agent.status_code == 403 and b"secret" not in as_agent.data
        assert "admin" in as_agent.get_json()["message"]
        assert client.get(f"/session/vendas/qr{query}", headers=tenant.admin).status_code == 200
