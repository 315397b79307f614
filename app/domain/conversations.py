"""Reading conversations for the console: the inbox, a thread, read markers."""

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.exc import IntegrityError

from app.domain.window import WINDOW_LENGTH, WindowState, WindowStatus, window_status
from app.extensions import db
from app.models import (
    MAX_RECORD_ID,
    AuditEvent,
    BusinessNumber,
    Conversation,
    ConversationStatus,
    ConversationView,
    Message,
    User,
)

PAGE_SIZE = 25
MAX_CURSOR_LENGTH = 200
SCOPES = ("all", "mine", "unassigned")
WINDOW_FILTERS = tuple(state.value for state in WindowState)
SORTS = ("recent", "closing_soon")


class InvalidCursor(ValueError):
    """The paging cursor was not made by this app."""


@dataclass(frozen=True)
class InboxFilters:
    scope: str = "all"
    window: str | None = None
    paused_only: bool = False
    status: str = ConversationStatus.OPEN
    query: str = ""
    sort: str = "recent"

    def __post_init__(self):
        if self.scope not in SCOPES or self.sort not in SORTS:
            raise ValueError("unknown scope or sort")
        if self.window is not None and self.window not in WINDOW_FILTERS:
            raise ValueError("unknown window filter")
        if self.status not in tuple(ConversationStatus):
            raise ValueError("unknown status")


@dataclass(frozen=True)
class InboxRow:
    conversation: Conversation
    window: WindowStatus
    last_message: Message | None
    unread: bool


@dataclass(frozen=True)
class InboxPage:
    rows: list[InboxRow]
    next_cursor: str | None
    filters: InboxFilters = field(default_factory=InboxFilters)


def inbox_page(
    viewer: User,
    filters: InboxFilters,
    *,
    cursor: str | None,
    now: datetime,
    warning: timedelta,
    limit: int = PAGE_SIZE,
) -> InboxPage:
    """One page of the inbox as ``viewer`` filtered it, paged by key so new arrivals never shift a page."""
    activity = func.coalesce(Conversation.last_message_at, Conversation.created_at)
    seen_at = (
        select(ConversationView.seen_at)
        .where(ConversationView.user_id == viewer.id, ConversationView.conversation_id == Conversation.id)
        .scalar_subquery()
    )
    query = select(Conversation, seen_at).where(*conditions(viewer, filters, now, warning))
    if filters.sort == "closing_soon":
        query = query.where(Conversation.last_inbound_at > now - WINDOW_LENGTH)
        key_columns, descending = (Conversation.last_inbound_at, Conversation.id), False
    else:
        key_columns, descending = (activity, Conversation.id), True
    if cursor is not None:
        query = query.where(after_cursor(key_columns, decode_cursor(cursor), descending))
    order = [column.desc() if descending else column.asc() for column in key_columns]
    results = db.session.execute(query.order_by(*order).limit(limit + 1)).all()
    rows = [
        InboxRow(
            conversation=conversation,
            window=window_status(conversation.last_inbound_at, now, warning),
            last_message=last_message(conversation),
            unread=conversation.last_inbound_at is not None and (seen is None or conversation.last_inbound_at > seen),
        )
        for conversation, seen in results[:limit]
    ]
    next_cursor = None
    if len(results) > limit:
        last = rows[-1].conversation
        sort_value = (
            last.last_inbound_at if filters.sort == "closing_soon" else (last.last_message_at or last.created_at)
        )
        next_cursor = encode_cursor(sort_value, last.id)
    return InboxPage(rows, next_cursor, filters)


def conditions(viewer: User, filters: InboxFilters, now: datetime, warning: timedelta) -> list:
    found = [Conversation.status == filters.status]
    if filters.scope == "mine":
        found.append(Conversation.assignee_id == viewer.id)
    elif filters.scope == "unassigned":
        found.append(Conversation.assignee_id.is_(None))
    if filters.paused_only:
        found.append(Conversation.assistant_paused_at.is_not(None))
    if filters.window is not None:
        found.append(window_condition(filters.window, now, warning))
    if filters.query.strip():
        found.append(search_condition(filters.query.strip()))
    return found


