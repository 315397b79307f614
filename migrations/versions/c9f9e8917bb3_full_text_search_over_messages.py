"""full text search over messages

Revision ID: c9f9e8917bb3
Revises: f0caf9a10497
Create Date: 2026-11-25 19:07:17.822447

Each dialect indexes messages.search_text (the body folded to lower case without accents) with its own
engine: an FTS5 table kept in step by triggers on SQLite, a GIN index on PostgreSQL. Autogenerate
ignores both (see migrations/env.py). NOTE: a later batch migration that rebuilds `messages` on
SQLite drops the triggers and must create them again.
"""

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "c9f9e8917bb3"
down_revision = "f0caf9a10497"
branch_labels = None
depends_on = None

SQLITE_UP = [
    "CREATE VIRTUAL TABLE message_search USING fts5(search_text, content='messages', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER message_search_insert AFTER INSERT ON messages BEGIN "
    "INSERT INTO message_search(rowid, search_text) VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER message_search_delete AFTER DELETE ON messages BEGIN "
    "INSERT INTO message_search(message_search, rowid, search_text) VALUES ('delete', old.id, old.search_text); END",
    "CREATE TRIGGER message_search_update AFTER UPDATE OF search_text ON messages BEGIN "
    "INSERT INTO message_search(message_search, rowid, search_text) VALUES ('delete', old.id, old.search_text); "
    "INSERT INTO message_search(rowid, search_text) VALUES (new.id, new.search_text); END",
    "INSERT INTO message_search(message_search) VALUES ('rebuild')",
]
SQLITE_DOWN = [
    "DROP TRIGGER message_search_update",
    "DROP TRIGGER message_search_delete",
    "DROP TRIGGER message_search_insert",
    "DROP TABLE message_search",
]


def fold(text):
    """Kept here, not imported, so that this migration never changes behaviour with the app."""
    decomposed = unicodedata.normalize("NFKD", (text or "").casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def upgrade():
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("search_text", sa.Text(), nullable=False, server_default=""))
    connection = op.get_bind()
    messages = sa.table(
        "messages", sa.column("id", sa.Integer), sa.column("body", sa.Text), sa.column("search_text", sa.Text)
    )
    for message_id, body in connection.execute(sa.select(messages.c.id, messages.c.body)).all():
        connection.execute(sa.update(messages).where(messages.c.id == message_id).values(search_text=fold(body)))
    if connection.dialect.name == "sqlite":
        for statement in SQLITE_UP:
            op.execute(statement)
    else:
        op.execute("CREATE INDEX ix_messages_search ON messages USING gin (to_tsvector('simple', search_text))")


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_DOWN:
            op.execute(statement)
    else:
        op.execute("DROP INDEX ix_messages_search")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("search_text")
