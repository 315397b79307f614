"""Test data builders: plain functions with sensible defaults, every field overridable. They commit."""

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select

from app.clock import utcnow
from app.domain.ingesting import ContactRef, ObservedMessage, ingest_message
from app.extensions import db
from app.models import Author, BusinessNumber, Conversation, Direction, Message, Outcome, Role, User
from app.sandbox.state import SandboxChannel, SandboxContact, SandboxMessage

DEFAULT_PASSWORD = "correct horse battery"


def make_user(
    *, email: str | None = None, role: Role = Role.AGENT, password: str = DEFAULT_PASSWORD, name: str = ""
) -> User:
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    user = User(email=email, name=name or email.split("@")[0], role=role, active=True, created_at=utcnow())
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user


def make_business_number(
    *, phone_number: str | None = None, name: str = "Ventas", channel_id: str | None = None
) -> BusinessNumber:
    number = BusinessNumber(
        phone_number=phone_number or f"562{uuid.uuid4().int % 10**8:08d}",
        name=name,
        vambe_channel_id=channel_id,
    )
    db.session.add(number)
    db.session.commit()
    return number


def make_conversation(
    *,
    vambe_contact_id: str | None = "generate",
    phone: str | None = None,
    name: str = "Test Customer",
    last_inbound_at: datetime | None = None,
    business_number: BusinessNumber | None = None,
    now: datetime | None = None,
) -> Conversation:
    now = now or utcnow()
    conversation = Conversation(
        vambe_contact_id=str(uuid.uuid4()) if vambe_contact_id == "generate" else vambe_contact_id,
        phone=phone or f"+569{uuid.uuid4().int % 10**8:08d}",
        name=name,
        last_inbound_at=last_inbound_at,
        last_message_at=last_inbound_at,
        business_number=business_number,
        created_at=now,
    )
    db.session.add(conversation)
    db.session.commit()
    return conversation


def make_message(
    conversation: Conversation,
    *,
    direction: Direction = Direction.INBOUND,
    author: Author | None = None,
    body: str = "Hola, necesito ayuda",
    provider_message_id: str | None = "generate",
    occurred_at: datetime | None = None,
    outcome: Outcome | None = None,
) -> Message:
    """A message recorded through the real ingest path (so the window moves as it would)."""
    inbound = direction == Direction.INBOUND
    result = ingest_message(
        ContactRef(vambe_contact_id=conversation.vambe_contact_id, phone=conversation.phone),
        ObservedMessage(
            direction=direction,
            author=author or (Author.CUSTOMER if inbound else Author.ASSISTANT),
            body=body,
            occurred_at=occurred_at or utcnow(),
            provider_message_id=str(uuid.uuid4()) if provider_message_id == "generate" else provider_message_id,
            outcome=outcome or (Outcome.RECEIVED if inbound else Outcome.SENT),
        ),
        now=utcnow(),
    )
    db.session.commit()
    return result.message


def make_agent_reply(
    conversation: Conversation, agent: User, at: datetime, *, outcome: Outcome = Outcome.SENT, override: bool = False
) -> Message:
    """A reply an agent sent at a given time, stored as the send path leaves it (for reports)."""
    message = Message(
        conversation=conversation,
        direction=Direction.OUTBOUND,
        author=Author.AGENT,
        author_user=agent,
        body=f"reply at {at:%H:%M}",
        outcome=outcome,
        window_override=override,
        occurred_at=at,
        created_at=at,
        updated_at=at,
    )
    db.session.add(message)
    db.session.commit()
    return message


def make_sandbox_channels(*numbers: tuple[int, str, str]) -> list[SandboxChannel]:
    """Channels on the sandbox ("Vambe") side, mirrored into Handoff's business numbers."""
    numbers = numbers or ((1951, "56211111111", "Ventas"),)
    channels = []
    for channel_id, phone, name in numbers:
        channel = db.session.get(SandboxChannel, channel_id) or SandboxChannel(
            id=channel_id, phone_number=phone, name=name
        )
        db.session.add(channel)
        if db.session.scalar(select(BusinessNumber).where(BusinessNumber.phone_number == phone)) is None:
            db.session.add(BusinessNumber(phone_number=phone, name=name, vambe_channel_id=str(channel_id)))
        channels.append(channel)
    db.session.commit()
    return channels


def make_sandbox_conversation(
    *,
    last_inbound_ago: timedelta | None = timedelta(minutes=5),
    name: str = "Sandbox Customer",
    phone: str | None = None,
    known_to_handoff_by_id: bool = True,
    channel_id: int = 1951,
) -> Conversation:
    """A contact that exists in the sandbox ("Vambe") and in Handoff, with one inbound message
    ``last_inbound_ago`` (None: the customer never wrote). Handoff knows the contact by its Vambe
    id, or only by phone when ``known_to_handoff_by_id`` is False."""
    if db.session.get(SandboxChannel, channel_id) is None:
        make_sandbox_channels()
    digits = phone or f"569{uuid.uuid4().int % 10**8:08d}"
    contact = SandboxContact(id=str(uuid.uuid4()), name=name, phone=digits, channel_id=channel_id, created_at=utcnow())
    db.session.add(contact)
    conversation = Conversation(
        vambe_contact_id=contact.id if known_to_handoff_by_id else None,
        phone="+" + digits,
        name=name,
        business_number=db.session.scalar(
            select(BusinessNumber).where(BusinessNumber.vambe_channel_id == str(channel_id))
        ),
        created_at=utcnow(),
    )
    db.session.add(conversation)
    db.session.commit()
    if last_inbound_ago is not None:
        inbound = SandboxMessage(
            id=str(uuid.uuid4()),
            contact=contact,
            direction="INBOUND",
            sender="customer",
            body="Hola, ¿me ayudan?",
            status="read",
            created_at=utcnow() - last_inbound_ago,
        )
        db.session.add(inbound)
        db.session.commit()
        make_message(conversation, body=inbound.body, provider_message_id=inbound.id, occurred_at=inbound.created_at)
    db.session.refresh(conversation)
    return conversation
