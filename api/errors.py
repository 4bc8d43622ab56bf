"""JSON errors for everything: domain errors, database and broker outages, crashes."""

from __future__ import annotations

import logging
from http import HTTPStatus

from flask import Flask, jsonify
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from shared.errors import InvalidInput, ZapHubError

log = logging.getLogger(__name__)


def error_response(code: int, message: str, errors: dict | None = None):
    """The one error shape of the API (the same as flask-smorest's)."""
    body = {"code": code, "status": HTTPStatus(code).phrase, "message": message}
    if errors:
        body["errors"] = errors
    return jsonify(body), code


def register_error_handlers(app: Flask) -> None:
    """Map domain errors and outages to JSON responses; never leak a traceback."""

    @app.errorhandler(ZapHubError)
    def handle_domain_error(exc: ZapHubError):
        errors = {"json": {exc.field: [exc.message]}} if isinstance(exc, InvalidInput) else None
        return error_response(exc.status_code, exc.message, errors)

    @app.errorhandler(IntegrityError)
    def handle_integrity_error(exc: IntegrityError):
        return error_response(409, "the change conflicts with existing data")

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def handle_database_error(exc: DBAPIError):
        log.error("database unavailable: %s", type(exc.orig).__name__ if exc.orig else exc)
        return error_response(503, "database is unavailable; nothing was changed, retry later")

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal error")
