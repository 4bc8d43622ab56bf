"""The one error body of the API, in a module light enough for gunicorn's master to import."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


def error_body(code: int, message: str, errors: dict | None = None) -> dict[str, Any]:
    """The one error shape of the API (the same as flask-smorest's), also used by gunicorn."""
    body: dict[str, Any] = {"code": code, "status": HTTPStatus(code).phrase, "message": message}
    if errors:
        body["errors"] = errors
    return body
