"""Reading conversations for the console: the inbox, a thread, read markers."""

import base64
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ScalarSelect, and_, case, func, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from app.domain.handoffs import WAITING, unanswered_by_human
from app.domain.searching import full_text_match, search_words
from app.domain.window import WINDOW_LENGTH, WindowState, WindowStatus, window_condition, window_status
from app.extensions import db
from app.models import (
    MAX_RECORD_ID,
    AuditEvent,
    BusinessNumber,
    Conversation,
    ConversationStatus,
    ConversationView,
    Handoff,
    Message,
    User,
)

PAGE_SIZE = 25
THREAD_PAGE = 50
MAX_CURSOR_LENGTH = 200
SCOPES = ("all", "mine", "unassigned", "waiting")
WINDOW_FILTERS = tuple(state.value for state in WindowState)
SORTS = ("recent", "closing_soon")


class InvalidCursor(ValueError):
    """The paging cursor was not made by this app."""


@dataclass(frozen=True)
class InboxFilters:
    scope: str = "all"
    window: str | None = None
    paused_only: bool = False
    unanswered_only: bool = False  # the customer wrote last, as far as a person is concerned
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
    waiting: Handoff | None = None  # the conversation waits for a human


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
    seen_at = (
        select(ConversationView.seen_at)
        .where(ConversationView.user_id == viewer.id, ConversationView.conversation_id == Conversation.id)
        .scalar_subquery()
    )
    query = (
        select(Conversation, seen_at, latest_message_of(Conversation.id), Handoff)
        # At most one open handoff per conversation, so the join never repeats a row.
        .outerjoin(Handoff, and_(Handoff.conversation_id == Conversation.id, WAITING))
        .where(*conditions(viewer, filters, now, warning))
        .options(joinedload(Conversation.assignee))
    )
    ordering = ORDERINGS["waiting" if filters.scope == "waiting" else filters.sort](now)
    if cursor is not None:
        query = query.where(ordering.after(decode_cursor(cursor)))
    results = db.session.execute(query.order_by(*ordering.order).limit(limit + 1)).all()
    last_messages = messages_by_id(last_id for _, _, last_id, _ in results[:limit])
    rows = [
        InboxRow(
            conversation=conversation,
            window=window_status(conversation.last_inbound_at, now, warning),
            last_message=last_messages.get(last_id),
            unread=conversation.last_inbound_at is not None and (seen is None or conversation.last_inbound_at > seen),
            waiting=handoff,
        )
        for conversation, seen, last_id, handoff in results[:limit]
    ]
    next_cursor = encode_cursor(*ordering.key(rows[-1])) if len(results) > limit else None
    return InboxPage(rows, next_cursor, filters)


@dataclass(frozen=True)
class Ordering:
    """An inbox sort: its ORDER BY, the condition for the rows after a cursor's key, and a row's key."""

    order: list
    after: Callable[[list], Any]
    key: Callable[[InboxRow], tuple]


def by_activity(now: datetime) -> Ordering:
    """Latest activity first."""
    activity = func.coalesce(Conversation.last_message_at, Conversation.created_at)

    def after(values: list):
        moment, last_id = cursor_moment(values, 0), cursor_id(values, 1)
        return or_(activity < moment, and_(activity == moment, Conversation.id < last_id))

    return Ordering(
        order=[activity.desc(), Conversation.id.desc()],
        after=after,
        key=lambda row: (row.conversation.last_message_at or row.conversation.created_at, row.conversation.id),
    )


def by_window_closing(now: datetime) -> Ordering:
    """Open windows first, the soonest to close first; then closed ones, the most recently closed first; then
    conversations whose customer never wrote. Nothing is left out."""
    inbound, cutoff = Conversation.last_inbound_at, now - WINDOW_LENGTH
    bucket = case((inbound > cutoff, 0), (inbound.is_not(None), 1), else_=2)

    def after(values: list):
        group = values[0] if values and values[0] in (0, 1, 2) and not isinstance(values[0], bool) else None
        if group is None or len(values) != 3:
            raise InvalidCursor("not a closing-soon cursor")
        last_id = cursor_id(values, 2)
        if group == 2:
            within = Conversation.id > last_id
        else:
            moment = cursor_moment(values, 1)
            beyond = inbound > moment if group == 0 else inbound < moment
            within = or_(beyond, and_(inbound == moment, Conversation.id > last_id))
        return or_(bucket > group, and_(bucket == group, within))

    def key(row: InboxRow) -> tuple:
        last_inbound = row.conversation.last_inbound_at
        group = 2 if last_inbound is None else 0 if last_inbound > cutoff else 1
        return group, last_inbound, row.conversation.id

    return Ordering(
        order=[bucket, case((bucket == 0, inbound)).asc(), case((bucket == 1, inbound)).desc(), Conversation.id],
        after=after,
        key=key,
    )


