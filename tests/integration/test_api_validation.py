"""Hostile and malformed input: always a clear 4xx naming the field, never a 500."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from shared.config import CONTROL_QUEUE
from shared.models import Job, WhatsappSession
from shared.uow import UnitOfWork
from tests.broker_inspect import drain

HOSTILE_NAMES = [
    "../x",
    "a/b",
    "",
    "a" * 65,
    "vendás",
    "ação",
    "Vendas",
    "-lead",
    "_lead",
    "a b",
    "a\nb",
    "abc\n",
    "..",
    ".",
    "a%2Fb",
    "a\x00b",
    "名前",
    "a;drop",
    " a",
]


@pytest.fixture(autouse=True)
def empty_queues(redis_client, broker_prefix):
    yield
    drain(redis_client, broker_prefix, CONTROL_QUEUE)


def _nothing_written(settings) -> bool:
    with UnitOfWork(settings) as uow:
        return (
            uow.db.scalar(select(func.count()).select_from(WhatsappSession)) == 0
            and uow.db.scalar(select(func.count()).select_from(Job)) == 0
        )


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_are_422_naming_the_field(client, tenant, settings, name):
    response = client.post("/session", json={"name": name}, headers=tenant.admin)
    assert response.status_code == 422
    assert "name" in response.get_json()["errors"]["json"]
    assert "name" in response.get_json()["message"]
    assert _nothing_written(settings)


@pytest.mark.parametrize("name", ["a", "0", "vendas", "a" * 64, "x_1-2", "9lives"])
def test_valid_names_are_accepted(client, tenant, name):
    assert client.post("/session", json={"name": name}, headers=tenant.admin).status_code == 202


@pytest.mark.parametrize(
    "body,field",
    [
        ({"name": 5}, "name"),
        ({"name": None}, "name"),
        ({"name": ["a"]}, "name"),
        ({"name": "ok", "config": "x"}, "config"),
        ({"name": "ok", "config": [1]}, "config"),
        ({"name": "ok", "extra": 1}, "extra"),
        ({}, "name"),
    ],
)
def test_wrong_types_and_unknown_fields_are_422(client, tenant, settings, body, field):
    response = client.post("/session", json=body, headers=tenant.admin)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]["json"]
    assert _nothing_written(settings)


def test_oversized_config_is_422(client, tenant, settings):
    response = client.post(
        "/session", json={"name": "ok", "config": {"k": "x" * 20000}}, headers=tenant.admin
    )
    assert response.status_code == 422
    assert "config" in response.get_json()["errors"]["json"]
    assert _nothing_written(settings)


@pytest.mark.parametrize(
    "body,field",
    [
        ({"is_active": "yes"}, "is_active"),
        ({"is_active": 1}, "is_active"),
        ({"name": "../etc"}, "name"),
        ({"config": 3}, "config"),
        ({"status": "CONNECTED"}, "status"),
        ({}, "_schema"),
    ],
)
def test_bad_updates_are_422(client, tenant, body, field):
    client.post("/session", json={"name": "vendas"}, headers=tenant.admin)
    response = client.patch("/session/vendas", json=body, headers=tenant.admin)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]["json"]


@pytest.mark.parametrize(
    "data,content_type,expected",
    [
        ("name=vendas", "application/x-www-form-urlencoded", 422),
        ("vendas", "text/plain", 422),
        ("{not json", "application/json", 400),
        ("[1, 2]", "application/json", 422),
        ('"vendas"', "application/json", 422),
        ("", "application/json", 422),
    ],
)
def test_wrong_content_is_a_client_error(client, tenant, settings, data, content_type, expected):
    response = client.post("/session", data=data, content_type=content_type, headers=tenant.admin)
    assert response.status_code == expected
    assert response.is_json and response.get_json()["message"]
    assert _nothing_written(settings)


@pytest.mark.parametrize(
    "query", ["page=0", "page=x", "per_page=0", "per_page=101", "is_active=maybe", "status=LOST"]
)
def test_bad_list_queries_are_422(client, tenant, query):
    response = client.get(f"/session?{query}", headers=tenant.agent)
    assert response.status_code == 422
    assert query.split("=")[0] in response.get_json()["errors"]["query"]


def test_unknown_route_and_method_are_json(client, tenant):
    assert client.get("/nope", headers=tenant.agent).get_json()["code"] == 404
    assert client.put("/session", headers=tenant.admin).status_code == 405


def test_huge_body_is_413(client, tenant):
    response = client.post(
        "/session", data="x" * 200_000, content_type="application/json", headers=tenant.admin
    )
    assert response.status_code == 413
