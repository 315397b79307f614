"""Vambe webhook deliveries: authenticate, store verbatim, then turn into messages."""

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from app.domain.ingesting import ContactRef, ObservedMessage, ingest_message, parse_time, record_outbound
from app.extensions import db
from app.models import Author, BusinessNumber, DeliveryState, Direction, Message, WebhookDelivery

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
SIGNATURE_MAX_AGE = timedelta(minutes=5)
KEPT_HEADERS = ("content-type", "user-agent", "x-vambe-timestamp", "x-vambe-signature", "x-request-id")
HANDLED_EVENTS = ("message.received", "message.sent")


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


def record_delivery(body: bytes, headers: dict[str, str], authenticated_by: str, *, now: datetime) -> WebhookDelivery:
    """Commit the delivery verbatim, before any attempt to understand it."""
    delivery = WebhookDelivery(
        received_at=now,
        authenticated_by=authenticated_by,
        headers={name: headers[name] for name in KEPT_HEADERS if name in headers},
        body=body.decode("utf-8", errors="replace"),
        state=DeliveryState.PENDING,
    )
    db.session.add(delivery)
    db.session.commit()
    return delivery


def process_delivery(delivery: WebhookDelivery, *, now: datetime) -> WebhookDelivery:
    """Turn a stored delivery into a message (at most once per message) and mark it; commits."""
    try:
        event = parse_event(json.loads(delivery.body), delivery.received_at, business_phones())
        message = apply_event(event, now=now)
    except (ValueError, UnrecognisedEvent) as error:
        db.session.rollback()
        return mark(delivery, DeliveryState.FAILED, str(error) or type(error).__name__, now)
    except Exception as error:
        db.session.rollback()
        log.exception("webhook delivery %s could not be processed", delivery.id)
        return mark(delivery, DeliveryState.FAILED, f"internal error: {type(error).__name__}", now)
    delivery.event = event.event
    delivery.message_id = message.id
    return mark(delivery, DeliveryState.PROCESSED, None, now)


def mark(delivery: WebhookDelivery, state: DeliveryState, error: str | None, now: datetime) -> WebhookDelivery:
    delivery.state = state
    delivery.error = error
    delivery.processed_at = now
    db.session.commit()
    return delivery


def replay_deliveries(*, only_failed: bool, since: datetime | None, now: datetime) -> list[WebhookDelivery]:
    """Process stored deliveries again, oldest first; safe to repeat."""
    query = select(WebhookDelivery).order_by(WebhookDelivery.received_at, WebhookDelivery.id)
    if only_failed:
        query = query.where(WebhookDelivery.state == DeliveryState.FAILED)
    if since is not None:
        query = query.where(WebhookDelivery.received_at >= since)
    return [process_delivery(delivery, now=now) for delivery in db.session.scalars(query).all()]


def apply_event(event: MessageEvent, *, now: datetime):
    if event.event == "message.received":
        observed = ObservedMessage(Direction.INBOUND, Author.CUSTOMER, event.body, event.occurred_at, event.message_id)
        return ingest_message(event.contact, observed, now=now).message
    if event.event is None:
        if event.message_id is not None:
            known = db.session.scalar(select(Message).where(Message.provider_message_id == event.message_id))
            if known is not None:
                return known  # the same message, already delivered in a shape that said which way it went
        # Guessing "inbound" would file the AI's replies as the customer's: they would open the window and give
        # the conversation the business's phone. Fail it instead; it is stored and can be replayed.
        raise UnrecognisedEvent(
            "shape B payload without an event name, and no business numbers are known to tell its direction: "
            "fetch them (flask vambe numbers), then replay the failed deliveries"
        )
    return record_outbound(event.contact, event.body, event.occurred_at, event.message_id, now=now)


def parse_event(payload: Any, received_at: datetime, business_phones: set[str]) -> MessageEvent:
    """Read either documented payload shape (A: ``event``/``data``; B: ``aiContactId``/``data``)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise UnrecognisedEvent("unrecognised payload shape: no data object")
    data = payload["data"]
    # Shape B may come with an event name too; its contact is then still aiContactId, not data.contact_id.
    if "aiContactId" in payload and "contact_id" not in data:
        if not payload["aiContactId"]:
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
        raise UnrecognisedEvent(f"event {event!r} is not one Handoff handles")
    if not data.get("contact_id"):
        raise UnrecognisedEvent("message event without data.contact_id")
    return MessageEvent(
        event=event,
        contact=ContactRef(vambe_contact_id=str(data["contact_id"]), name=str(data.get("contact_name") or "")),
        message_id=str(data["message_id"]) if data.get("message_id") else None,
        body=str(data.get("message_body") or ""),
        occurred_at=reported_time(payload.get("timestamp"), received_at),
    )


def parse_shape_b(payload: dict, data: dict, received_at: datetime, business_phones: set[str]) -> MessageEvent:
    from_number, to_number = digits(data.get("fromNumber")), digits(data.get("toNumber"))
    event = shape_b_event(payload.get("event"), from_number, to_number, business_phones)
    outbound = event == "message.sent"
    # The customer is the recipient of an outbound message and the sender of an inbound one; the business's
    # own number (or the name it sends under) is never taken for the customer's.
    customer_number = to_number if outbound else from_number
    return MessageEvent(
        event=event,
        contact=ContactRef(
            vambe_contact_id=str(payload["aiContactId"]),
            phone=customer_number if customer_number and customer_number not in business_phones else None,
            name="" if outbound else str(data.get("name") or ""),
        ),
        message_id=str(data["messageId"]) if data.get("messageId") else None,
        body=str(data.get("message") or ""),
        occurred_at=reported_time(data.get("timestamp") or data.get("createdAt"), received_at),
    )


def shape_b_event(named: Any, from_number: str, to_number: str, business_phones: set[str]) -> str | None:
    """The direction of a shape-B message: its event name when it has one (as in shape A); otherwise, as the
    documented shape names none, whether it came from (or went to) one of the business's own numbers."""
    if named is not None:
        if named not in HANDLED_EVENTS:
            raise UnrecognisedEvent(f"event {named!r} is not one Handoff handles")
        return named
    if from_number and from_number in business_phones:
        return "message.sent"
    if to_number and to_number in business_phones:
        return "message.received"
    if not business_phones:
        return None  # nothing tells; see apply_event
    return "message.received"


def digits(raw: Any) -> str:
    return "".join(ch for ch in str(raw or "") if ch.isdigit())


def business_phones() -> set[str]:
    return {digits(number) for number in db.session.scalars(select(BusinessNumber.phone_number))}
