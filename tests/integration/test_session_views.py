"""The read-only session views dump exactly like the ORM rows they stand for."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from api.schemas.sessions import SessionSchema
from shared.models import WhatsappSession
from shared.services import sessions
from shared.uow import UnitOfWork
from tests.integration.test_sql_counts import add_sessions


def test_views_dump_like_the_rows_they_read(settings, tenant):
    add_sessions(settings, tenant.company_id, 4)
    with UnitOfWork(settings) as uow:
        rows = {row.name: row for row in uow.db.scalars(select(WhatsappSession))}
        # every combination the computed columns can meet: text, empty text, NULL
        rows["s0"].qr_code, rows["s0"].auth_state_updated_at = "2@abc", datetime.now(UTC)
        rows["s1"].qr_code, rows["s1"].config = "", '{"team": "a", "n": [2.5], "big": 1234567890123456789012}'
        rows["s2"].phone_number, rows["s2"].push_name, rows["s2"].last_error = "5511999990000", "Zé", "boom"
        rows["s3"].last_seen, rows["s3"].worker_id, rows["s3"].epoch = None, "w1", 7
        uow.commit()
    schema = SessionSchema()
    with UnitOfWork(settings) as uow:
        expected = {row.name: schema.dump(row) for row in uow.db.scalars(select(WhatsappSession))}
    page = sessions.find_all_by_company(UnitOfWork(settings), tenant.company_id, per_page=10)
    assert page.total == 4
    assert {view.name: schema.dump(view) for view in page.items} == expected
    for name in expected:
        view = sessions.find_by_company(UnitOfWork(settings), tenant.company_id, name)
        assert schema.dump(view) == expected[name]
    assert expected["s0"]["has_qr_code"] and expected["s0"]["has_login_state"]
    assert not expected["s1"]["has_qr_code"] and not expected["s1"]["has_login_state"]
