"""Delivery reconciliation, missed webhooks, the health panel's counts, and the review queue

Revision ID: a7e3c5d9f102
Revises: d2a7c4e9b815
Create Date: 2026-12-04 03:00:00.000000

"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "a7e3c5d9f102"
down_revision = "d2a7c4e9b815"
branch_labels = None
depends_on = None

PENDING_REVIEW = sa.text("reviewed_at IS NULL")
FAILED_LATE = sa.text("failed_late_at IS NOT NULL")
MISSED = sa.text("missed_by_webhook")
# Every rule on: a lead switches off what the team does not want to review. (reason, setting)
DEFAULT_RULES = [
    ("window_closed_unanswered", None),
    ("override", None),
    ("failed_send", None),
    ("incident", None),
    ("long_wait", 30),  # minutes in the queue
    ("random", 5),  # percent of the conversations resolved
]


def upgrade():
    # Not in batch mode: rebuilding messages on SQLite would drop its full-text triggers.
    op.add_column(
        "messages", sa.Column("missed_by_webhook", sa.Boolean(), nullable=False, server_default=sa.text("false"))
    )
    op.add_column("messages", sa.Column("failed_late_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("messages", sa.Column("late_failure_seen_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_messages_failed_late",
        "messages",
        ["author_user_id", "failed_late_at"],
        postgresql_where=FAILED_LATE,
        sqlite_where=FAILED_LATE,
    )
    op.create_index(
        "ix_messages_missed_by_webhook", "messages", ["created_at"], postgresql_where=MISSED, sqlite_where=MISSED
    )
    op.add_column("sandbox_messages", sa.Column("failure", sa.Text(), nullable=True))
    op.create_table(
        "job_runs",
        sa.Column("job", sa.String(length=40), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("succeeded", sa.Boolean(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_job_runs")),
    )
    op.create_table(
        "vambe_call_counts",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("hour", name=op.f("pk_vambe_call_counts")),
    )
    rules = op.create_table(
        "review_rules",
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("setting", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["updated_by_id"], ["users.id"], name=op.f("fk_review_rules_updated_by_id_users")),
        sa.PrimaryKeyConstraint("reason", name=op.f("pk_review_rules")),
    )
    op.create_table(
        "review_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("sampled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewed_by_id", sa.Integer(), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"], ["conversations.id"], name=op.f("fk_review_items_conversation_id_conversations")
        ),
        sa.ForeignKeyConstraint(["agent_id"], ["users.id"], name=op.f("fk_review_items_agent_id_users")),
        sa.ForeignKeyConstraint(["reviewed_by_id"], ["users.id"], name=op.f("fk_review_items_reviewed_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_items")),
    )
    op.create_index(op.f("ix_review_items_conversation_id"), "review_items", ["conversation_id"])
    op.create_index(op.f("ix_review_items_sampled_at"), "review_items", ["sampled_at"])
    op.create_index("ix_review_items_reviewed", "review_items", ["agent_id", "reviewed_at"])
    op.create_index(
        "uq_review_items_one_pending",
        "review_items",
        ["conversation_id"],
        unique=True,
        postgresql_where=PENDING_REVIEW,
        sqlite_where=PENDING_REVIEW,
    )
    op.create_table(
        "review_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("review_item_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["review_item_id"], ["review_items.id"], name=op.f("fk_review_comments_review_item_id_review_items")
        ),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], name=op.f("fk_review_comments_message_id_messages")),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], name=op.f("fk_review_comments_author_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_comments")),
    )
    op.create_index(op.f("ix_review_comments_review_item_id"), "review_comments", ["review_item_id"])
    now = datetime.now(UTC)
    op.bulk_insert(
        rules,
        [
            {"reason": reason, "enabled": True, "setting": setting, "updated_at": now}
            for reason, setting in DEFAULT_RULES
        ],
    )


def downgrade():
    op.drop_table("review_comments")
    op.drop_table("review_items")
    op.drop_table("review_rules")
    op.drop_table("vambe_call_counts")
    op.drop_table("job_runs")
    op.drop_column("sandbox_messages", "failure")
    op.drop_index("ix_messages_missed_by_webhook", table_name="messages")
    op.drop_index("ix_messages_failed_late", table_name="messages")
    op.drop_column("messages", "late_failure_seen_at")
    op.drop_column("messages", "failed_late_at")
    op.drop_column("messages", "missed_by_webhook")
