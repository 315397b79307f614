"""Recording messages that happened in WhatsApp, idempotently by provider message id."""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm.attributes import set_committed_value

from app.domain.handoffs import notice_customer_message
from app.extensions import db
from app.i18n import N_
from app.models import (
    AuditEvent,
    AuditKind,
    Author,
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    Outcome,
    searchable_text,
)
from app.phones import InvalidPhoneNumber, to_e164
from app.vambe import aware_time

log = logging.getLogger(__name__)

# Copies of one message reported with different ids (webhook vs history) lie this close in time.
MATCH_TOLERANCE = timedelta(minutes=2)
# No WhatsApp message is older than this; an earlier time is a broken clock or a hostile payload.
EARLIEST_YEAR = 2009
# How far outcomes have progressed; a report never moves a message backwards.
OUTCOME_PROGRESS = {
    Outcome.SENDING: 0,
    Outcome.UNKNOWN: 0,
    Outcome.SENT: 1,
    Outcome.DELIVERED: 2,
    Outcome.READ: 3,
}


@dataclass(frozen=True)
class ContactRef:
    """How Vambe identifies a contact: its id when known, its phone otherwise."""

    vambe_contact_id: str | None = None
    phone: str | None = None
    name: str = ""


@dataclass(frozen=True)
class ObservedMessage:
    """A message as Vambe reported it."""

    direction: Direction
    author: Author
    body: str
    occurred_at: datetime
    provider_message_id: str | None = None
    outcome: Outcome = Outcome.RECEIVED
    # For a message Vambe reported without an id: what tells a redelivery of the same report from a new message.
    fingerprint: str | None = None


@dataclass(frozen=True)
class IngestResult:
    message: Message
    created: bool


def ingest_message(contact: ContactRef, observed: ObservedMessage, *, now: datetime) -> IngestResult:
    """Store ``observed`` once (a known provider id or fingerprint is never stored twice) and move the window.

    A message cannot have happened after Handoff learnt of it (``now``): a time ahead of that, a sender's clock
    running fast, is taken as ``now``, so it neither stretches the 24h window nor sorts after later messages.
    """
    occurred_at = min(observed.occurred_at, now)
    conversation = find_or_create_conversation(contact, now=now)
    values = {
        "conversation_id": conversation.id,
        "direction": observed.direction,
        "author": observed.author,
        "body": observed.body,
        "search_text": searchable_text(observed.body),
        "provider_message_id": observed.provider_message_id,
        "fingerprint": observed.fingerprint,
        "outcome": observed.outcome,
        "window_override": False,
        "occurred_at": occurred_at,
        "created_at": now,
        "updated_at": now,
    }
    identity = next((name for name in ("provider_message_id", "fingerprint") if values[name] is not None), None)
    if identity is None:
        message = Message(**values)
        db.session.add(message)
        db.session.flush()
        created = True
    else:
        created = insert_ignoring_conflict(Message, values, identity)
        message = db.session.scalar(select(Message).where(getattr(Message, identity) == values[identity]))
        if message.conversation_id == conversation.id:
            set_committed_value(message, "conversation", conversation)  # known already: no lazy load later
    if created:
        advance_conversation(conversation.id, observed.direction, occurred_at)
        if observed.direction == Direction.INBOUND:
            reopen_for_customer(conversation, now)
            notice_customer_message(message, now=now)
    return IngestResult(message, created)


def reopen_for_customer(conversation: Conversation, now: datetime) -> None:
    """A customer writing again reopens a resolved conversation."""
    reopened = db.session.execute(
        update(Conversation)
        .where(Conversation.id == conversation.id, Conversation.status == ConversationStatus.RESOLVED)
        .values(status=ConversationStatus.OPEN)
    )
    if reopened.rowcount:
        set_committed_value(conversation, "status", ConversationStatus.OPEN)  # as the UPDATE just wrote it
        db.session.add(
            AuditEvent(
                occurred_at=now,
                kind=AuditKind.REOPENED,
                conversation_id=conversation.id,
                details={"reason": "the customer wrote again"},
            )
        )


def record_outbound(
    contact: ContactRef,
    body: str,
    occurred_at: datetime,
    provider_message_id: str | None,
    *,
    outcome: Outcome = Outcome.SENT,
    fingerprint: str | None = None,
    now: datetime,
) -> Message:
    """Record a message that left the account: Handoff's own send when it matches one, else the
    AI assistant's (when it was active) or another tool's."""
    occurred_at = min(occurred_at, now)  # as ingest_message has it
    if provider_message_id is not None:
        known = db.session.scalar(select(Message).where(Message.provider_message_id == provider_message_id))
        if known is not None:
            advance_outcome(known, outcome, now)
            return known
    conversation = find_or_create_conversation(contact, now=now)
    own = matching_message(conversation, Direction.OUTBOUND, body, occurred_at, author=Author.AGENT)
    if own is not None:
        own.provider_message_id = own.provider_message_id or provider_message_id
        advance_outcome(own, outcome, now)
        return own
    paused_at = conversation.assistant_paused_at
    after_pause = paused_at is not None and occurred_at >= paused_at
    author = Author.OTHER_TOOL if after_pause else Author.ASSISTANT
    observed = ObservedMessage(Direction.OUTBOUND, author, body, occurred_at, provider_message_id, outcome, fingerprint)
    result = ingest_message(contact, observed, now=now)
    if result.created and after_pause:
        notice_writing_after_pause(conversation, result.message, now=now)
    return result.message


