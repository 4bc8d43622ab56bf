"""legacy import records: sessions imported from the old service, automatic import runs

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 21:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "legacy_imports",
        sa.Column("legacy_id", sa.String(length=128), primary_key=True),
        sa.Column("session_id", sa.String(length=32), nullable=False, unique=True),
        sa.Column("company_id", sa.String(length=32), nullable=False),
        sa.Column("legacy_updated_at", sa.String(length=64), nullable=False),
        sa.Column("profile_digest", sa.String(length=64), nullable=True),
        sa.Column("imported_at", AT, nullable=False),
        sa.Column("session_updated_at", AT, nullable=False),
    )
    op.create_table(
        "legacy_import_runs",
        sa.Column("key", sa.String(length=80), primary_key=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_at", AT, nullable=True),
        sa.Column("finished_at", AT, nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("legacy_import_runs")
    op.drop_table("legacy_imports")