def window_condition(state: str, now: datetime, warning: timedelta):
    """The SQL twin of window_status(): which last-inbound times put a conversation in ``state``."""
    expired_before = now - WINDOW_LENGTH
    closing_before = expired_before + warning
    inbound = Conversation.last_inbound_at
    return {
        WindowState.OPEN: inbound >= closing_before,
        WindowState.CLOSING: and_(inbound > expired_before, inbound < closing_before),
        WindowState.CLOSED: inbound <= expired_before,
        WindowState.UNKNOWN: inbound.is_(None),
    }[WindowState(state)]


def search_condition(text: str):
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    digits = "".join(ch for ch in text if ch.isdigit())
    matches = [
        Conversation.name.ilike(pattern, escape="\\"),
        exists().where(Message.conversation_id == Conversation.id, Message.body.ilike(pattern, escape="\\")),
    ]
    if len(digits) >= 3:
        matches.append(Conversation.phone.like(f"%{digits}%"))
    return or_(*matches)


def after_cursor(key_columns: tuple, values: tuple, descending: bool):
    (sort_column, id_column), (sort_value, last_id) = key_columns, values
    if descending:
        return or_(sort_column < sort_value, and_(sort_column == sort_value, id_column < last_id))
    return or_(sort_column > sort_value, and_(sort_column == sort_value, id_column > last_id))


def encode_cursor(sort_value: datetime, conversation_id: int) -> str:
    raw = json.dumps([sort_value.isoformat(), conversation_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    if len(cursor) > MAX_CURSOR_LENGTH:  # ours are under 80 characters; a longer one is not ours
        raise InvalidCursor("cursor too long")
    try:
        moment, conversation_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        moment, conversation_id = datetime.fromisoformat(moment), int(conversation_id)
    except (ValueError, TypeError, RecursionError) as error:
        raise InvalidCursor(str(error)) from None
    if moment.tzinfo is None or not 0 < conversation_id <= MAX_RECORD_ID:
        raise InvalidCursor("cursor out of range")
    return moment, conversation_id


def last_message(conversation: Conversation) -> Message | None:
    return db.session.scalar(
        select(Message)
        .where(Message.conversation_id == conversation.id)
        .order_by(Message.occurred_at.desc(), Message.id.desc())
        .limit(1)
    )


@dataclass(frozen=True)
class ThreadItem:
    """A message or an audit event, in the order they happened."""

    at: datetime
    message: Message | None = None
    event: AuditEvent | None = None


def thread(conversation: Conversation) -> list[ThreadItem]:
    """The conversation's messages interleaved with its audit events."""
    messages = db.session.scalars(select(Message).where(Message.conversation_id == conversation.id))
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.conversation_id == conversation.id))
    items = [ThreadItem(m.occurred_at, message=m) for m in messages]
    items += [ThreadItem(e.occurred_at, event=e) for e in events]
    # An event about a message sits just after it.
    return sorted(items, key=lambda item: (item.at, item.event is not None, (item.message or item.event).id))


def latest_message_id(conversation: Conversation) -> int | None:
    return db.session.scalar(select(func.max(Message.id)).where(Message.conversation_id == conversation.id))


def mark_seen(conversation: Conversation, viewer: User, *, now: datetime) -> None:
    """Record that ``viewer`` has read the conversation up to ``now``; commits."""
    view = db.session.get(ConversationView, (viewer.id, conversation.id))
    if view is None:
        db.session.add(ConversationView(user_id=viewer.id, conversation_id=conversation.id, seen_at=now))
    elif view.seen_at < now:
        view.seen_at = now
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # the same viewer's other tab recorded it a moment earlier


def quotable_message(conversation: Conversation, message_id: int | None) -> Message | None:
    """The message to quote, when it belongs to ``conversation`` and has a provider id."""
    message = db.session.get(Message, message_id) if message_id else None
    if message is None or message.conversation_id != conversation.id or not message.can_be_quoted:
        return None
    return message


def business_numbers() -> list[BusinessNumber]:
    return list(db.session.scalars(select(BusinessNumber).order_by(BusinessNumber.id)))


def active_users() -> list[User]:
    return list(db.session.scalars(select(User).where(User.active.is_(True)).order_by(User.name)))
