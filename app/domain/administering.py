"""What an admin sees of the installation: the Vambe connection, webhooks, and the audit log."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from app.domain.deliveries import file_delivery
from app.domain.syncing import store_business_numbers
from app.extensions import db
from app.i18n import N_
from app.models import AuditEvent, AuditKind, User, WebhookDelivery
from app.vambe import Channel, VambeClient, VambeError

AUDIT_PAGE_SIZE = 50


@dataclass(frozen=True)
class ConnectionStatus:
    ok: bool
    detail: str
    channels: list[Channel]


def connection_status(client: VambeClient) -> ConnectionStatus:
    """Ask Vambe (live) for the account's WhatsApp numbers, as proof that the key works."""
    try:
        channels = client.list_whatsapp_channels()
    except VambeError as error:
        return ConnectionStatus(False, error.agent_message, [])
    return ConnectionStatus(
        True, N_("Connected: Vambe lists %(count)s WhatsApp number(s).") % {"count": len(channels)}, channels
    )


def masked(secret: str | None) -> str:
    """Enough of a secret to recognise it, never enough to use it."""
    if not secret:
        return "not set"
    if len(secret) < 12:
        return "•" * 8
    return f"{secret[:4]}…{secret[-2:]} ({len(secret)} characters)"


def recent_deliveries(*, state: str | None = None, limit: int = 50) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
    if state:
        query = query.where(WebhookDelivery.state == state)
    return list(db.session.scalars(query))


def last_delivery_at() -> datetime | None:
    return db.session.scalar(select(func.max(WebhookDelivery.received_at)))


def replay(delivery: WebhookDelivery, *, actor: User, now: datetime) -> WebhookDelivery:
    """Process a stored delivery again (idempotent) and record who asked; commits."""
    file_delivery(delivery, now=now)
    db.session.add(
        AuditEvent(
            occurred_at=now,
            kind=AuditKind.WEBHOOKS_REPLAYED,
            actor=actor,
            details={"delivery_id": delivery.id, "state": delivery.state},
        )
    )
    db.session.commit()
    return delivery


def refresh_numbers(client: VambeClient, *, actor: User, now: datetime) -> list[str]:
    """Fetch the business numbers from Vambe again and record who did; commits. Raises VambeError."""
    numbers = [number.phone_number for number in store_business_numbers(client)]
    db.session.add(
        AuditEvent(occurred_at=now, kind=AuditKind.NUMBERS_REFRESHED, actor=actor, details={"numbers": numbers})
    )
    db.session.commit()
    return numbers


@dataclass(frozen=True)
class AuditFilters:
    kind: str | None = None
    actor_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


def audit_log(filters: AuditFilters, *, before_id: int | None = None) -> list[AuditEvent]:
    """The audit log, newest first, one page at a time (``before_id`` pages by key)."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(AUDIT_PAGE_SIZE)
    if filters.kind:
        query = query.where(AuditEvent.kind == filters.kind)
    if filters.actor_id:
        query = query.where(AuditEvent.actor_id == filters.actor_id)
    if filters.since:
        query = query.where(AuditEvent.occurred_at >= filters.since)
    if filters.until:
        query = query.where(AuditEvent.occurred_at < filters.until)
    if before_id:
        query = query.where(AuditEvent.id < before_id)
    return list(db.session.scalars(query))
