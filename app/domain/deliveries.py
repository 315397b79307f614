"""Vambe webhook deliveries: authenticate, store verbatim, then turn into messages."""

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from app.domain.handoffs import notice_vambe_status
from app.domain.ingesting import ContactRef, ObservedMessage, ingest_message, parse_time, record_outbound
from app.extensions import db
from app.models import (
    Author,
    BusinessNumber,
    Conversation,
    DeliveryState,
    Direction,
    Message,
    WebhookDelivery,
    storable_text,
)
from app.vambe import message_id_key

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
MAX_NESTING = 32  # Vambe's payloads nest three levels; deeper is not a message event
CONTACT_ID_LENGTH = Conversation.vambe_contact_id.type.length
MESSAGE_ID_LENGTH = Message.provider_message_id.type.length
NAME_LENGTH = Conversation.name.type.length
PHONE_LENGTH = 32
SIGNATURE_MAX_AGE = timedelta(minutes=5)
KEPT_HEADERS = ("content-type", "user-agent", "x-vambe-timestamp", "x-vambe-signature", "x-request-id")
HANDLED_EVENTS = ("message.received", "message.sent")
DIRECTION_UNKNOWN = (
    "shape B payload without an event name, and no business numbers are known to tell its direction: "
    "fetch them (flask vambe numbers), then replay the failed deliveries"
)


class WebhookUnauthorized(Exception):
    """The delivery proves no knowledge of the webhook secret."""


class UnrecognisedEvent(ValueError):
    """The payload is not a message event in a shape Handoff knows."""


@dataclass(frozen=True)
class MessageEvent:
    event: str | None  # None: a shape-B message whose direction nothing tells
    contact: ContactRef
    message_id: str | None
    body: str
    occurred_at: datetime
    chat_status: str | None = None  # Vambe's word on the contact, when the payload carries it ("UNATTENDED")


