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


def upgrade():
    with op.batch_alter_table("messages") as batch_op:
        batch_op.add_column(sa.Column("fingerprint", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_messages_fingerprint"), ["fingerprint"])


def downgrade():
    with op.batch_alter_table("messages") as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_messages_fingerprint"), type_="unique")
        batch_op.drop_column("fingerprint")
