"""Searching every conversation's messages, with the database's own full-text engine."""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, or_, select, text

from app.extensions import db
from app.models import Conversation, Message, searchable_text

# Made by a migration, not by the models; autogenerate leaves them alone.
SEARCH_OBJECTS_PREFIX = ("message_search", "ix_messages_search")


def made_by_migrations_only(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic's include_object hook: False for the full-text objects the models do not describe."""
    return not (name or "").startswith(SEARCH_OBJECTS_PREFIX)


PAGE_SIZE = 50


@dataclass(frozen=True)
class SearchFilters:
    text: str = ""
    contact: str = ""
    agent_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    direction: str | None = None
    outcome: str | None = None
    paused_only: bool = False
    overrides_only: bool = False


@dataclass(frozen=True)
class SearchHit:
    message: Message
    previous: Message | None


def search_messages(filters: SearchFilters, *, before_id: int | None = None, limit: int = PAGE_SIZE) -> list[SearchHit]:
    """Matching messages, newest first, each with the message before it for context."""
    query = search_query(filters).order_by(Message.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(Message.id < before_id)
    return [SearchHit(message, previous_message(message)) for message in db.session.scalars(query)]


def iterate_matches(filters: SearchFilters) -> Iterator[Message]:
    """Every matching message, oldest first, fetched in batches (for CSV export)."""
    query = search_query(filters).order_by(Message.id).execution_options(yield_per=500)
    # Closed even when the download stops halfway (the client went away): a server-side cursor stays open else.
    with db.session.scalars(query) as matches:
        yield from matches


def search_query(filters: SearchFilters) -> Select:
    query = select(Message).join(Conversation, Message.conversation_id == Conversation.id)
    words = search_words(filters.text)
    if words:
        query = query.where(full_text_match(words))
    if filters.contact.strip():
        pattern = f"%{filters.contact.strip()}%"
        digits = "".join(ch for ch in filters.contact if ch.isdigit())
        matches = [Conversation.name.ilike(pattern)]
        if len(digits) >= 3:
            matches.append(Conversation.phone.like(f"%{digits}%"))
        query = query.where(or_(*matches))
    if filters.agent_id:
        query = query.where(Message.author_user_id == filters.agent_id)
    if filters.since:
        query = query.where(Message.occurred_at >= filters.since)
    if filters.until:
        query = query.where(Message.occurred_at < filters.until)
    if filters.direction:
        query = query.where(Message.direction == filters.direction)
    if filters.outcome:
        query = query.where(Message.outcome == filters.outcome)
    if filters.paused_only:
        query = query.where(Message.pause_assistant.is_(True))
    if filters.overrides_only:
        query = query.where(Message.window_override.is_(True))
    return query


def search_words(text: str) -> list[str]:
    """The words of a search, folded as the index folds them."""
    return re.findall(r"\w+", searchable_text(text))


def full_text_match(words: list[str]):
    """Every word must match, as a prefix ("cancio" finds "Canción"), through the dialect's own index."""
    if db.session.get_bind().dialect.name == "sqlite":
        expression = " ".join(f'"{word}"*' for word in words)
        return Message.id.in_(
            text("SELECT rowid FROM message_search WHERE message_search MATCH :expression").bindparams(
                expression=expression
            )
        )
    expression = " & ".join(f"{word}:*" for word in words)
    return func.to_tsvector("simple", Message.search_text).op("@@")(func.to_tsquery("simple", expression))


def previous_message(message: Message) -> Message | None:
    return db.session.scalar(
        select(Message)
        .where(Message.conversation_id == message.conversation_id, Message.occurred_at <= message.occurred_at)
        .where(Message.id != message.id)
        .order_by(Message.occurred_at.desc(), Message.id.desc())
        .limit(1)
    )
