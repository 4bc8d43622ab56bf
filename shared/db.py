"""Engine and session handling shared by the API, the workers and the CLI.

SQLite is set up for several processes at once (WAL, foreign keys, busy timeout);
PostgreSQL goes through psycopg2 with pre-ping so a restarted server is survived.
"""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 15000


def _tune_sqlite(dbapi_connection, _record) -> None:  # pragma: no cover - driver hook
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def normalize_url(url: str) -> str:
    """Pin plain ``postgresql://`` (and Heroku-style ``postgres://``) URLs to psycopg2."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` with the per-backend settings ZapHub relies on."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        event.listen(engine, "connect", _tune_sqlite)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        connect_args={"connect_timeout": 5} if url.startswith("postgresql") else {},
    )


_engines: dict[str, Engine] = {}
_factories: dict[str, sessionmaker[DbSession]] = {}


def engine_for(url: str) -> Engine:
    """One engine per database URL per process."""
    if url not in _engines:
        _engines[url] = make_engine(url)
    return _engines[url]


def session_factory(url: str) -> sessionmaker[DbSession]:
    """The session factory bound to the engine for ``url``."""
    if url not in _factories:
        _factories[url] = sessionmaker(bind=engine_for(url), expire_on_commit=False)
    return _factories[url]


def dispose_all() -> None:
    """Drop every pooled connection of this process (after a fork, between tests)."""
    for engine in _engines.values():
        engine.dispose()
