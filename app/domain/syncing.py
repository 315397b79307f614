"""Bringing Vambe's view of the account into Handoff's store: business numbers, contacts and message history."""

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, text, update

from app.domain.deliveries import business_phones, process_delivery
from app.domain.ingesting import (
    ContactRef,
    ObservedMessage,
    adopt_contact_details,
    advance_outcome,
    find_or_create_conversation,
    ingest_message,
    insert_ignoring_conflict,
    matching_message,
    normalised_phone,
    record_outbound,
)
from app.extensions import db
from app.i18n import N_
from app.models import (
    Author,
    BusinessNumber,
    Conversation,
    DeliveryState,
    Direction,
    Message,
    Outcome,
    WebhookDelivery,
    storable_text,
)
from app.vambe import HistoryMessage, VambeClient, VambeError, VambeNotFound, VambeRateLimited, VambeUnauthorized

HISTORY_STATUS = {"sent": Outcome.SENT, "delivered": Outcome.DELIVERED, "read": Outcome.READ, "failed": Outcome.FAILED}
MAX_RATE_LIMIT_WAITS = 5
REFRESH_DAYS = 30
BUSINESS_NUMBERS_LOCK = 0x48414E44  # "HAND": the advisory lock that keeps the business-number fetch single

log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    contacts: int = 0
    added: int = 0
    merged: int = 0
    already_known: int = 0
    missed: int = 0  # added by reconciliation: no webhook had delivered them
    waited_seconds: float = 0.0
    skipped: Counter = field(default_factory=Counter)


def sync_business_numbers(client: VambeClient) -> list[BusinessNumber]:
    """Record the account's WhatsApp numbers from Vambe's channels endpoint; commits."""
    numbers = store_business_numbers(client)
    db.session.commit()
    return numbers


def store_business_numbers(client: VambeClient) -> list[BusinessNumber]:
    """Fetch the account's WhatsApp numbers and store them, new or changed; safe beside a concurrent fetch."""
    phone_numbers = []
    for channel in client.list_whatsapp_channels():
        insert_ignoring_conflict(BusinessNumber, {"phone_number": channel.phone_number, "name": ""}, "phone_number")
        phone_numbers.append(channel.phone_number)
        db.session.execute(
            update(BusinessNumber)
            .where(BusinessNumber.phone_number == channel.phone_number)
            .values(vambe_channel_id=channel.vambe_channel_id, name=channel.name)
        )
    return list(db.session.scalars(select(BusinessNumber).where(BusinessNumber.phone_number.in_(phone_numbers))))


