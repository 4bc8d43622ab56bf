"""messages both ways: WhatsApp ids, chats, acks with history, replies, sends; contact push names

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 18:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NEW_MESSAGE_COLUMNS = [
    sa.Column("wa_key_id", sa.String(length=64), nullable=True),
    sa.Column("chat_id", sa.String(length=128), nullable=True),
    sa.Column("sender", sa.String(length=128), nullable=True),
    sa.Column("recipient", sa.String(length=128), nullable=True),
    sa.Column("wa_timestamp", sa.DateTime(timezone=True), nullable=True),
    sa.Column("type", sa.String(length=32), server_default="chat", nullable=False),
    sa.Column("ack", sa.String(length=8), server_default="PENDING", nullable=False),
    sa.Column("ack_history", sa.Text(), server_default="[]", nullable=False),
    sa.Column("reply_to_id", sa.String(length=32), nullable=True),
    sa.Column("quoted_wa_id", sa.String(length=128), nullable=True),
    sa.Column("idempotency_key", sa.String(length=128), nullable=True),
    sa.Column("send_state", sa.String(length=8), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("job_id", sa.String(length=32), nullable=True),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
]


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("push_name", sa.String(length=128), nullable=True))
    with op.batch_alter_table("messages") as batch:
        for column in NEW_MESSAGE_COLUMNS:
            batch.add_column(column)
    # Rows stored before this revision (there should be none) get a time of change.
    messages = sa.table("messages", sa.column("created_at"), sa.column("updated_at"))
    op.execute(messages.update().values(updated_at=messages.c.created_at))
    with op.batch_alter_table("messages") as batch:
        batch.alter_column("updated_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch.create_unique_constraint("uq_messages_session_wa_id", ["session_id", "wa_message_id"])
        batch.create_unique_constraint("uq_messages_session_idempotency", ["session_id", "idempotency_key"])
        batch.create_index("ix_messages_session_chat_created", ["session_id", "chat_id", "created_at"])
        batch.create_index("ix_messages_session_send_state", ["session_id", "send_state", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_index("ix_messages_session_send_state")
        batch.drop_index("ix_messages_session_chat_created")
        batch.drop_constraint("uq_messages_session_idempotency", type_="unique")
        batch.drop_constraint("uq_messages_session_wa_id", type_="unique")
        for column in reversed(NEW_MESSAGE_COLUMNS):
            batch.drop_column(column.name)
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("push_name")
