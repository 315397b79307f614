"""Fingerprint messages that a webhook reported without an id, so a redelivery is stored once

Revision ID: 5b1e0c7d2a41
Revises: c9f9e8917bb3
Create Date: 2026-12-03 17:50:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "5b1e0c7d2a41"
down_revision = "c9f9e8917bb3"
branch_labels = None
depends_on = None


# A unique index rather than a constraint, and no batch mode: SQLite would rebuild the table, losing the
# full-text triggers on it (SQLite 3.35+ drops a column in place).
def upgrade():
    op.add_column("messages", sa.Column("fingerprint", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_messages_fingerprint"), "messages", ["fingerprint"], unique=True)


def downgrade():
    op.drop_index(op.f("ix_messages_fingerprint"), table_name="messages")
    op.drop_column("messages", "fingerprint")