def by_wait(now: datetime) -> Ordering:
    """Who has waited longest for a human first (the "Waiting for a human" view)."""

    def after(values: list):
        moment, last_id = cursor_moment(values, 0), cursor_id(values, 1)
        return or_(Handoff.requested_at > moment, and_(Handoff.requested_at == moment, Conversation.id > last_id))

    return Ordering(
        order=[Handoff.requested_at, Conversation.id],
        after=after,
        key=lambda row: (row.waiting.requested_at, row.conversation.id),
    )


ORDERINGS = {"recent": by_activity, "closing_soon": by_window_closing, "waiting": by_wait}


def conditions(viewer: User, filters: InboxFilters, now: datetime, warning: timedelta) -> list:
    found = [Conversation.status == filters.status]
    if filters.scope == "mine":
        found.append(Conversation.assignee_id == viewer.id)
    elif filters.scope == "unassigned":
        found.append(Conversation.assignee_id.is_(None))
    elif filters.scope == "waiting":
        found.append(Handoff.id.is_not(None))
    if filters.paused_only:
        found.append(Conversation.assistant_paused_at.is_not(None))
    if filters.unanswered_only:
        found.append(unanswered_by_human())
    if filters.window is not None:
        found.append(window_condition(filters.window, now, warning))
    if filters.query.strip():
        found.append(search_condition(filters.query.strip()))
    return found


def search_condition(text: str):
    """The customer's name or phone, or any message, through the same full-text index as the review search
    (accent-folded: "cancion" finds "Canción"); never a scan of every message."""
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    digits = "".join(ch for ch in text if ch.isdigit())
    matches = [Conversation.name.ilike(pattern, escape="\\")]
    if words := search_words(text):
        matches.append(Conversation.id.in_(select(Message.conversation_id).where(full_text_match(words))))
    if len(digits) >= 3:
        matches.append(Conversation.phone.like(f"%{digits}%"))
    return or_(*matches)


def encode_cursor(*values: datetime | int | None) -> str:
    """The key of the last row shown, for the next page's link."""
    raw = json.dumps([value.isoformat() if isinstance(value, datetime) else value for value in values]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> list:
    if len(cursor) > MAX_CURSOR_LENGTH:  # ours are under 80 characters; a longer one is not ours
        raise InvalidCursor("cursor too long")
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError, RecursionError) as error:
        raise InvalidCursor(str(error)) from None
    if not isinstance(values, list):
        raise InvalidCursor("not a list")
    return values


def cursor_moment(values: list, index: int) -> datetime:
    try:
        moment = datetime.fromisoformat(values[index])
    except (IndexError, TypeError, ValueError):
        raise InvalidCursor("no time where the cursor needs one") from None
    if moment.tzinfo is None:
        raise InvalidCursor("a time without its zone")
    return moment


def cursor_id(values: list, index: int) -> int:
    last_id = values[index] if index < len(values) else None
    if isinstance(last_id, bool) or not isinstance(last_id, int) or not 0 < last_id <= MAX_RECORD_ID:
        raise InvalidCursor("no conversation id where the cursor needs one")
    return last_id


