"""add assignment, status, read markers and quick replies

Revision ID: 2918e23f9674
Revises: 93e687237683
Create Date: 2026-11-25 18:26:09.610576

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "2918e23f9674"
down_revision = "93e687237683"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "quick_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shortcut", sa.String(length=40), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], name=op.f("fk_quick_replies_created_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quick_replies")),
        sa.UniqueConstraint("shortcut", name=op.f("uq_quick_replies_shortcut")),
    )
    op.create_table(
        "conversation_views",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"], ["conversations.id"], name=op.f("fk_conversation_views_conversation_id_conversations")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_conversation_views_user_id_users")),
        sa.PrimaryKeyConstraint("user_id", "conversation_id", name=op.f("pk_conversation_views")),
    )
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assignee_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("status", sa.String(length=16), server_default="open", nullable=False))
        batch_op.create_index(batch_op.f("ix_conversations_assignee_id"), ["assignee_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_conversations_status"), ["status"], unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_conversations_assignee_id_users"), "users", ["assignee_id"], ["id"])


def downgrade():
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_conversations_assignee_id_users"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_conversations_status"))
        batch_op.drop_index(batch_op.f("ix_conversations_assignee_id"))
        batch_op.drop_column("status")
        batch_op.drop_column("assignee_id")

    op.drop_table("conversation_views")
    op.drop_table("quick_replies")
