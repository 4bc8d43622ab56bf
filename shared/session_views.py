"""Read-only views of session rows: what the API's session reads answer, without ORM objects.

Loading a :class:`~shared.models.WhatsappSession` costs an identity-map entry, attribute
instrumentation and change tracking per row, none of which a read that only dumps the
rows needs; for a page of 100 sessions that was most of the request. These reads select
just the columns the answer shows (two of them computed in SQL: whether a QR code and a
login state are stored, so neither text nor blob is fetched) as plain rows, and wrap each
in a :class:`SessionView` that reads like the model for the response schema.

The statements are built once, with bound parameters, and run on the session's
connection: building a ``select`` and its cache key and going through the ORM's execute
path cost more than the database's answer for one row.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from shared.models import WhatsappSession

_table = WhatsappSession.__table__.c

# The columns of a view, in the order of SessionView.__init__'s parameters.
VIEW_COLUMNS: tuple[ColumnElement[Any], ...] = (
    _table.id,
    _table.name,
    _table.status,
    _table.is_active,
    _table.phone_number,
    _table.push_name,
    _table.last_seen,
    _table.last_error,
    _table.config,
    _table.worker_id,
    _table.epoch,
    (func.coalesce(func.length(_table.qr_code), 0) > 0).label("has_qr_code"),
    _table.auth_state_updated_at.is_not(None).label("has_login_state"),
    _table.created_at,
    _table.updated_at,
)


class SessionView:
    """One session as the API shows it; the attributes the session schema reads, and nothing to load."""

    __slots__ = (
        "id",
        "name",
        "status",
        "is_active",
        "phone_number",
        "push_name",
        "last_seen",
        "last_error",
        "config",
        "worker_id",
        "epoch",
        "has_qr_code",
        "has_auth_state",
        "created_at",
        "updated_at",
    )

    def __init__(
        self,
        id: str,  # noqa: A002 - the column's name
        name: str,
        status: str,
        is_active: bool,
        phone_number: str | None,
        push_name: str | None,
        last_seen: datetime | None,
        last_error: str | None,
        config: str,
        worker_id: str | None,
        epoch: int,
        has_qr_code: Any,
        has_auth_state: Any,
        created_at: datetime,
        updated_at: datetime,
    ) -> None:
        self.id, self.name, self.status, self.is_active = id, name, status, is_active
        self.phone_number, self.push_name, self.last_seen = phone_number, push_name, last_seen
        self.last_error, self.config, self.worker_id, self.epoch = last_error, config, worker_id, epoch
        # SQLite answers a comparison with 0/1: the answer shows booleans.
        self.has_qr_code, self.has_auth_state = bool(has_qr_code), bool(has_auth_state)
        self.created_at, self.updated_at = created_at, updated_at

    # The model's own decoding of the configuration text.
    config_dict = WhatsappSession.config_dict


@cache
def _one_statement() -> Select[Any]:
    return select(*VIEW_COLUMNS).where(
        _table.company_id == bindparam("company_id"), _table.name == bindparam("name")
    )


def find_view(connection: Connection, company_id: str, name: str) -> SessionView | None:
    """The view of session ``name`` of ``company_id``, or ``None``."""
    row = connection.execute(_one_statement(), {"company_id": company_id, "name": name}).first()
    return None if row is None else SessionView(*row)


@cache
def _page_statement(by_status: bool, by_active: bool) -> Select[Any]:
    conditions = [_table.company_id == bindparam("company_id")]
    if by_status:
        conditions.append(_table.status == bindparam("status"))
    if by_active:
        conditions.append(_table.is_active == bindparam("is_active"))
    # The total rides on the page's rows (a window count): one round trip, not two.
    return (
        select(*VIEW_COLUMNS, func.count().over())
        .where(*conditions)
        .order_by(_table.created_at.desc(), _table.id)
        .offset(bindparam("offset"))
        .limit(bindparam("limit"))
    )


def page_views(
    connection: Connection,
    company_id: str,
    *,
    status: str | None,
    is_active: bool | None,
    offset: int,
    limit: int,
) -> tuple[list[SessionView], int | None]:
    """A page of the company's session views (newest first) and the total, ``None`` if the page is empty."""
    params: dict[str, Any] = {"company_id": company_id, "offset": offset, "limit": limit}
    if status is not None:
        params["status"] = status
    if is_active is not None:
        params["is_active"] = is_active
    rows = connection.execute(_page_statement(status is not None, is_active is not None), params).all()
    if not rows:
        return [], None
    return [SessionView(*row[:-1]) for row in rows], rows[0][-1]