def latest_message_of(conversation_id) -> ScalarSelect:
    """The id of a conversation's latest message, as a subquery the (conversation, occurred_at) index answers."""
    return (
        select(Message.id)
        .where(Message.conversation_id == conversation_id)
        .order_by(Message.occurred_at.desc(), Message.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def messages_by_id(ids: Iterable[int | None]) -> dict[int, Message]:
    """The messages with these ids (and their authors), in one query."""
    wanted = [message_id for message_id in ids if message_id is not None]
    if not wanted:
        return {}
    query = select(Message).where(Message.id.in_(wanted)).options(joinedload(Message.author_user))
    return {message.id: message for message in db.session.scalars(query)}


@dataclass(frozen=True)
class ThreadItem:
    """A message or an audit event, in the order they happened."""

    at: datetime
    message: Message | None = None
    event: AuditEvent | None = None


@dataclass(frozen=True)
class Thread:
    items: list[ThreadItem]
    earlier_from: int | None  # the message to show from to see THREAD_PAGE more earlier ones; None: none earlier


def thread(conversation: Conversation, *, from_id: int | None = None) -> Thread:
    """The conversation's newest THREAD_PAGE messages (or every one from message ``from_id`` on), interleaved
    with its audit events of that stretch. A long thread costs no more than a short one to open."""
    in_conversation = Message.conversation_id == conversation.id
    position = tuple_(Message.occurred_at, Message.id)
    start = db.session.get(Message, from_id) if from_id else None
    if start is not None and start.conversation_id == conversation.id:
        query = select(Message).where(in_conversation, position >= tuple_(start.occurred_at, start.id))
        messages = list(db.session.scalars(query.order_by(Message.occurred_at, Message.id)))
    else:
        newest = select(Message).where(in_conversation).order_by(Message.occurred_at.desc(), Message.id.desc())
        messages = list(reversed(db.session.scalars(newest.limit(THREAD_PAGE)).all()))
    earlier = []
    if messages:
        oldest = messages[0]
        earlier = db.session.scalars(
            select(Message.id)
            .where(in_conversation, position < tuple_(oldest.occurred_at, oldest.id))
            .order_by(Message.occurred_at.desc(), Message.id.desc())
            .limit(THREAD_PAGE)
        ).all()
    events = select(AuditEvent).where(AuditEvent.conversation_id == conversation.id)
    if earlier:
        events = events.where(AuditEvent.occurred_at >= messages[0].occurred_at)
    items = [ThreadItem(m.occurred_at, message=m) for m in messages]
    items += [ThreadItem(e.occurred_at, event=e) for e in db.session.scalars(events)]
    # An event about a message sits just after it.
    items.sort(key=lambda item: (item.at, item.event is not None, (item.message or item.event).id))
    return Thread(items, earlier[-1] if earlier else None)


def latest_message_id(conversation: Conversation) -> int | None:
    return db.session.scalar(select(func.max(Message.id)).where(Message.conversation_id == conversation.id))


def conversation_state(conversation: Conversation, viewer: User, *, now: datetime) -> tuple:
    """What the conversation's live part shows depends on, read with two indexed aggregates: while it is the
    same, a live update has nothing to send."""
    messages = db.session.execute(
        select(func.count(Message.id), func.max(Message.id), func.max(Message.updated_at)).where(
            Message.conversation_id == conversation.id
        )
    ).one()
    events = db.session.execute(
        select(func.count(AuditEvent.id), func.max(AuditEvent.id)).where(AuditEvent.conversation_id == conversation.id)
    ).one()
    return (
        conversation.status,
        conversation.assignee_id,
        conversation.assistant_paused_at,
        conversation.name,
        conversation.phone,
        conversation.last_inbound_at,
        conversation.business_number_id,
        tuple(messages),
        tuple(events),
        viewer.id,
        now.replace(second=0, microsecond=0),  # the window's countdown moves by the minute
    )


def inbox_state(viewer: User, *, now: datetime) -> tuple:
    """What any inbox page may show depends on: new messages, conversations and recorded decisions (assignment,
    status, pauses), the viewer's read markers, and the minute. Primary-key maxima: cheap at any size."""
    latest = db.session.execute(
        select(
            select(func.max(Message.id)).scalar_subquery(),
            select(func.max(AuditEvent.id)).scalar_subquery(),
            select(func.max(Conversation.id)).scalar_subquery(),
            select(func.max(ConversationView.seen_at)).where(ConversationView.user_id == viewer.id).scalar_subquery(),
        )
    ).one()
    return (*latest, viewer.id, now.replace(second=0, microsecond=0))


def mark_seen(conversation: Conversation, viewer: User, *, now: datetime) -> None:
    """Record that ``viewer`` has read the conversation up to ``now``; writes (and commits) only when the customer
    wrote since the viewer last looked, so a live update that finds nothing new writes nothing."""
    view = db.session.get(ConversationView, (viewer.id, conversation.id))
    if view is not None and (conversation.last_inbound_at is None or view.seen_at >= conversation.last_inbound_at):
        return
    if view is None:
        db.session.add(ConversationView(user_id=viewer.id, conversation_id=conversation.id, seen_at=now))
    elif view.seen_at < now:
        view.seen_at = now
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # the same viewer's other tab recorded it a moment earlier


def acknowledge_late_failures(shown: Thread, viewer: User, *, now: datetime) -> None:
    """The viewer has now seen, in the thread shown, their own sends that WhatsApp failed after Vambe accepted
    them: they leave the header's count. Writes (and commits) only when there are such messages."""
    unseen = [
        item.message.id
        for item in shown.items
        if item.message is not None
        and item.message.author_user_id == viewer.id
        and item.message.failed_late_at is not None
        and item.message.late_failure_seen_at is None
    ]
    if unseen:
        db.session.execute(update(Message).where(Message.id.in_(unseen)).values(late_failure_seen_at=now))
        db.session.commit()


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
