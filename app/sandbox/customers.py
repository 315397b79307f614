"""The sandbox's customers and AI assistant: what Vambe and WhatsApp would do on their side."""

import re
import uuid
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select

from app.domain.handoffs import words_of
from app.extensions import db
from app.i18n import lazy_gettext as _l
from app.sandbox.state import SandboxChannel, SandboxContact, SandboxMessage
from app.sandbox.transport import deliver_webhook

CANNED_ANSWERS = [
    "¡Gracias por escribirnos! Estoy revisando tu consulta, dame un momento.",
    "Entiendo. ¿Me puedes dar tu número de pedido para ayudarte mejor?",
    "Gracias. Si prefieres, puedo derivarte con una persona del equipo.",
]
AI_THINKING_TIME = timedelta(milliseconds=1)  # the webhooks' timestamps have millisecond precision
# What the sandbox's AI takes for a request for a person, and how it hands over, by language. Its own list, as
# Vambe's AI has its own: Handoff's admin-editable phrases are a separate safety net for when an AI does not.
HANDOVERS = {
    "es": (
        ("hablar con una persona", "hablar con un humano", "hablar con un agente", "hablar con un asesor"),
        "Te comunico con una persona del equipo. Te responderán en breve.",
    ),
    "pt": (
        ("falar com um atendente", "falar com uma pessoa", "falar com um humano", "falar com alguem"),
        "Vou te transferir para uma pessoa da equipe. Você será atendido em breve.",
    ),
    "en": (
        ("human please", "talk to a human", "talk to a person", "talk to an agent", "speak to a person"),
        "I'm passing you to a person on our team. They'll answer shortly.",
    ),
}
# While a person is expected ("unattended") or on it ("attended"), the AI stays quiet.
AI_ANSWERS_WHILE = ("ai-attended", "ai-away")


class UnknownSandboxPhone(ValueError):
    """The phone number is not one a sandbox customer could write from."""


def customer_says(
    phone: str,
    text: str,
    *,
    name: str = "",
    now: datetime,
    ai_ignores_pause: bool = False,
    lose_webhooks: bool = False,
) -> SandboxMessage:
    """A customer writes on WhatsApp: Vambe stores it, notifies Handoff, and its AI may answer; with
    ``ai_ignores_pause`` it answers even though a person paused it, as a misbehaving AI would. With
    ``lose_webhooks`` the webhooks of this turn never reach Handoff: only its history (reconciliation) holds it."""
    digits = re.sub(r"\D", "", phone)
    if not phone.strip():
        raise UnknownSandboxPhone(_l("Give the customer's phone number, with its country code."))
    if not 8 <= len(digits) <= 15:
        raise UnknownSandboxPhone(
            _l("“%(phone)s” is not a phone number: give 8 to 15 digits, with the country code.", phone=phone)
        )
    contact = db.session.scalar(select(SandboxContact).where(SandboxContact.phone == digits))
    if contact is None:
        channel = first_channel()
        if channel is None:
            raise UnknownSandboxPhone(_l("the sandbox has no WhatsApp number yet: run `flask sandbox seed`"))
        contact = SandboxContact(
            id=str(uuid.uuid4()), name=name or f"+{digits}", phone=digits, channel=channel, created_at=now
        )
        db.session.add(contact)
    read_by_customer(contact)
    message = store(contact, "INBOUND", "customer", text, now)
    tell_handoff = lost if lose_webhooks else notify
    tell_handoff("message.received", message, now)
    if not ai_ignores_pause and (contact.assistant_paused or contact.chat_status not in AI_ANSWERS_WHILE):
        return message
    # A moment later, so that every list (the customer's phone, the thread) shows the answer after the question.
    language = handover_language(text)
    if language is None:
        reply = store(contact, "OUTBOUND", "assistant", canned_answer(contact), now + AI_THINKING_TIME)
        tell_handoff("message.sent", reply, now)
    else:
        contact.chat_status = "unattended"
        reply = store(contact, "OUTBOUND", "assistant", HANDOVERS[language][1], now + AI_THINKING_TIME)
        tell_handoff("message.sent", reply, now, chat_status="UNATTENDED")
    return message


