"""Engine and session handling shared by the API, the workers and the CLI.

SQLite is set up for several processes at once (WAL, foreign keys, busy timeout).
PostgreSQL goes through psycopg2 with pre-ping, TCP keepalives, a server-side
statement timeout, a pool checkout timeout, and a client-side deadline on every
round trip: a server that stops answering (paused, partitioned) turns into an
``OperationalError`` within the deadline instead of hanging the caller, and the
connection is dropped from the pool.

The process also remembers when it last lost the database, so that housekeeping can
tell "every worker went silent" apart from "I could not see anyone for a while".
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import select
import socket
import time
from collections.abc import Iterator

import psycopg2
import psycopg2.extensions
from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from shared.config import Settings, get_settings

SQLITE_BUSY_TIMEOUT_MS = 15000
# The client-side deadline allows this much beyond the server-side statement timeout,
# so a slow query is cancelled cleanly by the server and only a silent one is cut here.
CLIENT_DEADLINE_MARGIN = 1.0


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


# ------------------------------------------------------------ client-side deadline
# Per thread, per greenlet (greenlet gives each its own context) and per asyncio task.
# Context variables rather than a ``threading.local``: under gunicorn's gevent worker
# this module is imported by the master before the worker monkey-patches, and a
# ``threading.local`` made then stays one per OS thread, shared by every greenlet:
# one request's budget would cut (or, restored out of order, outlive) another's.
_budget_end: contextvars.ContextVar[float | None] = contextvars.ContextVar("db_budget_end", default=None)
_operation: contextvars.ContextVar[float | None] = contextvars.ContextVar("db_operation", default=None)
_limits = {"connect": 3.0, "statement": 6.0}
# A pre-ping is a "SELECT 1": a server that cannot answer it this fast is not answering.
PING_DEADLINE = 1.0
# A pooled connection is pinged at checkout only when it has been idle this long: one
# that answered a moment ago is taken as alive, so a busy API does not pay a round trip
# per request for it. A server lost in between surfaces as a disconnect on first use,
# and SQLAlchemy then recycles every pooled connection older than that moment.
PING_AFTER_IDLE_SECONDS = 1.0
_SESSION_STATUSES = frozenset(
    {
        psycopg2.extensions.STATUS_READY,
        psycopg2.extensions.STATUS_BEGIN,
        psycopg2.extensions.STATUS_PREPARED,
    }
)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Give every PostgreSQL round trip of this thread (greenlet) in the block ``seconds`` in total.

    Connecting, pinging and querying all draw on the same budget, so a caller such as
    ``/health`` knows how long it can wait at most.
    """
    previous = _budget_end.get()
    end = time.monotonic() + seconds
    # A nested budget may only shorten the one around it.
    _budget_end.set(end if previous is None else min(previous, end))
    try:
        yield
    finally:
        _budget_end.set(previous)


@contextlib.contextmanager
def renewed_deadline(seconds: float) -> Iterator[None]:
    """Like :func:`deadline`, but replacing the budget around it for the block.

    For a request that waits between short reads (a bounded poll): the waiting is not
    database work, so each read gets its own full budget instead of the request's rest.
    """
    previous = _budget_end.get()
    _budget_end.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _budget_end.set(previous)


@contextlib.contextmanager
def _operation_limit(seconds: float) -> Iterator[None]:
    previous = _operation.get()
    _operation.set(seconds)
    try:
        yield
    finally:
        _operation.set(previous)


class DatabaseTimeout(psycopg2.OperationalError):
    """The database did not answer within the client-side deadline."""


def _sever(conn) -> None:
    """Cut a connection whose server went silent, without waiting for the server.

    ``conn.close()`` would try to say goodbye to the server and block; shutting the
    socket down makes psycopg2 see a broken connection and mark it closed.
    """
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(conn.fileno())) as sock:
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(psycopg2.Error):
        conn.poll()


def _wait_with_deadline(conn) -> None:
    """psycopg2 wait callback: poll the socket, give up after the deadline.

    On timeout the connection is severed before raising, so SQLAlchemy sees a closed
    connection, reports a disconnect and never hands it out again.
    """
    if conn.status in _SESSION_STATUSES:
        limit = _operation.get() or _limits["statement"]
    else:  # still connecting
        limit = _limits["connect"]
    give_up = time.monotonic() + limit
    budget_end = _budget_end.get()
    if budget_end is not None:
        give_up = min(give_up, budget_end)
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        remaining = give_up - time.monotonic()
        if remaining <= 0:
            _sever(conn)
            raise DatabaseTimeout("database did not answer in time (client-side deadline)")
        fd = conn.fileno()
        if state == psycopg2.extensions.POLL_READ:
            select.select([fd], [], [], remaining)
        elif state == psycopg2.extensions.POLL_WRITE:
            select.select([], [fd], [], remaining)
        else:  # pragma: no cover - psycopg2 only returns the states above
            raise psycopg2.OperationalError(f"unexpected poll state {state}")


