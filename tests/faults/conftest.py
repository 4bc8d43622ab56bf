"""Fault tests: the real stack on private PostgreSQL and Redis servers that may be broken.

The end-to-end fixtures (simulator, worker processes, API helpers) are reused; only the
database and the broker are swapped for servers of this run's own, so pausing or
flushing them never touches another test run on the machine.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.config import Settings, set_settings
from shared.db import dispose_all
from shared.migrate import upgrade
from tests.conftest import _truncate
from tests.e2e.conftest import api, sim, simulator_server, start_worker  # noqa: F401 - fixtures
from tests.e2e.stack import WORKER_ENV
from tests.faults.services import PrivatePostgres, PrivateRedis


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of this run's own (migrated), destroyed at the end."""
    server = PrivatePostgres().create()
    upgrade(server.url)
    yield server
    dispose_all()
    server.destroy()


@pytest.fixture(scope="session")
def private_redis() -> Iterator[PrivateRedis]:
    """A redis-server of this run's own, destroyed at the end."""
    server = PrivateRedis().start()
    yield server
    server.destroy()


@pytest.fixture
def database_url(private_postgres: PrivatePostgres) -> str:
    """Fault tests use the private cluster, emptied before each test (and running)."""
    try:
        private_postgres.resume()
    except (OSError, ValueError):
        pass
    _truncate(private_postgres.url)
    return private_postgres.url


@pytest.fixture
def settings(database_url, private_redis: PrivateRedis, tmp_path) -> Settings:
    """Settings on the private servers, with the workers' fast heartbeat lease."""
    private_redis.client().flushall()
    fast = Settings.from_env(
        WORKER_ENV,
        DATABASE_URL=database_url,
        REDIS_URL=private_redis.url,
        TESTING=True,
        SESSIONS_DIR=str(tmp_path / "sessions"),
        SECRET_KEY="fault-test-secret-key",
        DEV_MODE=False,
    )
    set_settings(fast)
    return fast