def fetch_business_numbers_once(client: VambeClient) -> None:
    """Fetch the numbers unless another worker has: concurrent webhooks all find them missing at first, and one
    fetch is enough. On PostgreSQL an advisory lock makes the others wait for the first; commits."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": BUSINESS_NUMBERS_LOCK})
    if not business_phones():
        store_business_numbers(client)
    db.session.commit()


def contacts_to_sync(client: VambeClient, *, days: int, contact_id: str | None = None) -> list[ContactRef]:
    """The contacts whose history a sync walks: one, or all with a message in the last ``days`` days."""
    items = [client.get_contact(contact_id)] if contact_id else client.list_contacts(days)
    return [
        ContactRef(vambe_contact_id=str(item["id"]), phone=item.get("phone"), name=str(item.get("name") or ""))
        for item in items
        if item.get("id")
    ]


def sync_contact(
    client: VambeClient,
    contact: ContactRef,
    *,
    since: datetime,
    now: datetime,
    report: SyncReport,
    wait: Callable[[float], None] | None = time.sleep,
    missed_before: datetime | None = None,
) -> bool:
    """Merge one contact's history since ``since`` into the store; safe to interrupt and repeat. With ``wait``
    None a 429 is not waited out (the history is reported unavailable). Returns whether the whole history was read.

    Reconciliation passes ``missed_before``: a message new to the store is then one the webhooks missed, and one
    newer than that may still have its webhook on the way, so it is left to the next pass."""
    report.contacts += 1
    complete_known_conversation(contact)
    merged_ids: set[int] = set()
    page = 1
    while True:
        try:
            history = rate_limited(lambda page=page: client.list_messages(contact.vambe_contact_id, page), wait, report)
        except VambeUnauthorized:
            raise
        except VambeNotFound:
            report.skipped[N_("contact no longer exists in Vambe")] += 1
            return False
        except VambeError as error:
            report.skipped[N_("history unavailable: %(error)s") % {"error": error.agent_message}] += 1
            return False
        if history.unreadable:
            report.skipped[N_("unreadable history items")] += history.unreadable
        for item in history.messages:
            merge_history_message(
                contact, item, since=since, now=now, report=report, merged_ids=merged_ids, missed_before=missed_before
            )
        if not history.has_more or not (history.messages or history.unreadable):
            return True
        page += 1


def refresh_conversation(client: VambeClient, conversation: Conversation, *, now: datetime) -> SyncReport:
    """Sync one conversation's recent history from Vambe (the "Refresh from Vambe" action)."""
    report = SyncReport()
    if conversation.vambe_contact_id is None:
        report.skipped[N_("Vambe does not know this contact's id yet")] += 1
        return report
    contact = ContactRef(conversation.vambe_contact_id, conversation.phone, conversation.name)
    try:
        if not (conversation.phone and conversation.name):
            contact = contact_with_details(client, contact, report)
        # An agent is waiting: a 429 is reported, not waited out inside the request.
        sync_contact(client, contact, since=now - timedelta(days=REFRESH_DAYS), now=now, report=report, wait=None)
    except VambeUnauthorized as error:
        db.session.rollback()
        report.skipped[N_("Vambe refused the request: %(error)s") % {"error": error.agent_message}] += 1
    return report


def contact_with_details(client: VambeClient, contact: ContactRef, report: SyncReport) -> ContactRef:
    """``contact`` as Vambe's contact record has it: a shape-A webhook carries no phone, and may carry no name."""
    try:
        return contact_record(client, contact.vambe_contact_id) or contact
    except VambeUnauthorized:
        raise
    except VambeError as error:
        report.skipped[N_("contact details unavailable: %(error)s") % {"error": error.agent_message}] += 1
        return contact


def contact_record(client: VambeClient, vambe_contact_id: str) -> ContactRef | None:
    """The contact as Vambe's /contact/{id}/info has it (None when the answer names no contact)."""
    found = contacts_to_sync(client, days=REFRESH_DAYS, contact_id=vambe_contact_id)
    return found[0] if found else None


def complete_with_vambe(client: VambeClient, delivery_id: int, *, now: datetime) -> None:
    """Ask Vambe what a delivery lacked (see ``Receipt.needs_vambe``), after the webhook has been answered: Vambe's
    retries must not wait on Vambe's API. Files a failed delivery again once the numbers are known; commits."""
    delivery = db.session.get(WebhookDelivery, delivery_id)
    if delivery.state == DeliveryState.FAILED:
        try:
            fetch_business_numbers_once(client)
        except VambeError as error:
            db.session.rollback()
            log.warning("business numbers unavailable for webhook delivery %s: %s", delivery_id, error.agent_message)
            return
        if business_phones():
            process_delivery(delivery, now=now)
    if delivery.message_id is not None:
        complete_new_contact(
            client, db.session.get(Message, delivery.message_id).conversation, now=delivery.received_at
        )


def complete_new_contact(client: VambeClient, conversation: Conversation, *, now: datetime) -> None:
    """Give a conversation that a webhook has just created (at ``now``) from a contact id alone the phone and name
    of Vambe's contact record: shape A carries no phone. Asked once; if Vambe cannot say, a sync or a refresh will."""
    if conversation.phone or conversation.vambe_contact_id is None or conversation.created_at != now:
        return
    try:
        record = contact_record(client, conversation.vambe_contact_id)
    except VambeError as error:
        log.warning("no details for contact of conversation %s: %s", conversation.id, error.agent_message)
        return
    if record is not None:
        complete_known_conversation(record)


