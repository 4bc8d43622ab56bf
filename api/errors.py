"""JSON errors for everything: domain errors, database and broker outages, crashes.

Only a database that cannot be reached (connect, network, timeout, pool exhausted,
a dropped connection) is an outage, 503. A value the database refuses is the
client's error; any other database error is a bug, 500, never disguised as an outage.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from api.error_shape import error_body
from shared.errors import InvalidInput, ZapHubError

log = logging.getLogger(__name__)


def error_response(code: int, message: str, errors: dict | None = None):
    """A Flask response carrying :func:`error_body`."""
    return jsonify(error_body(code, message, errors)), code


def _database_unavailable():
    return error_response(503, "database is unavailable; nothing was changed, retry later")


def register_error_handlers(app: Flask) -> None:
    """Map domain errors and outages to JSON responses; never leak a traceback."""

    @app.errorhandler(ZapHubError)
    def handle_domain_error(exc: ZapHubError):
        errors = {exc.location: {exc.field: [exc.message]}} if isinstance(exc, InvalidInput) else None
        return error_response(exc.status_code, exc.message, errors)

    @app.errorhandler(IntegrityError)
    def handle_integrity_error(exc: IntegrityError):
        return error_response(409, "the change conflicts with existing data")

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeout)
    def handle_database_outage(exc: Exception):
        orig = getattr(exc, "orig", None)
        log.error("database unavailable: %s", type(orig).__name__ if orig else type(exc).__name__)
        return _database_unavailable()

    # sqlite3 refuses integers beyond 64 bits with a bare OverflowError, PostgreSQL
    # with a DataError: either way the request carried a value out of range.
    @app.errorhandler(DataError)
    @app.errorhandler(OverflowError)
    def handle_refused_value(exc: Exception):
        log.info("database refused a value: %s", exc)
        return error_response(422, "a value is out of range or not valid for the database")

    @app.errorhandler(DBAPIError)
    def handle_database_error(exc: DBAPIError):
        if exc.connection_invalidated:
            log.error("database connection lost: %s", type(exc.orig).__name__)
            return _database_unavailable()
        log.exception("database error")
        return error_response(500, "internal error")

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal error")
