"""Timestamps leave the API with their zone on both databases (SQLite stores them naive)."""

from __future__ import annotations

from datetime import datetime


def test_every_timestamp_of_a_session_and_its_job_carries_its_zone(client, tenant):
    created = client.post("/session", json={"name": "vendas"}, headers=tenant.admin).get_json()
    fetched = client.get("/session/vendas", headers=tenant.admin).get_json()
    job = client.get(f"/jobs/{created['job']['id']}", headers=tenant.admin).get_json()
    stamps = [fetched["created_at"], fetched["updated_at"], job["created_at"]]
    assert all(datetime.fromisoformat(stamp).tzinfo is not None for stamp in stamps), stamps
