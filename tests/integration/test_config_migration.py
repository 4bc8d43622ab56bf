"""Migration 0003: configs stored with NaN or Infinity before strict JSON become valid JSON."""

from __future__ import annotations

import json

from sqlalchemy import text

from shared.db import make_engine
from shared.migrate import downgrade, upgrade


def test_non_finite_configs_become_null_and_others_are_untouched(database_url, tenant):
    downgrade(database_url, "0002")
    engine = make_engine(database_url)
    rows = {
        "nan": '{"a":NaN,"b":[1,Infinity],"c":{"d":-Infinity}}',
        "huge": '{"x":1e999999,"y":2.5}',
        "plain": '{"team":"Ne","n":1e3}',
    }
    with engine.begin() as connection:
        for index, (name, config) in enumerate(rows.items()):
            connection.execute(
                text(
                    "INSERT INTO whatsapp_sessions (id, company_id, name, status, is_active, config, "
                    "created_at, updated_at, epoch) VALUES (:id, :company, :name, 'DISCONNECTED', true, "
                    ":config, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0)"
                ),
                {"id": f"{index:032d}", "company": tenant.company_id, "name": name, "config": config},
            )
    upgrade(database_url)
    with engine.connect() as connection:
        stored = dict(connection.execute(text("SELECT name, config FROM whatsapp_sessions")).all())
    engine.dispose()
    assert json.loads(stored["nan"]) == {"a": None, "b": [1, None], "c": {"d": None}}
    assert json.loads(stored["huge"]) == {"x": None, "y": 2.5}
    assert stored["plain"] == rows["plain"]
