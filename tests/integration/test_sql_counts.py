"""SQL statements per read route: a small fixed number, whatever the page size.

Each request's statements are counted with SQLAlchemy's ``before_cursor_execute`` event
(pool pre-pings and SQLite's connect pragmas do not go through it). The token cache is
off for the exact counts, so each request pays its token lookup: one statement, in the
same transaction as the handler's own.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import event, insert

from api import create_app
from shared.db import engine_for, read_engine_for
from shared.models import Job, WhatsappSession, new_id
from shared.services import accounts, webhook_endpoints
from shared.uow import UnitOfWork
from tests.integration.test_messages_store import inbound, make_linked, store

HOOK_URL = "http://127.0.0.1:9/hook"


class StatementCounter:
    """Counts the statements an app's requests send to the database."""

    def __init__(self, settings, client, headers) -> None:
        # read-only handlers go through the autocommit engine, the rest through the other
        self.engines = (engine_for(settings.DATABASE_URL), read_engine_for(settings.DATABASE_URL))
        self.settings, self.client, self.headers = settings, client, headers
        self.statements: list[str] = []

    def __enter__(self) -> StatementCounter:
        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *_exc) -> None:
        for engine in self.engines:
            event.remove(engine, "before_cursor_execute", self._count)

    def _count(self, _conn, _cursor, statement, *_args) -> None:
        self.statements.append(statement)

    def cost(self, path: str, items: int | None = None) -> int:
        """Statements of one GET of ``path`` (which must answer 200, with ``items`` items if given).

        The token cache is emptied first: each request pays its token lookup.
        """
        accounts.token_cache(self.settings).clear()
        self.statements.clear()
        response = self.client.get(path, headers=self.headers)
        assert response.status_code == 200, response.get_json()
        if items is not None:
            assert len(response.get_json()["items"]) == items
        return len(self.statements)


def counter(settings, tenant, **overrides) -> StatementCounter:
    overrides = {"TOKEN_CACHE_SECONDS": 0, "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8", **overrides}
    app = create_app(settings.with_overrides(**overrides))
    return StatementCounter(settings, app.test_client(), tenant.admin)


def add_sessions(settings, company_id: str, count: int, start: int = 0) -> None:
    rows = [
        {
            "id": new_id(),
            "company_id": company_id,
            "name": f"s{start + i}",
            "status": "CONNECTED",
            "is_active": True,
            "config": '{"team": "x"}',
            "epoch": 0,
            "last_seen": datetime.now(UTC),
        }
        for i in range(count)
    ]
    with engine_for(settings.DATABASE_URL).begin() as connection:
        connection.execute(insert(WhatsappSession), rows)


def test_session_list_costs_two_statements_for_any_size(settings, tenant):
    add_sessions(settings, tenant.company_id, 1)
    with counter(settings, tenant) as sql:
        one = sql.cost("/session?per_page=1", items=1)
        add_sessions(settings, tenant.company_id, 49, start=1)
        small, large = sql.cost("/session?per_page=2", items=2), sql.cost("/session?per_page=50", items=50)
        filtered = sql.cost("/session?per_page=100&status=connected&is_active=true", items=50)
        beyond = sql.cost("/session?per_page=50&page=3", items=0)
    # token lookup, the page with its total; past the end the total is counted apart
    assert (one, small, large, filtered, beyond) == (2, 2, 2, 2, 3)


def test_single_session_read_costs_two_statements(settings, tenant):
    add_sessions(settings, tenant.company_id, 50)
    with counter(settings, tenant) as sql:
        assert sql.cost("/session/s7") == 2  # token lookup, the row


def test_a_cached_token_costs_no_statement(settings, tenant):
    add_sessions(settings, tenant.company_id, 3)
    with counter(settings, tenant, TOKEN_CACHE_SECONDS=3600) as sql:
        first = sql.cost("/session/s1")
        sql.statements.clear()
        assert sql.client.get("/session/s1", headers=sql.headers).status_code == 200
    assert (first, len(sql.statements)) == (2, 1)


def test_job_read_costs_two_statements(settings, tenant):
    with UnitOfWork(settings) as uow:
        job = Job(company_id=tenant.company_id, kind="create", status="queued", queue="control")
        uow.db.add(job)
        uow.commit()
    with counter(settings, tenant) as sql:
        assert sql.cost(f"/jobs/{job.id}") == 2


@pytest.fixture
def messages(settings, tenant):
    """A linked session ``vendas`` with 30 inbound messages in 30 chats (and their events)."""
    linked = make_linked(settings, tenant.company_id)
    for n in range(30):
        store(settings, linked, inbound(n, chat=f"55119999{n:05d}@c.us"))
    return linked


def test_message_and_event_lists_cost_the_same_for_any_size(settings, tenant, messages):
    with counter(settings, tenant) as sql:
        costs = {
            path: (sql.cost(path.format(n=1), items=1), sql.cost(path.format(n=25), items=25))
            for path in (
                "/session/vendas/messages?limit={n}",
                "/events?limit={n}",
            )
        }
    assert costs == {
        "/session/vendas/messages?limit={n}": (3, 3),  # token lookup, the session, the page
        "/events?limit={n}": (2, 2),  # token lookup, the page
    }


def test_webhook_list_costs_two_statements_for_any_number(settings, tenant):
    allowed = settings.with_overrides(WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8")
    webhook_endpoints.create_endpoint(UnitOfWork(allowed), tenant.company_id, url=HOOK_URL)
    with counter(settings, tenant) as sql:
        one = sql.cost("/webhooks", items=1)
        for _ in range(4):
            webhook_endpoints.create_endpoint(UnitOfWork(allowed), tenant.company_id, url=HOOK_URL)
        five = sql.cost("/webhooks", items=5)
    assert (one, five) == (2, 2)
