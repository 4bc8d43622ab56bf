"""Bearer-token authentication and role checks.

Every request to a protected blueprint is authenticated before the handler runs;
the principal (user, company, role) is kept on ``flask.g``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import g, request
from flask_smorest import abort

from api.extensions import unit_of_work
from shared.services.accounts import Principal, authenticate


def authenticate_request() -> None:
    """``before_request`` hook: 401 unless a valid bearer token is given."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        abort(
            401,
            message="missing bearer token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = authenticate(unit_of_work(), token.strip())
    if principal is None:
        abort(401, message="invalid or revoked token", headers={"WWW-Authenticate": "Bearer"})
    g.principal = principal


def current_principal() -> Principal:
    """The authenticated caller of this request."""
    return g.principal


def company_id() -> str:
    """The caller's company: every query of a handler is scoped to it."""
    return current_principal().company_id


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Only ``admin`` users may call ``view``; ``agent`` users get 403."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_principal().is_admin:
            abort(403, message="this operation needs the admin role")
        return view(*args, **kwargs)

    return wrapper
