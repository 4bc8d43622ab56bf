"""``/webhooks``: registration, validation, limits, tenancy, rotation and replay arguments.

Both databases, the Flask app in-process. URLs are vetted for real (no resolver is
faked): loopback and link-local addresses are refused unless allow-listed.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from api import create_app
from shared.models import WebhookEndpoint
from shared.uow import UnitOfWork

LOCAL = "http://127.0.0.1:9/hook"


@pytest.fixture
def allowed(settings):
    """The API with loopback allowed (as tests and on-premise users set it) and a limit of 3."""
    app = create_app(settings.with_overrides(WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8", WEBHOOK_MAX_ENDPOINTS=3))
    return app.test_client()


def count(settings) -> int:
    with UnitOfWork(settings) as uow:
        return uow.db.scalar(select(func.count()).select_from(WebhookEndpoint))


def register(client, tenant, **body):
    return client.post("/webhooks", json={"url": LOCAL, **body}, headers=tenant.admin)


def test_register_shows_the_secret_once(allowed, tenant):
    created = register(allowed, tenant, event_types=["message.received"], sessions=["vendas"])
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["secret"].startswith("whsec_") and body["status"] == "active"
    assert body["event_types"] == ["message.received"] and body["sessions"] == ["vendas"]
    listed = allowed.get("/webhooks", headers=tenant.admin).get_json()["items"]
    assert [e["id"] for e in listed] == [body["id"]] and "secret" not in listed[0]
    assert "secret" not in allowed.get(f"/webhooks/{body['id']}", headers=tenant.admin).get_json()


@pytest.mark.parametrize(
    "url,words",
    [
        ("http://127.0.0.1:8080/x", "loopback"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://10.1.2.3/x", "private"),
        ("http://[::1]/x", "loopback"),
        ("ftp://example.com/x", "http"),
        ("not a url", "url"),
    ],
)
def test_unsafe_urls_are_refused_with_422_naming_url(client, settings, tenant, url, words):
    answer = client.post("/webhooks", json={"url": url}, headers=tenant.admin)
    assert answer.status_code == 422, answer.get_json()
    message = answer.get_json()["message"]
    assert "url" in message and words in message
    assert count(settings) == 0


def test_bad_fields_are_422_naming_them(allowed, tenant, settings):
    for body, field in [
        ({"event_types": ["message.nope"]}, "event_types"),
        ({"sessions": ["bad name!"]}, "sessions"),
        ({"unknown": 1}, "unknown"),
    ]:
        answer = register(allowed, tenant, **body)
        assert answer.status_code == 422 and field in answer.get_json()["message"], answer.get_json()
    assert count(settings) == 0


def test_agents_may_not_manage_endpoints(allowed, tenant):
    assert register(allowed, tenant).status_code == 201
    assert allowed.get("/webhooks", headers=tenant.agent).status_code == 403
    assert allowed.post("/webhooks", json={"url": LOCAL}, headers=tenant.agent).status_code == 403


def test_the_company_limit_is_409_and_writes_nothing(allowed, tenant, settings):
    for _ in range(3):
        assert register(allowed, tenant).status_code == 201
    refused = register(allowed, tenant)
    assert refused.status_code == 409 and "limit is 3" in refused.get_json()["message"]
    assert count(settings) == 3


def test_another_companys_endpoint_answers_404(allowed, tenant, other_tenant):
    endpoint_id = register(allowed, tenant).get_json()["id"]
    for method, path, body in [
        ("get", f"/webhooks/{endpoint_id}", None),
        ("patch", f"/webhooks/{endpoint_id}", {"status": "paused"}),
        ("delete", f"/webhooks/{endpoint_id}", None),
        ("get", f"/webhooks/{endpoint_id}/deliveries", None),
        ("post", f"/webhooks/{endpoint_id}/rotate-secret", {}),
        ("post", f"/webhooks/{endpoint_id}/replay", {"since": "2020-01-01T00:00:00Z"}),
    ]:
        answer = getattr(allowed, method)(path, json=body, headers=other_tenant.admin)
        assert answer.status_code == 404, (method, path, answer.get_json())
    assert allowed.get(f"/webhooks/{endpoint_id}", headers=tenant.admin).status_code == 200


def test_patch_pauses_and_resumes_and_delete_removes(allowed, tenant):
    endpoint_id = register(allowed, tenant).get_json()["id"]
    paused = allowed.patch(f"/webhooks/{endpoint_id}", json={"status": "paused"}, headers=tenant.admin)
    assert paused.get_json()["status"] == "paused" and paused.get_json()["status_reason"] == "set by an admin"
    resumed = allowed.patch(f"/webhooks/{endpoint_id}", json={"status": "active"}, headers=tenant.admin)
    assert resumed.get_json()["status"] == "active" and resumed.get_json()["status_reason"] is None
    moved = allowed.patch(
        f"/webhooks/{endpoint_id}", json={"url": "http://169.254.169.254/"}, headers=tenant.admin
    )
    assert moved.status_code == 422
    assert allowed.get(f"/webhooks/{endpoint_id}", headers=tenant.admin).get_json()["url"] == LOCAL
    assert allowed.patch(f"/webhooks/{endpoint_id}", json={}, headers=tenant.admin).status_code == 422
    assert allowed.delete(f"/webhooks/{endpoint_id}", headers=tenant.admin).status_code == 204
    assert allowed.get(f"/webhooks/{endpoint_id}", headers=tenant.admin).status_code == 404


def test_rotation_gives_a_new_secret_and_a_grace_period(allowed, tenant):
    created = register(allowed, tenant).get_json()
    rotated = allowed.post(
        f"/webhooks/{created['id']}/rotate-secret", json={"grace_seconds": 600}, headers=tenant.admin
    )
    assert rotated.status_code == 200
    body = rotated.get_json()
    assert body["secret"].startswith("whsec_") and body["secret"] != created["secret"]
    assert body["previous_secret_expires_at"] is not None
    refused = allowed.post(
        f"/webhooks/{created['id']}/rotate-secret", json={"grace_seconds": -1}, headers=tenant.admin
    )
    assert refused.status_code == 422 and "grace_seconds" in refused.get_json()["message"]


@pytest.mark.parametrize(
    "body,field",
    [
        ({}, "event_id, since"),
        ({"after_seq": 3}, "session"),
        ({"event_id": "not-a-ulid"}, "event_id"),
        ({"event_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "since": "2020-01-01T00:00:00Z"}, "event_id"),
    ],
)
def test_replay_arguments_are_checked(allowed, tenant, body, field):
    endpoint_id = register(allowed, tenant).get_json()["id"]
    answer = allowed.post(f"/webhooks/{endpoint_id}/replay", json=body, headers=tenant.admin)
    assert answer.status_code == 422 and field in answer.get_json()["message"], answer.get_json()


def test_replay_of_an_unknown_event_is_404(allowed, tenant):
    endpoint_id = register(allowed, tenant).get_json()["id"]
    answer = allowed.post(
        f"/webhooks/{endpoint_id}/replay",
        json={"event_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"},
        headers=tenant.admin,
    )
    assert answer.status_code == 404


def test_deliveries_filter_is_checked(allowed, tenant):
    endpoint_id = register(allowed, tenant).get_json()["id"]
    ok = allowed.get(f"/webhooks/{endpoint_id}/deliveries?state=dead", headers=tenant.admin)
    assert ok.status_code == 200 and ok.get_json()["items"] == []
    bad = allowed.get(f"/webhooks/{endpoint_id}/deliveries?state=lost", headers=tenant.admin)
    assert bad.status_code == 422 and "state" in bad.get_json()["message"]
