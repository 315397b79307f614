"""What an admin needs to know about the connection to Vambe: webhooks arriving, messages they missed,
sends that failed, and how often Vambe's API failed. (`/readyz` stays about this instance's readiness.)"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from app.domain.administering import last_delivery_at
from app.extensions import db
from app.models import Author, DeliveryState, JobRun, Message, Outcome, VambeCallCount, WebhookDelivery

log = logging.getLogger(__name__)

PERIOD = timedelta(hours=24)


def count_vambe_answer(failed: bool, *, now: datetime) -> None:
    """Count one call to Vambe in its hour, on a connection of its own: the count must survive the caller's
    rollback (a failed call is what rolls back), and it holds the hour's row for a moment only."""
    hour = now.replace(minute=0, second=0, microsecond=0)
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[db.engine.dialect.name]
    statement = insert(VambeCallCount).values(hour=hour, calls=1, errors=int(failed))
    statement = statement.on_conflict_do_update(
        index_elements=["hour"],
        set_={"calls": VambeCallCount.calls + 1, "errors": VambeCallCount.errors + int(failed)},
    )
    try:
        with db.engine.begin() as connection:
            connection.execute(statement)
    except SQLAlchemyError:
        log.warning("could not count a call to Vambe", exc_info=True)


@dataclass(frozen=True)
class Health:
    last_webhook_at: datetime | None
    missed_deliveries: int  # messages found only in Vambe's history, in the last 24 h
    failed_webhooks: int  # deliveries stored but not processed (replayable)
    failed_sends: int  # agents' sends that failed, in the last 24 h
    late_failures: int  # of which WhatsApp failed after Vambe had accepted them
    vambe_calls: int
    vambe_errors: int
    reconciliation: JobRun | None

    @property
    def vambe_error_rate(self) -> float | None:
        return self.vambe_errors / self.vambe_calls if self.vambe_calls else None


def health(*, now: datetime) -> Health:
    since = now - PERIOD
    calls, errors = db.session.execute(
        select(
            func.coalesce(func.sum(VambeCallCount.calls), 0), func.coalesce(func.sum(VambeCallCount.errors), 0)
        ).where(VambeCallCount.hour >= since.replace(minute=0, second=0, microsecond=0))
    ).one()
    failed_sends = (
        select(func.count())
        .select_from(Message)
        .where(Message.author == Author.AGENT, Message.outcome == Outcome.FAILED, Message.updated_at >= since)
    )
    return Health(
        last_webhook_at=last_delivery_at(),
        missed_deliveries=db.session.scalar(
            select(func.count()).select_from(Message).where(Message.missed_by_webhook, Message.created_at >= since)
        ),
        failed_webhooks=db.session.scalar(
            select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.state == DeliveryState.FAILED)
        ),
        failed_sends=db.session.scalar(failed_sends),
        late_failures=db.session.scalar(failed_sends.where(Message.failed_late_at.is_not(None))),
        vambe_calls=int(calls),
        vambe_errors=int(errors),
        reconciliation=db.session.get(JobRun, "reconcile"),
    )