def signature_for(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"{timestamp}.{body}"``, Vambe's webhook signature."""
    return hmac.new(as_bytes(secret), as_bytes(timestamp) + b"." + body, hashlib.sha256).hexdigest()


def authenticate(
    secret: str | None,
    *,
    url_token: str | None,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: datetime,
) -> str:
    """How the delivery proved itself ("url_token" or "signature"); raise WebhookUnauthorized otherwise."""
    if not secret:
        raise WebhookUnauthorized("VAMBE_WEBHOOK_SECRET is not configured")
    if url_token is not None:
        if hmac.compare_digest(as_bytes(url_token), as_bytes(secret)):
            return "url_token"
        raise WebhookUnauthorized("wrong token in the webhook URL")
    if not timestamp or not signature:
        raise WebhookUnauthorized("no signature and no token")
    signed_at = parse_signature_time(timestamp)
    if signed_at is None or abs(now - signed_at) > SIGNATURE_MAX_AGE:
        raise WebhookUnauthorized("signature timestamp missing, malformed or older than 5 minutes")
    expected = signature_for(secret, timestamp, body)
    if not hmac.compare_digest(as_bytes(expected), as_bytes(signature.strip().lower())):
        raise WebhookUnauthorized("signature does not match")
    return "signature"


def as_bytes(text: str) -> bytes:
    """``text`` as bytes, whatever it holds, for hmac.compare_digest: comparing two str raises TypeError
    as soon as one holds a non-ASCII character, and headers and URLs are the sender's to choose."""
    return text.encode("utf-8", "surrogatepass")


def parse_signature_time(raw: str) -> datetime | None:
    """Unix seconds or milliseconds, or ISO 8601: the scheme does not pin the format."""
    try:
        number = float(raw)
    except ValueError:
        return parse_time(raw)
    try:
        return datetime.fromtimestamp(number / 1000 if number > 1e11 else number, UTC)
    except (ValueError, OverflowError, OSError):  # nan, inf, or beyond the calendar
        return None


@dataclass(frozen=True)
class Receipt:
    """What the webhook's answer says, and whether Vambe must be asked something once it is sent."""

    delivery_id: int
    state: str
    needs_vambe: bool


def receive_delivery(body: bytes, headers: dict[str, str], authenticated_by: str, *, now: datetime) -> Receipt:
    """Store an authenticated delivery verbatim and file its message, in one transaction; commits once.

    A delivery that cannot be filed is stored all the same, marked failed with the reason, for a replay."""
    delivery = WebhookDelivery(
        received_at=now,
        authenticated_by=authenticated_by,
        headers={name: storable_text(headers[name]) for name in KEPT_HEADERS if name in headers},
        body=storable_text(body.decode("utf-8", errors="replace")),
        state=DeliveryState.PENDING,
    )
    db.session.add(delivery)
    message = file_delivery(delivery, now=now)
    receipt = Receipt(delivery.id, delivery.state, needs_vambe(delivery, message))  # before the commit expires them
    db.session.commit()
    return receipt


def needs_vambe(delivery: WebhookDelivery, message: Message | None) -> bool:
    """Whether a filed delivery lacks what only Vambe can tell: the account's own numbers (to tell a shape-B
    message's direction) or a new contact's phone (shape A carries none)."""
    if message is None:
        # Not "no numbers are known now": another worker may have fetched them since this delivery failed.
        return delivery.error == DIRECTION_UNKNOWN
    conversation = message.conversation
    return conversation.phone is None and conversation.created_at == delivery.received_at


def process_delivery(delivery: WebhookDelivery, *, now: datetime) -> WebhookDelivery:
    """File a stored delivery again (a replay; at most one message per message); commits."""
    file_delivery(delivery, now=now)
    db.session.commit()
    return delivery


def file_delivery(delivery: WebhookDelivery, *, now: datetime) -> Message | None:
    """Turn the delivery into a message and mark it; the message, or None when it failed. The message is written
    in a savepoint, so a delivery that fails halfway leaves nothing behind but its own mark."""
    delivery.processed_at = now
    db.session.flush()
    try:
        with db.session.begin_nested():
            payload = read_json(delivery.body)
            event = parse_event(payload, delivery.received_at, business_phones())
            message = apply_event(event, fingerprint=fingerprint_of(payload), now=now)
            notice_vambe_status(message.conversation, event.chat_status, since=message.occurred_at, now=now)
    except UnrecognisedEvent as error:
        mark(delivery, DeliveryState.FAILED, str(error))
        return None
    except Exception as error:
        log.exception("webhook delivery %s could not be processed", delivery.id)
        mark(delivery, DeliveryState.FAILED, f"internal error: {type(error).__name__}")
        return None
    delivery.event = event.event
    delivery.message_id = message.id
    mark(delivery, DeliveryState.PROCESSED, None)
    return message


def mark(delivery: WebhookDelivery, state: DeliveryState, error: str | None) -> None:
    delivery.state = state
    delivery.error = error


def read_json(body: str) -> Any:
    """The delivery's JSON, refusing what is not JSON or nests deeper than any Vambe payload."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise UnrecognisedEvent("the body is not JSON, or nests too deeply") from None
    if nesting_depth(payload) > MAX_NESTING:
        raise UnrecognisedEvent(f"the payload nests deeper than {MAX_NESTING} levels")
    return payload


def nesting_depth(value: Any) -> int:
    """How deeply ``value`` nests lists and objects, counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def fingerprint_of(payload: Any) -> str:
    """What identifies a payload across Vambe's redeliveries of it: the same JSON, whatever its key order."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def replay_deliveries(*, only_failed: bool, since: datetime | None, now: datetime) -> list[WebhookDelivery]:
    """Process stored deliveries again, oldest first; safe to repeat."""
    query = select(WebhookDelivery).order_by(WebhookDelivery.received_at, WebhookDelivery.id)
    if only_failed:
        query = query.where(WebhookDelivery.state == DeliveryState.FAILED)
    if since is not None:
        query = query.where(WebhookDelivery.received_at >= since)
    return [process_delivery(delivery, now=now) for delivery in db.session.scalars(query).all()]


def apply_event(event: MessageEvent, *, fingerprint: str, now: datetime) -> Message:
    """Record the event's message; the fingerprint stands in for a message id the payload lacks."""
    fingerprint_if_needed = None if event.message_id else fingerprint
    if event.event == "message.received":
        observed = ObservedMessage(
            Direction.INBOUND,
            Author.CUSTOMER,
            event.body,
            event.occurred_at,
            event.message_id,
            fingerprint=fingerprint_if_needed,
        )
        return ingest_message(event.contact, observed, now=now).message
    if event.event is None:
        if event.message_id is not None:
            known = db.session.scalar(select(Message).where(Message.provider_message_id == event.message_id))
            if known is not None:
                return known  # the same message, already delivered in a shape that said which way it went
        # Guessing "inbound" would file the AI's replies as the customer's: they would open the window and give
        # the conversation the business's phone. Fail it instead; it is stored and can be replayed.
        raise UnrecognisedEvent(DIRECTION_UNKNOWN)
    return record_outbound(
        event.contact, event.body, event.occurred_at, event.message_id, fingerprint=fingerprint_if_needed, now=now
    )


def parse_event(payload: Any, received_at: datetime, business_phones: set[str]) -> MessageEvent:
    """Read either documented payload shape (A: ``event``/``data``; B: ``aiContactId``/``data``)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise UnrecognisedEvent("unrecognised payload shape: no data object")
    data = payload["data"]
    # Shape B may come with an event name too; its contact is then still aiContactId, not data.contact_id.
    if "aiContactId" in payload and "contact_id" not in data:
        if id_field(payload, "aiContactId", CONTACT_ID_LENGTH) is None:
            raise UnrecognisedEvent("shape B payload without an aiContactId")
        return parse_shape_b(payload, data, received_at, business_phones)
    if "event" in payload:
        return parse_shape_a(payload, data, received_at)
    raise UnrecognisedEvent("unrecognised payload shape: neither event nor aiContactId")


def reported_time(raw: Any, received_at: datetime) -> datetime:
    """When the payload says the message happened, but never after Handoff received it: a sender's clock ahead
    of ours must not stretch the 24h window, nor sort the message after ones that arrived later. Capped here
    (not only on ingest) so that a replay, later, caps at the same moment."""
    return min(parse_time(raw) or received_at, received_at)


def parse_shape_a(payload: dict, data: dict, received_at: datetime) -> MessageEvent:
    event = payload["event"]
    if event not in HANDLED_EVENTS:
        raise UnrecognisedEvent(f"event {str(event)[:40]!r} is not one Handoff handles")
    contact_id = id_field(data, "contact_id", CONTACT_ID_LENGTH)
    if contact_id is None:
        raise UnrecognisedEvent("message event without data.contact_id")
    return MessageEvent(
        event=event,
        contact=ContactRef(vambe_contact_id=contact_id, name=text_field(data, "contact_name", NAME_LENGTH)),
        message_id=message_id_field(data, "message_id"),
        body=text_field(data, "message_body"),
        occurred_at=reported_time(payload.get("timestamp"), received_at),
        chat_status=chat_status_of(payload, data),
    )


def parse_shape_b(payload: dict, data: dict, received_at: datetime, business_phones: set[str]) -> MessageEvent:
    from_number = digits(text_field(data, "fromNumber", PHONE_LENGTH))
    to_number = digits(text_field(data, "toNumber", PHONE_LENGTH))
    event = shape_b_event(payload.get("event"), from_number, to_number, business_phones)
    outbound = event == "message.sent"
    # The customer is the recipient of an outbound message and the sender of an inbound one; the business's
    # own number (or the name it sends under) is never taken for the customer's.
    customer_number = to_number if outbound else from_number
    name = text_field(data, "name", NAME_LENGTH)
    return MessageEvent(
        event=event,
        contact=ContactRef(
            vambe_contact_id=id_field(payload, "aiContactId", CONTACT_ID_LENGTH),
            phone=customer_number if customer_number and customer_number not in business_phones else None,
            name="" if outbound else name,
        ),
        message_id=message_id_field(data, "messageId"),
        body=text_field(data, "message"),
        occurred_at=reported_time(data.get("timestamp") or data.get("createdAt"), received_at),
        chat_status=chat_status_of(payload, data),
    )


def chat_status_of(payload: dict, data: dict) -> str | None:
    """The contact's chat status, when the delivery carries one: a hint, so a malformed one is ignored rather
    than failing the message it came with."""
    status = data.get("chat_status", payload.get("chat_status"))
    return status[:40] if isinstance(status, str) else None


def id_field(data: dict, name: str, max_length: int) -> str | None:
    """An identifier from the payload (text or a whole number), or None when absent; refuses anything else."""
    value = data.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise UnrecognisedEvent(f"{name} must be text or a number, not {type(value).__name__}")
    value = str(value).strip()
    # Vambe's ids are UUIDs, numbers and WhatsApp ids: printable ASCII. Anything else is no id of theirs.
    if not value or len(value) > max_length or not (value.isascii() and value.isprintable()):
        raise UnrecognisedEvent(f"{name} is not an identifier (empty, over {max_length} characters, or not ASCII)")
    return value


def message_id_field(data: dict, name: str) -> str | None:
    """A message id as the send path and the history store it (``message_id_key``): the same message then
    matches however each answer spelled its id."""
    raw = id_field(data, name, MESSAGE_ID_LENGTH)
    return None if raw is None else message_id_key(raw)


def text_field(data: dict, name: str, max_length: int | None = None) -> str:
    """Free text from the payload ("" when absent), storable and at most ``max_length`` long; refuses non-text."""
    value = data.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise UnrecognisedEvent(f"{name} must be text, not {type(value).__name__}")
    return storable_text(str(value))[:max_length]


def shape_b_event(named: Any, from_number: str, to_number: str, business_phones: set[str]) -> str | None:
    """The direction of a shape-B message: its event name when it has one (as in shape A); otherwise, as the
    documented shape names none, whether it came from (or went to) one of the business's own numbers."""
    if named is not None:
        if named not in HANDLED_EVENTS:
            raise UnrecognisedEvent(f"event {str(named)[:40]!r} is not one Handoff handles")
        return named
    if from_number and from_number in business_phones:
        return "message.sent"
    if to_number and to_number in business_phones:
        return "message.received"
    if not business_phones:
        return None  # nothing tells; see apply_event
    return "message.received"


def digits(raw: str) -> str:
    return "".join(ch for ch in raw if ch.isascii() and ch.isdigit())


def business_phones() -> set[str]:
    return {digits(number) for number in db.session.scalars(select(BusinessNumber.phone_number))}
