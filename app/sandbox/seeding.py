"""Demo data for the sandbox: contacts in every window state, with realistic threads."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select

from app.domain.ingesting import ContactRef, ObservedMessage, ingest_message
from app.domain.syncing import sync_business_numbers
from app.domain.templates import TemplateFields, save_template
from app.extensions import db
from app.models import (
    AuditEvent,
    Author,
    BusinessNumber,
    Conversation,
    ConversationView,
    Direction,
    Handoff,
    Message,
    MessageTemplate,
    Outcome,
    WebhookDelivery,
)
from app.sandbox.state import SANDBOX_TEMPLATES, SandboxChannel, SandboxContact, SandboxMessage
from app.vambe import VambeClient

CHANNELS = [(1951, "56211111111", "Ventas"), (1952, "56222222222", "Soporte")]


@dataclass(frozen=True)
class Line:
    ago: timedelta
    sender: str  # "customer" | "assistant"
    body: str


@dataclass(frozen=True)
class DemoContact:
    name: str
    phone: str
    channel_id: int
    lines: list[Line]


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


DEMO_CONTACTS = [
    DemoContact(
        "Valentina Rojas",
        "56987654321",
        1951,
        [
            Line(minutes(95), "customer", "Hola! Compré unas zapatillas el lunes y todavía no me llegan 😕"),
            Line(minutes(94), "assistant", "¡Hola Valentina! Lamento la demora. ¿Me compartes tu número de pedido?"),
            Line(minutes(90), "customer", "Es el pedido 48213"),
            Line(minutes(89), "assistant", "Gracias. Tu pedido 48213 salió de bodega el martes y está en tránsito."),
            Line(minutes(14), "customer", "Pero el courier dice que lo devolvieron. ¿Puedo hablar con una persona?"),
        ],
    ),
    DemoContact(
        "Matías Fernández",
        "56976543210",
        1951,
        [
            Line(minutes(23 * 60 + 20), "customer", "Buenas, ¿tienen la chaqueta impermeable en talla L?"),
            Line(minutes(23 * 60 + 19), "assistant", "¡Hola Matías! Sí, nos quedan 3 en talla L, en azul y negro."),
            Line(minutes(23 * 60 + 15), "customer", "Perfecto. ¿Y si no me queda, cómo es el cambio?"),
        ],
    ),
    DemoContact(
        "Camila Soto",
        "56965432109",
        1952,
        [
            Line(minutes(52 * 60), "customer", "Hola, me cobraron dos veces la misma compra."),
            Line(
                minutes(52 * 60 - 1),
                "assistant",
                "Hola Camila, lo siento. Un ejecutivo revisará tu caso a la brevedad.",
            ),
            Line(minutes(50 * 60), "customer", "Sigo esperando respuesta..."),
        ],
    ),
    DemoContact(
        "Joaquín Pérez",
        "5491155554444",
        1952,
        [
            Line(
                minutes(180), "assistant", "¡Hola Joaquín! Tu cotización N.º 1180 está lista. ¿Quieres que te la envíe?"
            ),
        ],
    ),
]


def seed_sandbox(client: VambeClient, *, now: datetime, reset: bool = False) -> bool:
    """Fill the sandbox and Handoff's store with the demo; False when already seeded and not ``reset``."""
    if db.session.scalar(select(SandboxContact).limit(1)) is not None:
        if not reset:
            return False
        clear_everything()
    for channel_id, phone, name in CHANNELS:
        db.session.add(SandboxChannel(id=channel_id, phone_number=phone, name=name))
    db.session.commit()
    sync_business_numbers(client)
    register_sandbox_templates(now)
    for demo in DEMO_CONTACTS:
        seed_contact(demo, now)
    return True


def register_sandbox_templates(now: datetime) -> None:
    """Register the sandbox account's approved templates in Handoff, as an admin would for a real account."""
    for template_id, template in SANDBOX_TEMPLATES.items():
        fields = TemplateFields(
            vambe_template_id=template_id,
            name=template.name,
            language=template.language,
            body=template.body,
            category=template.category,
        )
        save_template(fields, None, now=now)


def seed_contact(demo: DemoContact, now: datetime) -> None:
    contact = SandboxContact(
        id=str(uuid.uuid4()),
        name=demo.name,
        phone=demo.phone,
        channel_id=demo.channel_id,
        created_at=now - demo.lines[0].ago,
    )
    db.session.add(contact)
    messages = [
        SandboxMessage(
            id=str(uuid.uuid4()),
            contact=contact,
            direction="INBOUND" if line.sender == "customer" else "OUTBOUND",
            sender=line.sender,
            body=line.body,
            status="read",
            created_at=now - line.ago,
        )
        for line in demo.lines
    ]
    db.session.add_all(messages)
    db.session.commit()
    reference = ContactRef(vambe_contact_id=contact.id, phone=contact.phone, name=contact.name)
    for message in messages:
        inbound = message.direction == "INBOUND"
        ingest_message(
            reference,
            ObservedMessage(
                direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
                author=Author.CUSTOMER if inbound else Author.ASSISTANT,
                body=message.body,
                occurred_at=message.created_at,
                provider_message_id=message.id,
                outcome=Outcome.RECEIVED if inbound else Outcome.READ,
            ),
            now=now,
        )
    conversation = db.session.scalar(select(Conversation).where(Conversation.vambe_contact_id == contact.id))
    conversation.business_number = db.session.scalar(
        select(BusinessNumber).where(BusinessNumber.phone_number == contact.channel.phone_number)
    )
    db.session.commit()


def clear_everything() -> None:
    """Empty the sandbox and Handoff's conversations; users, and the audit of what they did, are kept."""
    db.session.execute(
        delete(AuditEvent).where(or_(AuditEvent.conversation_id.is_not(None), AuditEvent.message_id.is_not(None)))
    )
    # Children before parents: every row pointing at a message or conversation goes first.
    for model in (
        WebhookDelivery,
        ConversationView,
        Handoff,
        Message,
        Conversation,
        MessageTemplate,
        BusinessNumber,
        SandboxMessage,
        SandboxContact,
        SandboxChannel,
    ):
        db.session.execute(delete(model))
    db.session.commit()
