"""Extension objects and the per-app state handlers reach through ``current_app``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, g, has_request_context, request
from flask_smorest import Api

from shared.config import Settings
from shared.jobs import JobPublisher
from shared.uow import RequestUnitOfWork, UnitOfWork


class ZapHubApi(Api):
    """flask-smorest's Api whose errors always carry a human-readable ``message``."""

    def handle_http_exception(self, error):
        payload, code, headers = super().handle_http_exception(error)
        payload.setdefault("message", _summarise(payload.get("errors")) or error.description)
        return payload, code, headers


def _summarise(errors: Any) -> str | None:
    # {"json": {"name": ["..."]}} -> "json.name: ..." so the field is named in one line.
    if not isinstance(errors, dict):
        return None
    parts = []
    for location, fields in errors.items():
        if isinstance(fields, dict):
            parts += [
                f"{field}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
                for field, msgs in fields.items()
            ]
        else:
            parts.append(f"{location}: {' '.join(map(str, fields))}")
    return "invalid input: " + "; ".join(parts) if parts else None


smorest_api = ZapHubApi()


@dataclass
class ZapHubState:
    """What the handlers of one app need: settings, the job publisher, a broker probe."""

    settings: Settings
    publisher: JobPublisher
    broker_ping: Callable[[], None]


def state() -> ZapHubState:
    """The ZapHub state of the current app."""
    return current_app.extensions["zaphub"]


def unit_of_work() -> UnitOfWork:
    """The current request's unit of work (one per request), or a fresh one outside a request."""
    if not has_request_context():
        return UnitOfWork(state().settings)
    uow = g.get("unit_of_work")
    if uow is None:
        uow = g.unit_of_work = RequestUnitOfWork(state().settings, read_only=_handler_reads_only())
    return uow


def read_only(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a handler that only reads: its request's unit of work runs in autocommit mode.

    Put it right above the ``def``: the decorators above it copy the mark onto their wrappers.
    """
    view._zaphub_read_only = True  # type: ignore[attr-defined]
    return view


def _handler_reads_only() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    view_class = getattr(view, "view_class", None)
    if view_class is not None:  # a MethodView: the method serving this request
        view = getattr(view_class, request.method.lower(), None)
    return bool(getattr(view, "_zaphub_read_only", False))


def register_request_unit_of_work(app: Flask) -> None:
    """Close each request's unit of work when the request ends (rolling back anything uncommitted).

    Call it after :func:`api.deadlines.register_request_deadline`: teardown functions run
    in reverse order, so the closing rollback still draws on the request's budget.
    """

    @app.teardown_request
    def close_unit_of_work(_exc: BaseException | None) -> None:
        uow = g.pop("unit_of_work", None)
        if uow is not None:
            uow.close()


def publisher() -> JobPublisher:
    """The current app's job publisher."""
    return state().publisher
