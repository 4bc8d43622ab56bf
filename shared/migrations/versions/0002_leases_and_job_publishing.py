"""worker lease tokens, job publishing bookkeeping, scheduled job flags

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 17:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("lease_token", sa.String(length=32), nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("published_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("publish_count", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("scheduled", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("noop", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.create_index("ix_jobs_status_published", ["status", "published_at"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_status_published")
        batch.drop_column("noop")
        batch.drop_column("scheduled")
        batch.drop_column("publish_count")
        batch.drop_column("published_at")
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("lease_token")