# ------------------------------------------------------------ outage memory
_last_outage: float | None = None


def _record_outage(context) -> None:
    global _last_outage
    if context.is_disconnect or isinstance(context.original_exception, psycopg2.OperationalError):
        _last_outage = time.monotonic()


def seconds_since_outage() -> float | None:
    """Seconds since this process last failed to reach the database (``None``: never)."""
    return None if _last_outage is None else time.monotonic() - _last_outage


def note_outage() -> None:
    """Record an outage seen outside SQLAlchemy's error hooks (a failed connect)."""
    global _last_outage
    _last_outage = time.monotonic()


def make_engine(url: str, settings: Settings | None = None, *, isolation_level: str | None = None) -> Engine:
    """Create an engine for ``url`` with the per-backend settings ZapHub relies on."""
    settings = settings or get_settings()
    url = normalize_url(url)
    options = {"isolation_level": isolation_level} if isolation_level else {}
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            **options,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        event.listen(engine, "connect", _tune_sqlite)
        return engine
    statement_ms = int(settings.DB_STATEMENT_TIMEOUT * 1000)
    _limits["statement"] = settings.DB_STATEMENT_TIMEOUT + CLIENT_DEADLINE_MARGIN
    _limits["connect"] = settings.DB_CONNECT_TIMEOUT
    psycopg2.extensions.set_wait_callback(_wait_with_deadline)
    engine = create_engine(
        url,
        **options,
        pool_size=5,
        max_overflow=10,
        pool_timeout=settings.DB_POOL_TIMEOUT,
        connect_args={
            "connect_timeout": max(1, round(settings.DB_CONNECT_TIMEOUT)),
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 3,
            "keepalives_count": 3,
            "options": f"-c statement_timeout={statement_ms} -c idle_in_transaction_session_timeout=60000",
        },
    )
    event.listen(engine, "handle_error", _record_outage)
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """Pre-ping, bounded by :data:`PING_DEADLINE`, connections idle over :data:`PING_AFTER_IDLE_SECONDS`.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout and has no deadline option;
    this is its "pessimistic disconnect handling" recipe: a failed ping raises
    ``DisconnectionError``, and the pool drops the connection and checks out another.
    """
    dialect = engine.dialect

    def mark_used(_dbapi_connection, record) -> None:
        record.info["used_at"] = time.monotonic()

    def ping_if_idle(dbapi_connection, record, _proxy) -> None:
        if time.monotonic() - record.info.get("used_at", 0.0) < PING_AFTER_IDLE_SECONDS:
            return
        try:
            with _operation_limit(PING_DEADLINE):
                dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            raise sa_exc.DisconnectionError("pre-ping failed") from exc

    event.listen(engine, "connect", mark_used)
    event.listen(engine, "checkin", mark_used)
    event.listen(engine, "checkout", ping_if_idle)


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


_read_engines: dict[str, Engine] = {}
_read_factories: dict[str, sessionmaker[DbSession]] = {}


def read_engine_for(url: str) -> Engine:
    """The process's autocommit engine for ``url``: a pool of its own, for pure reads.

    Its connections are in autocommit from their start, so a read costs no ``BEGIN``,
    no ``ROLLBACK`` and no isolation-level reset when it goes back to the pool.
    """
    if url not in _read_engines:
        _read_engines[url] = make_engine(url, isolation_level="AUTOCOMMIT")
    return _read_engines[url]


def read_session_factory(url: str) -> sessionmaker[DbSession]:
    """Sessions for pure reads (:func:`read_engine_for`); each statement sees its own snapshot."""
    if url not in _read_factories:
        _read_factories[url] = sessionmaker(bind=read_engine_for(url), expire_on_commit=False)
    return _read_factories[url]


def dispose_all() -> None:
    """Drop every pooled connection of this process (after a fork, between tests)."""
    for engine in (*_engines.values(), *_read_engines.values()):
        engine.dispose()
