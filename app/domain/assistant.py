"""The AI assistant's state for a contact, as far as Handoff can know it.

Vambe pauses the assistant when a reply asks it to, but offers no call to resume it, and does not say who sent a
message. So Handoff knows when it paused the assistant and who did; and that the assistant (or another tool) is
writing again as soon as a message Handoff did not send goes out after that pause.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from app.extensions import db
from app.models import Author, Conversation, Direction, Message, User

NOT_HANDOFF = (Author.ASSISTANT, Author.OTHER_TOOL)


@dataclass(frozen=True)
class AssistantState:
    paused_at: datetime | None = None
    paused_by: User | None = None
    active_again_at: datetime | None = None  # the first message after the pause that Handoff did not send

    @property
    def paused(self) -> bool:
        return self.paused_at is not None and self.active_again_at is None


def assistant_state(conversation: Conversation) -> AssistantState:
    paused_at = conversation.assistant_paused_at
    if paused_at is None:
        return AssistantState()
    active_again_at = db.session.scalar(
        select(Message.occurred_at)
        .where(
            Message.conversation_id == conversation.id,
            Message.direction == Direction.OUTBOUND,
            Message.author.in_(NOT_HANDOFF),
            Message.occurred_at >= paused_at,
        )
        .order_by(Message.occurred_at)
        .limit(1)
    )
    return AssistantState(paused_at, conversation.assistant_paused_by, active_again_at)
