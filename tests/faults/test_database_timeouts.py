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
