"""Reading conversations for the console."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from app.domain.window import WindowStatus, window_status
from app.extensions import db
from app.models import BusinessNumber, Conversation, Message


@dataclass(frozen=True)
class ConversationSummary:
    conversation: Conversation
    window: WindowStatus


def list_conversations(now: datetime, warning: timedelta) -> list[ConversationSummary]:
    """Every conversation with its window, the most recently active first."""
    rows = db.session.scalars(
        select(Conversation).order_by(Conversation.last_message_at.desc().nulls_last(), Conversation.id.desc())
    )
    return [ConversationSummary(c, window_status(c.last_inbound_at, now, warning)) for c in rows]


def thread(conversation: Conversation) -> list[Message]:
    """The conversation's messages in the order they happened."""
    return list(
        db.session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation.id)
            .order_by(Message.occurred_at, Message.id)
        )
    )


def quotable_message(conversation: Conversation, message_id: int | None) -> Message | None:
    """The message to quote, when it belongs to ``conversation`` and has a provider id."""
    message = db.session.get(Message, message_id) if message_id else None
    if message is None or message.conversation_id != conversation.id or not message.can_be_quoted:
        return None
    return message


def business_numbers() -> list[BusinessNumber]:
    return list(db.session.scalars(select(BusinessNumber).order_by(BusinessNumber.id)))
