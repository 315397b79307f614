"""Approved WhatsApp templates, and which template a message was sent as

Revision ID: d2a7c4e9b815
Revises: b4d8e6f1a2c7
Create Date: 2026-12-04 00:15:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "d2a7c4e9b815"
down_revision = "b4d8e6f1a2c7"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "message_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vambe_template_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("business_number_id", sa.Integer(), nullable=True),
        sa.Column("header", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("footer", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_number_id"],
            ["business_numbers.id"],
            name=op.f("fk_message_templates_business_number_id_business_numbers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_templates")),
        sa.UniqueConstraint("vambe_template_id", name=op.f("uq_message_templates_vambe_template_id")),
    )
    # Not in batch mode: rebuilding messages on SQLite would drop its full-text triggers.
    op.add_column("messages", sa.Column("template_name", sa.String(length=120), nullable=True))


def downgrade():
    op.drop_column("messages", "template_name")
    op.drop_table("message_templates")
