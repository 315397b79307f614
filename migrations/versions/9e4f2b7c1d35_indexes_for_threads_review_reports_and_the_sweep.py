"""Indexes for threads, review search, reports and the stuck-send sweep

Revision ID: 9e4f2b7c1d35
Revises: 7c3d9a1e5f20
Create Date: 2026-12-03 18:50:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "9e4f2b7c1d35"
down_revision = "7c3d9a1e5f20"
branch_labels = None
depends_on = None

STILL_SENDING = sa.text("outcome = 'sending'")


def upgrade():
    op.create_index("ix_messages_conversation_id_id", "messages", ["conversation_id", "id"])
    op.create_index("ix_messages_author_user_occurred", "messages", ["author_user_id", "occurred_at"])
    op.create_index("ix_messages_occurred_at", "messages", ["occurred_at"])
    op.create_index(
        "ix_messages_still_sending",
        "messages",
        ["updated_at"],
        postgresql_where=STILL_SENDING,
        sqlite_where=STILL_SENDING,
    )


def downgrade():
    for name in (
        "ix_messages_still_sending",
        "ix_messages_occurred_at",
        "ix_messages_author_user_occurred",
        "ix_messages_conversation_id_id",
    ):
        op.drop_index(name, table_name="messages")
