"""Asking Vambe which contacts wait for a human, on a schedule (`flask handoffs poll`), to fill the queue."""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app.domain.handoffs import WAITING_STATUSES, notice_vambe_status, queue_closing_windows
from app.domain.ingesting import ContactRef, find_or_create_conversation
from app.domain.syncing import rate_limited
from app.extensions import db
from app.vambe import VambeClient, WaitingContact

# Far past any real queue (20 contacts a page); a server that never ends its pages must not keep the job forever.
MAX_PAGES = 500


@dataclass
class PollReport:
    contacts: int = 0
    queued: int = 0
    closing: int = 0  # queued because their window is closing unanswered
    pages: int = 0
    waited_seconds: float = 0
    skipped: Counter = field(default_factory=Counter)


def poll_waiting_contacts(
    client: VambeClient, *, now: datetime, warning: timedelta, wait: Callable[[float], None] | None
) -> PollReport:
    """Queue every contact Vambe lists as waiting for a human, and every conversation whose window is closing
    with the customer unanswered. Commits page by page, so a pass that Vambe cuts short keeps what it read.
    Waits as a 429's Retry-After asks when ``wait`` is given; otherwise the 429 ends the pass (raised)."""
    report = PollReport()
    for status in WAITING_STATUSES:
        listed = 0
        for page in range(1, MAX_PAGES + 1):
            result = rate_limited(lambda: client.contacts_by_status(status, page), wait, report)  # noqa: B023
            report.pages += 1
            if result.unreadable:
                report.skipped["listed without a contact id"] += result.unreadable
            listed += len(result.contacts) + result.unreadable
            for contact in result.contacts:
                report.contacts += 1
                report.queued += queue_waiting_contact(contact, status, now=now)
            db.session.commit()
            if not (result.contacts or result.unreadable) or (result.total is not None and listed >= result.total):
                break
    report.closing = queue_closing_windows(now=now, warning=warning)
    db.session.commit()
    return report


def queue_waiting_contact(contact: WaitingContact, status: str, *, now: datetime) -> bool:
    """Queue the contact's conversation (created when Handoff has not seen the contact yet): Vambe listed it
    under ``status``, one of the statuses that mean a human is needed."""
    conversation = find_or_create_conversation(ContactRef(vambe_contact_id=contact.id, name=contact.name), now=now)
    # Vambe counts the wait from the customer's last message; without that, from now.
    since = now - timedelta(seconds=contact.waiting_seconds) if contact.waiting_seconds is not None else now
    return notice_vambe_status(conversation, status, since=since, now=now) is not None