def complete_known_conversation(contact: ContactRef) -> None:
    """Give the contact's conversation the phone and name it lacks, even when no message of the sync is new."""
    conversation = db.session.scalar(
        select(Conversation).where(Conversation.vambe_contact_id == contact.vambe_contact_id)
    )
    if conversation is not None:
        adopt_contact_details(conversation, contact.name, normalised_phone(contact.phone))
        db.session.commit()


def merge_history_message(
    contact: ContactRef,
    item: HistoryMessage,
    *,
    since: datetime,
    now: datetime,
    report: SyncReport,
    merged_ids: set[int],
    missed_before: datetime | None = None,
) -> None:
    if item.created_at < since:
        report.skipped[N_("older than the sync period")] += 1
        return
    if item.direction not in ("INBOUND", "OUTBOUND"):
        report.skipped[N_("unknown direction “%(direction)s”") % {"direction": item.direction[:20]}] += 1
        return
    direction = Direction.INBOUND if item.direction == "INBOUND" else Direction.OUTBOUND
    outcome = (
        Outcome.RECEIVED if direction == Direction.INBOUND else HISTORY_STATUS.get(item.status or "", Outcome.SENT)
    )
    reason = late_failure_reason(item) if outcome == Outcome.FAILED else None
    body = storable_text(item.body or f"[{item.type[:40]}]")
    known = db.session.scalar(select(Message).where(Message.provider_message_id == item.id))
    if known is not None:
        advance_outcome(known, outcome, now, reason)
        db.session.commit()
        report.already_known += 1
        return
    conversation = find_or_create_conversation(contact, now=now)
    # A webhook may have delivered the same message under another id.
    copy = matching_message(conversation, direction, body, item.created_at, excluded_ids=merged_ids)
    if copy is not None:
        merged_ids.add(copy.id)
        copy.provider_message_id = copy.provider_message_id or item.id
        advance_outcome(copy, outcome, now, reason)
        db.session.commit()
        report.merged += 1
        return
    if missed_before is not None and item.created_at >= missed_before:
        report.skipped[N_("too recent to call missed: left to the next pass")] += 1
        return
    if direction == Direction.INBOUND:
        message = ingest_message(
            contact, ObservedMessage(direction, Author.CUSTOMER, body, item.created_at, item.id, outcome), now=now
        ).message
    else:
        message = record_outbound(contact, body, item.created_at, item.id, outcome=outcome, now=now)
        if reason:
            message.outcome_reason = reason
    if missed_before is not None:
        message.missed_by_webhook = True
        report.missed += 1
    db.session.commit()  # message by message, so an interrupted sync keeps what it merged
    merged_ids.add(message.id)
    report.added += 1


def late_failure_reason(item: HistoryMessage) -> str:
    """What the agent is told of a send WhatsApp failed, in Vambe's words when its history gives any."""
    if item.error:
        return N_("WhatsApp reported the message as failed after Vambe accepted it. WhatsApp said: %(error)s") % {
            "error": item.error
        }
    return N_("WhatsApp reported the message as failed after Vambe accepted it.")


def rate_limited(call, wait: Callable[[float], None] | None, report: SyncReport):
    """``call()``, waiting as Vambe's Retry-After asks (or backing off) when it answers 429 and ``wait`` is given."""
    attempt = 0
    while True:
        try:
            return call()
        except VambeRateLimited as error:
            if wait is None or attempt == MAX_RATE_LIMIT_WAITS:
                raise
            delay = error.retry_after if error.retry_after is not None else float(2**attempt)
            report.waited_seconds += delay
            wait(delay)
            attempt += 1
