"""The fast dumps answer exactly what marshmallow answers, route by route, on real data."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime

from api import create_app
from api.schemas.fast_dump import FAST_SCHEMAS
from shared.models import Job, WhatsappSession
from shared.services import webhook_endpoints
from shared.uow import UnitOfWork
from tests.integration.test_messages_store import inbound, make_linked, store
from tests.integration.test_sql_counts import HOOK_URL, add_sessions


@contextlib.contextmanager
def marshmallow_dumps() -> Iterator[None]:
    """Every response schema dumps through marshmallow's own ``Schema.dump`` in the block."""
    fast = [(schema, schema.__dict__.pop("dump")) for schema in FAST_SCHEMAS if "dump" in schema.__dict__]
    assert fast, "no schema has a fast dump"
    try:
        yield
    finally:
        for schema, dump in fast:
            schema.dump = dump


def test_read_routes_answer_the_same_as_marshmallow(settings, tenant):
    allowed = settings.with_overrides(WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8")
    client = create_app(allowed).test_client()
    linked = make_linked(settings, tenant.company_id)
    for n in range(5):
        store(settings, linked, inbound(n, chat=f"55119999{n:05d}@c.us"))
    add_sessions(settings, tenant.company_id, 5)
    with UnitOfWork(settings) as uow:
        row = uow.db.query(WhatsappSession).filter_by(name="s1").one()
        row.qr_code, row.config, row.phone_number = "2@abc", '{"team": "a", "n": [1, 2]}', "5511999990000"
        row.auth_state_updated_at, row.last_error = datetime.now(UTC), "boom"
        job = Job(company_id=tenant.company_id, kind="create", status="failed", queue="control", error="x")
        uow.db.add(job)
        uow.commit()
    endpoint = webhook_endpoints.create_endpoint(
        UnitOfWork(allowed), tenant.company_id, url=HOOK_URL, event_types=["message"], description="d"
    )
    paths = [
        "/session?per_page=100",
        "/session/s1",
        "/session/vendas",
        "/session/stats",
        f"/jobs/{job.id}",
        "/session/vendas/messages?limit=10",
        "/session/vendas/chats",
        "/session/vendas/contacts",
        "/events?limit=50",
        "/webhooks",
        f"/webhooks/{endpoint.id}",
        "/me",
    ]

    def answers() -> dict[str, bytes]:
        got = {}
        for path in paths:
            response = client.get(path, headers=tenant.admin)
            assert response.status_code == 200, (path, response.get_json())
            got[path] = response.data  # the bytes: key order and formatting count too
        return got

    fast = answers()
    with marshmallow_dumps():
        slow = answers()
    assert fast == slow
    assert fast["/session?per_page=100"].count(b'"epoch"') == 6 and b'"message"' in fast["/events?limit=50"]
