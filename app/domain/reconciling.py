"""Delivery reconciliation (`flask reconcile`): Vambe's history is the only word on what became of a message.

Vambe sends no delivery-status webhook and a 201 only means "accepted", so a scheduled pass reads the history of
every contact with a recent Handoff send still on its way, and of every contact Vambe says wrote after what
Handoff holds. Each message's state moves forward only; sends whose fate was unknown are settled; messages found
only in the history are added and counted as missed webhooks.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from app.domain.ingesting import MATCH_TOLERANCE, ContactRef, advance_outcome, parse_time
from app.domain.jobs import record_run, single_runner
from app.domain.sending import settle_stuck_sends
from app.domain.syncing import SyncReport, sync_contact
from app.extensions import db
from app.i18n import N_
from app.models import AuditEvent, AuditKind, Author, Conversation, Message, Outcome, User
from app.vambe import VambeClient, VambeError

JOB = "reconcile"
# States a send can still leave: read and failed are final.
ON_ITS_WAY = (Outcome.SENT, Outcome.DELIVERED, Outcome.UNKNOWN)
NOT_IN_HISTORY = N_(
    "Vambe's history has no such message, so it was never sent. Send it again if the customer still needs it."
)


@dataclass
class ReconcileReport(SyncReport):
    advanced: int = 0  # messages whose state moved forward
    late_failures: int = 0
    unknown_settled: int = 0

    def summary(self) -> dict:
        return {
            "contacts": self.contacts,
            "advanced": self.advanced,
            "late_failures": self.late_failures,
            "unknown_settled": self.unknown_settled,
            "missed": self.missed,
            "waited_seconds": self.waited_seconds,
            "skipped": dict(self.skipped),
        }


def reconcile(
    client: VambeClient,
    *,
    now: datetime,
    lookback: timedelta,
    settle_after: timedelta,
    stuck_after: timedelta,
    wait: Callable[[float], None] | None,
) -> ReconcileReport:
    """One pass over the history of the contacts that need it; commits message by message, so a pass cut short
    keeps what it learnt. ``settle_after``: how long a webhook may take, so that a message is called missed and
    an unknown send never sent only when that long has passed."""
    report = ReconcileReport()
    since, settled_before = now - lookback, now - settle_after
    settle_stuck_sends(now=now, older_than=stuck_after)
    contacts = contacts_ahead_of_the_store(client, lookback, now) | contacts_with_sends_on_their_way(since)
    for contact_id, contact in sorted(contacts.items()):
        before = outcomes_of_sends(contact_id, since)
        complete = sync_contact(
            client, contact, since=since, now=now, report=report, wait=wait, missed_before=settled_before
        )
        if complete:
            report.unknown_settled += settle_unknown_sends(contact_id, since, settled_before, now)
        after = outcomes_of_sends(contact_id, since)
        report.advanced += sum(1 for message_id, outcome in after.items() if before.get(message_id) != outcome)
    report.late_failures = db.session.scalar(
        select(func.count()).select_from(Message).where(Message.failed_late_at >= now)
    )
    return report


def contacts_with_sends_on_their_way(since: datetime) -> dict[str, ContactRef]:
    """The contacts with a Handoff send since ``since`` whose state is not final, by Vambe id."""
    rows = db.session.execute(
        select(Conversation.vambe_contact_id, Conversation.phone, Conversation.name)
        .join(Message, Message.conversation_id == Conversation.id)
        .where(
            Conversation.vambe_contact_id.is_not(None),
            Message.author == Author.AGENT,
            Message.occurred_at >= since,
            Message.outcome.in_(ON_ITS_WAY),
        )
        .distinct()
    )
    return {contact_id: ContactRef(contact_id, phone, name) for contact_id, phone, name in rows}


def contacts_ahead_of_the_store(client: VambeClient, lookback: timedelta, now: datetime) -> dict[str, ContactRef]:
    """The contacts whose last message, as Vambe lists them, is later than the last one Handoff holds for them
    (something reached Vambe that no webhook brought), by Vambe id."""
    days = max(1, min(365, -(-lookback // timedelta(days=1))))
    listed, refs = {}, {}
    for item in client.list_contacts(days):
        last = parse_time(item.get("last_message_at"))
        if item.get("id") and last is not None:
            contact_id = str(item["id"])
            listed[contact_id] = last
            refs[contact_id] = ContactRef(contact_id, item.get("phone"), str(item.get("name") or ""))
    held = dict(
        db.session.execute(
            select(Conversation.vambe_contact_id, Conversation.last_message_at).where(
                Conversation.vambe_contact_id.in_(listed)
            )
        ).all()
    )
    return {
        contact_id: refs[contact_id]
        for contact_id, last in listed.items()
        if now - lookback <= last and (held.get(contact_id) is None or last > held[contact_id] + MATCH_TOLERANCE)
    }


def outcomes_of_sends(contact_id: str, since: datetime) -> dict[int, str]:
    return dict(
        db.session.execute(
            select(Message.id, Message.outcome)
            .join(Conversation, Message.conversation_id == Conversation.id)
            .where(
                Conversation.vambe_contact_id == contact_id,
                Message.author == Author.AGENT,
                Message.occurred_at >= since,
            )
        ).all()
    )


def settle_unknown_sends(contact_id: str, since: datetime, settled_before: datetime, now: datetime) -> int:
    """Sends of unknown fate that the whole history, just read, does not hold: Vambe never took them. (One it
    holds has been matched and moved on by now.) Commits; returns how many."""
    unknown = db.session.scalars(
        select(Message)
        .join(Conversation, Message.conversation_id == Conversation.id)
        .where(
            Conversation.vambe_contact_id == contact_id,
            Message.author == Author.AGENT,
            Message.outcome == Outcome.UNKNOWN,
            Message.provider_message_id.is_(None),
            Message.occurred_at >= since,
            Message.occurred_at < settled_before,
        )
    ).all()
    for message in unknown:
        advance_outcome(message, Outcome.FAILED, now, NOT_IN_HISTORY)
    db.session.commit()
    return len(unknown)


def run_reconciliation(
    client: VambeClient, *, now: datetime, clock: Callable[[], datetime], **settings
) -> ReconcileReport:
    """``reconcile``, with the run kept for the health panel (``clock`` tells when it ended). A Vambe error is
    recorded, then raised."""
    try:
        report = reconcile(client, now=now, **settings)
    except VambeError as error:
        db.session.rollback()
        record_run(JOB, started_at=now, finished_at=clock(), error=error.agent_message)
        raise
    record_run(JOB, started_at=now, finished_at=clock(), summary=report.summary())
    return report


def reconcile_now(
    client: VambeClient, *, actor: User, now: datetime, clock: Callable[[], datetime], **settings
) -> ReconcileReport | None:
    """An admin's "Reconcile now": one pass without waiting out a 429 (someone is waiting), recorded in the audit
    trail. None when a scheduled pass is running at this moment."""
    with single_runner(JOB) as mine:
        if not mine:
            return None
        report = run_reconciliation(client, now=now, clock=clock, wait=None, **settings)
    db.session.add(AuditEvent(occurred_at=now, kind=AuditKind.RECONCILED, actor=actor, details=report.summary()))
    db.session.commit()
    return report


def settings_from(config: Mapping[str, Any]) -> dict[str, timedelta]:
    """The installation's reconciliation settings, as ``reconcile`` takes them."""
    return {
        "lookback": config["RECONCILE_LOOKBACK"],
        "settle_after": config["RECONCILE_SETTLE"],
        "stuck_after": config["STUCK_SEND_AGE"],
    }