def notice_writing_after_pause(conversation: Conversation, message: Message, *, now: datetime) -> None:
    """Vambe says nothing of who sent a message, so one Handoff did not send, going out after Handoff paused the
    assistant, is the AI (or another tool) writing again. While a person has the conversation (open and
    assigned), that is an incident: the customer hears two voices."""
    if conversation.status != ConversationStatus.OPEN or conversation.assignee_id is None:
        return
    db.session.add(
        AuditEvent(
            occurred_at=now,
            kind=AuditKind.AI_AFTER_TAKEOVER,
            conversation_id=conversation.id,
            message_id=message.id,
            details={"paused_at": conversation.assistant_paused_at.isoformat()},
        )
    )


def matching_message(
    conversation: Conversation,
    direction: Direction,
    body: str,
    occurred_at: datetime,
    *,
    author: Author | None = None,
    excluded_ids: set[int] = frozenset(),
) -> Message | None:
    """A message without a provider id that is evidently the same one: same direction and text, close in time."""
    query = select(Message).where(
        Message.conversation_id == conversation.id,
        Message.direction == direction,
        Message.body == body,
        Message.occurred_at.between(occurred_at - MATCH_TOLERANCE, occurred_at + MATCH_TOLERANCE),
    )
    if author is not None:
        query = query.where(Message.author == author, Message.provider_message_id.is_(None))
    candidates = [m for m in db.session.scalars(query) if m.id not in excluded_ids]
    return min(candidates, key=lambda m: abs(m.occurred_at - occurred_at), default=None)


def advance_outcome(message: Message, reported: Outcome, now: datetime, reason: str | None = None) -> bool:
    """Apply an outcome Vambe reported, moving forward only; a failure overrides anything short of delivery.
    Returns whether the message moved. An agent's send that failed after Vambe had accepted it (or after its
    answer was lost) is a late failure: its agent must hear of it."""
    current = Outcome(message.outcome)
    if reported == Outcome.FAILED:
        moves = current in (Outcome.SENDING, Outcome.UNKNOWN, Outcome.SENT)
    else:
        moves = reported in OUTCOME_PROGRESS and OUTCOME_PROGRESS.get(current, 99) < OUTCOME_PROGRESS[reported]
    if not moves:
        return False
    message.outcome = reported
    failed = reported == Outcome.FAILED
    message.outcome_reason = (reason or N_("WhatsApp reported the message as failed.")) if failed else None
    message.updated_at = now
    if reported == Outcome.FAILED and current != Outcome.SENDING and message.author == Author.AGENT:
        message.failed_late_at = now
    return True


def parse_time(raw: Any) -> datetime | None:
    """An ISO 8601 time from Vambe as an aware UTC datetime, or None when absent, malformed or implausibly old."""
    moment = aware_time(raw)
    return moment if moment is not None and moment.year >= EARLIEST_YEAR else None


def find_or_create_conversation(contact: ContactRef, *, now: datetime) -> Conversation:
    """The conversation for ``contact``, created when Handoff has not seen the contact before."""
    phone = normalised_phone(contact.phone)
    if contact.vambe_contact_id is None and phone is None:
        raise ValueError("a contact needs a Vambe contact id or a phone number")
    if contact.vambe_contact_id is not None:
        conversation = conversation_for_vambe_contact(contact.vambe_contact_id, phone, now=now)
    else:
        conversation = db.session.scalar(
            select(Conversation).where(Conversation.phone == phone).order_by(Conversation.id)
        )
        if conversation is None:
            conversation = Conversation(phone=phone, name=contact.name, created_at=now)
            db.session.add(conversation)
            db.session.flush()
    adopt_contact_details(conversation, contact.name, phone)
    return conversation


def adopt_contact_details(conversation: Conversation, name: str, phone: str | None) -> None:
    """Fill in the name and E.164 phone the conversation lacks; what it already has is kept."""
    if name and not conversation.name:
        conversation.name = name
    if phone and not conversation.phone:
        conversation.phone = phone


def conversation_for_vambe_contact(vambe_contact_id: str, phone: str | None, *, now: datetime) -> Conversation:
    """The conversation with this Vambe id, adopting a phone-only one for the same number."""
    by_id = select(Conversation).where(Conversation.vambe_contact_id == vambe_contact_id)
    conversation = db.session.scalar(by_id)
    if conversation is None and phone is not None:
        conversation = db.session.scalar(
            select(Conversation).where(Conversation.phone == phone, Conversation.vambe_contact_id.is_(None))
        )
        if conversation is not None:
            conversation.vambe_contact_id = vambe_contact_id
    if conversation is None:
        insert_ignoring_conflict(
            Conversation,
            {"vambe_contact_id": vambe_contact_id, "phone": phone, "name": "", "created_at": now},
            "vambe_contact_id",
        )
        conversation = db.session.scalar(by_id)
    return conversation


def advance_conversation(conversation_id: int, direction: Direction, occurred_at: datetime) -> None:
    """Move the conversation's latest-message times forward, never back (deliveries arrive out of order)."""
    columns = [Conversation.last_message_at]
    if direction == Direction.INBOUND:
        columns.append(Conversation.last_inbound_at)
    for column in columns:
        db.session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, or_(column.is_(None), column < occurred_at))
            .values({column: occurred_at})
        )


def insert_ignoring_conflict(model: type[db.Model], values: dict, unique_column: str) -> bool:
    """INSERT that leaves an existing row with the same ``unique_column`` alone; True when it inserted.

    The database settles races between workers: there is no check-then-insert window.
    """
    dialect = db.session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
    statement = (
        insert(model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[unique_column])
        .returning(getattr(model, unique_column))
    )
    return db.session.execute(statement).scalar() is not None


def normalised_phone(raw: str | None) -> str | None:
    """``raw`` in E.164, or None when absent or unparseable (Vambe's data is not always clean)."""
    if not raw:
        return None
    try:
        return to_e164(raw)
    except InvalidPhoneNumber:
        log.warning("ignoring an unparseable contact phone number")
        return None
