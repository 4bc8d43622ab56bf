"""session configs: replace NaN and Infinity stored before strict JSON with null

Such values were accepted once and cannot be written back as standard JSON, which
the API now refuses to emit.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 18:05:00
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _finite(text: str) -> str | None:
    """``text`` with every non-finite number as null, or ``None`` when it had none."""
    replaced = []

    def as_null(_constant: str) -> None:
        replaced.append(_constant)
        return None

    def number(literal: str) -> float | None:
        value = float(literal)
        if value in (float("inf"), float("-inf")):
            replaced.append(literal)
            return None
        return value

    value = json.loads(text, parse_constant=as_null, parse_float=number)
    if not replaced:
        return None
    return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)


def upgrade() -> None:
    bind = op.get_bind()
    sessions = sa.table("whatsapp_sessions", sa.column("id", sa.String), sa.column("config", sa.Text))
    suspicious = sa.or_(
        sessions.c.config.like("%NaN%"), sessions.c.config.like("%Infinity%"), sessions.c.config.like("%e%")
    )
    for session_id, config in bind.execute(sa.select(sessions.c.id, sessions.c.config).where(suspicious)):
        try:
            cleaned = _finite(config or "{}")
        except ValueError:
            cleaned = "{}"
        if cleaned is not None:
            bind.execute(sessions.update().where(sessions.c.id == session_id).values(config=cleaned))


def downgrade() -> None:
    """Nothing to undo: the values removed were not valid JSON."""
