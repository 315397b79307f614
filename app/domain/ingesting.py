"""Recording messages that happened in WhatsApp, idempotently by provider message id."""

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.models import Author, Conversation, Direction, Message, Outcome
from app.phones import InvalidPhoneNumber, to_e164

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class IngestResult:
    message: Message
    created: bool


def ingest_message(contact: ContactRef, observed: ObservedMessage, *, now: datetime) -> IngestResult:
    """Store ``observed`` once (a known provider id is never stored twice) and move the window; commits."""
    conversation = find_or_create_conversation(contact, now=now)
    values = {
        "conversation_id": conversation.id,
        "direction": observed.direction,
        "author": observed.author,
        "body": observed.body,
        "provider_message_id": observed.provider_message_id,
        "outcome": observed.outcome,
        "window_override": False,
        "occurred_at": observed.occurred_at,
        "created_at": now,
        "updated_at": now,
    }
    if observed.provider_message_id is None:
        message = Message(**values)
        db.session.add(message)
        db.session.flush()
        created = True
    else:
        created = insert_ignoring_conflict(Message, values, "provider_message_id")
        message = db.session.scalar(
            select(Message).where(Message.provider_message_id == observed.provider_message_id)
        )
    if created:
        advance_conversation(conversation.id, observed.direction, observed.occurred_at)
    db.session.commit()
    return IngestResult(message, created)


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
    if contact.name and not conversation.name:
        conversation.name = contact.name
    if phone and not conversation.phone:
        conversation.phone = phone
    return conversation


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
    db.session.execute(
        update(Conversation)
        .where(
            Conversation.id == conversation_id,
            or_(Conversation.last_message_at.is_(None), Conversation.last_message_at < occurred_at),
        )
        .values(last_message_at=occurred_at)
    )
    if direction == Direction.INBOUND:
        db.session.execute(
            update(Conversation)
            .where(
                Conversation.id == conversation_id,
                or_(Conversation.last_inbound_at.is_(None), Conversation.last_inbound_at < occurred_at),
            )
            .values(last_inbound_at=occurred_at)
        )


def insert_ignoring_conflict(model: type[db.Model], values: dict, unique_column: str) -> bool:
    """INSERT that leaves an existing row with the same ``unique_column`` alone; True when it inserted.

    The database settles races between workers: there is no check-then-insert window.
    """
    dialect = db.session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
    statement = (
        insert(model).values(**values).on_conflict_do_nothing(index_elements=[unique_column]).returning(model.id)
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
