"""Item 9: a paused PostgreSQL never hangs a caller past the configured deadlines."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from shared.uow import UnitOfWork


def test_a_paused_database_fails_a_query_within_the_deadline(settings, private_postgres):
    with UnitOfWork(settings) as uow:  # a pooled, open connection that will go silent
        uow.db.execute(text("SELECT 1"))
    private_postgres.pause()
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError), UnitOfWork(settings) as uow:
            uow.db.execute(text("SELECT 1"))
        elapsed = time.monotonic() - started
    finally:
        private_postgres.resume()
    assert elapsed < settings.DB_STATEMENT_TIMEOUT + 3
    with UnitOfWork(settings) as uow:  # the dead connection left the pool
        assert uow.db.execute(text("SELECT 1")).scalar() == 1


def test_item_9_health_and_routes_answer_503_while_the_database_is_paused(
    settings, private_postgres, client, tenant
):
    assert client.get("/session", headers=tenant.admin).status_code == 200  # pooled connections
    private_postgres.pause()
    try:
        started = time.monotonic()
        health = client.get("/health")
        health_took = time.monotonic() - started

        started = time.monotonic()
        listing = client.get("/session", headers=tenant.admin)
        listing_took = time.monotonic() - started
    finally:
        private_postgres.resume()

    assert health.status_code == 503
    assert health.get_json()["database"].startswith("unavailable")
    assert health.get_json()["broker"] == "ok"
    assert health_took < 4, health_took
    assert listing.status_code == 503
    assert listing.is_json and "database is unavailable" in listing.get_json()["message"]
    assert listing_took < settings.DB_STATEMENT_TIMEOUT + 4, listing_took

    assert client.get("/health").status_code == 200
    assert client.get("/session", headers=tenant.admin).status_code == 200


def test_item_9_health_bounds_a_broker_that_does_not_answer(settings, client):
    # A broker that accepts the connection and then says nothing (paused, partitioned).
    import socket
    import threading

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_stay_silent() -> None:
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(silent.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept_and_stay_silent, daemon=True).start()
    from api import create_app

    silent_broker = settings.with_overrides(REDIS_URL=f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
    try:
        started = time.monotonic()
        health = create_app(silent_broker).test_client().get("/health")
        took = time.monotonic() - started
    finally:
        stop.set()
        for connection in accepted:
            connection.close()
        silent.close()
    assert health.status_code == 503
    assert health.get_json()["broker"].startswith("unavailable")
    assert health.get_json()["database"] == "ok"
    assert took < 4, took
