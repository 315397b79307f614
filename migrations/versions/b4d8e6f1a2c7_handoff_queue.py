"""The handoff queue: handoffs, the phrases that ask for a person, the last human reply, the sandbox's chat status

Revision ID: b4d8e6f1a2c7
Revises: 9e4f2b7c1d35
Create Date: 2026-12-03 23:45:00.000000

"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "b4d8e6f1a2c7"
down_revision = "9e4f2b7c1d35"
branch_labels = None
depends_on = None

OPEN_HANDOFF = sa.text("ended_at IS NULL")
# What customers write when they want a person; admins edit the list (Admin → Handoff phrases).
DEFAULT_PHRASES = {
    "es": [
        "hablar con una persona",
        "hablar con un humano",
        "hablar con un agente",
        "hablar con un asesor",
        "hablar con alguien",
        "quiero un humano",
        "una persona real",
    ],
    "pt": [
        "falar com um atendente",
        "falar com uma pessoa",
        "falar com um humano",
        "falar com alguem",
        "atendente humano",
        "pessoa de verdade",
    ],
    "en": [
        "human please",
        "talk to a human",
        "speak to a human",
        "talk to a person",
        "speak to a person",
        "talk to an agent",
        "speak to an agent",
        "real person",
    ],
}


def upgrade():
    op.add_column("conversations", sa.Column("last_human_reply_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "sandbox_contacts",
        sa.Column("chat_status", sa.String(length=16), nullable=False, server_default="ai-attended"),
    )
    op.create_table(
        "handoffs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("taken_by_id", sa.Integer(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_by_id", sa.Integer(), nullable=True),
        sa.Column("answer_message_id", sa.Integer(), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"], ["conversations.id"], name=op.f("fk_handoffs_conversation_id_conversations")
        ),
        sa.ForeignKeyConstraint(["taken_by_id"], ["users.id"], name=op.f("fk_handoffs_taken_by_id_users")),
        sa.ForeignKeyConstraint(["answered_by_id"], ["users.id"], name=op.f("fk_handoffs_answered_by_id_users")),
        sa.ForeignKeyConstraint(
            ["answer_message_id"], ["messages.id"], name=op.f("fk_handoffs_answer_message_id_messages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoffs")),
    )
    op.create_index(op.f("ix_handoffs_conversation_id"), "handoffs", ["conversation_id"])
    op.create_index("ix_handoffs_requested_at", "handoffs", ["requested_at"])
    op.create_index("ix_handoffs_answered_at", "handoffs", ["answered_at"])
    op.create_index(
        "uq_handoffs_one_open",
        "handoffs",
        ["conversation_id"],
        unique=True,
        postgresql_where=OPEN_HANDOFF,
        sqlite_where=OPEN_HANDOFF,
    )
    phrases = op.create_table(
        "handoff_phrases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("phrase", sa.String(length=200), nullable=False),
        sa.Column("folded", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], name=op.f("fk_handoff_phrases_created_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoff_phrases")),
    )
    op.create_index("uq_handoff_phrases_language_folded", "handoff_phrases", ["language", "folded"], unique=True)
    now = datetime.now(UTC)
    op.bulk_insert(
        phrases,
        [
            {"language": language, "phrase": phrase, "folded": phrase, "created_at": now}
            for language, words in DEFAULT_PHRASES.items()
            for phrase in words
        ],
    )


def downgrade():
    op.drop_table("handoff_phrases")
    op.drop_table("handoffs")
    op.drop_column("sandbox_contacts", "chat_status")
    op.drop_column("conversations", "last_human_reply_at")
