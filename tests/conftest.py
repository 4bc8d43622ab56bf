"""Fixtures shared by every test: a private database and Redis key space per run.

PostgreSQL and Redis are the real servers of the machine (``TEST_POSTGRES_URL``,
``TEST_REDIS_URL``); each run gets its own PostgreSQL database and its own broker
key prefix, so parallel or repeated runs never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
import redis
from sqlalchemy import text

from shared.config import Settings, set_settings
from shared.db import dispose_all, engine_for
from shared.migrate import upgrade
from shared.models import Base
from shared.services import accounts
from shared.uow import UnitOfWork

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:10]


def _postgres_url_for(database: str) -> str:
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


def _admin_execute(sql: str) -> None:
    connection = psycopg2.connect(POSTGRES_ADMIN_URL)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test run, dropped afterwards."""
    name = f"zaphub_test_{RUN_ID}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    url = _postgres_url_for(name)
    upgrade(url)
    yield url
    dispose_all()
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def broker_prefix() -> Iterator[str]:
    """A Redis key prefix private to this run; its keys are deleted afterwards."""
    prefix = f"zaphub-test-{RUN_ID}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)


def _truncate(url: str) -> None:
    engine = engine_for(url)
    with engine.begin() as connection:
        names = ", ".join(table.name for table in reversed(Base.metadata.sorted_tables))
        connection.execute(text(f"TRUNCATE {names} CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: a new SQLite file, or the run's PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'zaphub.db'}"
        upgrade(url)
        yield url
        engine_for(url).dispose()
    else:
        url = request.getfixturevalue("postgres_url")
        _truncate(url)
        yield url


@pytest.fixture
def settings(database_url: str, broker_prefix: str, tmp_path: Path) -> Settings:
    """Settings pointing at this test's database and the run's Redis key space."""
    configured = Settings.from_env(
        {},
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
        BROKER_KEY_PREFIX=broker_prefix,
        TESTING=True,
        SESSIONS_DIR=str(tmp_path / "sessions"),
        SECRET_KEY="test-secret-" + RUN_ID,
    )
    set_settings(configured)
    return configured


@pytest.fixture
def uow(settings: Settings) -> UnitOfWork:
    """A unit of work on this test's database."""
    return UnitOfWork(settings)


@dataclass
class Tenant:
    """A company with an admin and an agent, and their bearer headers."""

    company_id: str
    name: str
    admin_token: str
    agent_token: str

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    @property
    def agent(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.agent_token}"}


def make_tenant(settings: Settings, name: str) -> Tenant:
    """Create a company with one admin and one agent."""
    company = accounts.create_company(UnitOfWork(settings), name)
    _, admin_token = accounts.create_user(UnitOfWork(settings), name, f"admin@{name}.test", "admin")
    _, agent_token = accounts.create_user(UnitOfWork(settings), name, f"agent@{name}.test", "agent")
    return Tenant(company.id, name, admin_token, agent_token)


@pytest.fixture
def tenant(settings: Settings) -> Tenant:
    return make_tenant(settings, "acme")


@pytest.fixture
def other_tenant(settings: Settings) -> Tenant:
    return make_tenant(settings, "globex")


@pytest.fixture
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL)


@pytest.fixture
def app(settings: Settings):
    from api import create_app

    return create_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()