def handover_language(text: str) -> str | None:
    """The language in which the customer asked the AI for a person, or None when they did not."""
    said = f" {words_of(text)} "
    for language, (phrases, _) in HANDOVERS.items():
        if any(f" {phrase} " in said for phrase in phrases):
            return language
    return None


def first_channel() -> SandboxChannel | None:
    """The account's first WhatsApp number: where a customer new to the sandbox writes."""
    return db.session.scalar(select(SandboxChannel).order_by(SandboxChannel.id).limit(1))


def store(contact: SandboxContact, direction: str, sender: str, body: str, now: datetime) -> SandboxMessage:
    message = SandboxMessage(
        id=str(uuid.uuid4()),
        contact=contact,
        direction=direction,
        sender=sender,
        body=body,
        status="sent",
        created_at=now,
    )
    db.session.add(message)
    # Committed before notifying: the webhook handler runs in its own session.
    db.session.commit()
    return message


def read_by_customer(contact: SandboxContact) -> None:
    """The customer answers with the chat open: what the business sent them is read."""
    for message in db.session.scalars(
        select(SandboxMessage).where(
            SandboxMessage.contact_id == contact.id,
            SandboxMessage.direction == "OUTBOUND",
            SandboxMessage.status.in_(("sent", "delivered")),
        )
    ):
        message.status = "read"


def lost(event: str, message: SandboxMessage, now: datetime, chat_status: str | None = None) -> None:
    """A webhook that never arrives."""


WHATSAPP_STATUSES = ("delivered", "read", "failed")
UNDELIVERABLE = "(#131026) Message undeliverable: the customer's phone could not be reached."


class NotABusinessMessage(ValueError):
    """Only what the business sent has a delivery status."""


def whatsapp_reports(message_id: str, status: str) -> SandboxMessage:
    """WhatsApp's word on a message the business sent, as Vambe records it in its history (and tells no
    webhook): delivered, read, or failed with WhatsApp's error."""
    message = db.session.get(SandboxMessage, message_id)
    if message is None or message.direction != "OUTBOUND" or status not in WHATSAPP_STATUSES:
        raise NotABusinessMessage("Only a message the business sent can be delivered, read or failed.")
    message.status = status
    message.failure = UNDELIVERABLE if status == "failed" else None
    db.session.commit()
    return message


def notify(event: str, message: SandboxMessage, now: datetime, chat_status: str | None = None) -> None:
    """Deliver a shape-A webhook for ``message`` to Handoff, with the contact's new chat status when it changed."""
    payload = {
        "event": event,
        "timestamp": message.created_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "data": {
            "contact_id": message.contact_id,
            "message_id": message.id,
            "message_body": message.body,
            "platform": "whatsapp",
            "direction": "inbound" if message.direction == "INBOUND" else "outbound",
            "contact_name": message.contact.name,
        },
    }
    if chat_status is not None:
        payload["data"]["chat_status"] = chat_status
    deliver_webhook(
        current_app._get_current_object(), payload, secret=current_app.config["VAMBE_WEBHOOK_SECRET"], now=now
    )


def canned_answer(contact: SandboxContact) -> str:
    answered = db.session.scalar(
        select(func.count(SandboxMessage.id)).where(
            SandboxMessage.contact_id == contact.id, SandboxMessage.sender == "assistant"
        )
    )
    return CANNED_ANSWERS[answered % len(CANNED_ANSWERS)]


def recent_messages(contact_id: str | None, limit: int = 8) -> list[SandboxMessage]:
    """The customer's side of the chat, as their phone would show it, oldest first."""
    if not contact_id:
        return []
    newest = db.session.scalars(
        select(SandboxMessage)
        .where(SandboxMessage.contact_id == contact_id)
        .order_by(SandboxMessage.created_at.desc(), SandboxMessage.id.desc())
        .limit(limit)
    ).all()
    return list(reversed(newest))
