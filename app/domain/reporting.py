"""Reports for team leads: per agent and per day, for a period."""

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Row, case, func, select
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models import (
    AuditEvent,
    AuditKind,
    Author,
    Conversation,
    Direction,
    Handoff,
    Message,
    Outcome,
    ReviewItem,
    User,
)

# Response-time buckets for the distribution chart: (upper bound, label).
RESPONSE_BUCKETS = [
    (timedelta(minutes=1), "< 1 min"),
    (timedelta(minutes=5), "1–5 min"),
    (timedelta(minutes=15), "5–15 min"),
    (timedelta(hours=1), "15–60 min"),
    (timedelta(hours=4), "1–4 h"),
    (None, "> 4 h"),
]


@dataclass
class AgentDay:
    agent: str
    day: date
    conversations: set[int] = field(default_factory=set)
    messages_sent: int = 0
    response_times: list[timedelta] = field(default_factory=list)
    overrides: Counter = field(default_factory=Counter)  # outcome -> count, for sends outside the window
    failed: int = 0
    unknown: int = 0
    agent_id: int | None = None
    # Per handoff this agent answered: from entering the queue to this agent's first reply.
    first_responses: list[timedelta] = field(default_factory=list)

    @property
    def median_response(self) -> timedelta | None:
        return percentile(self.response_times, 50)

    @property
    def p90_response(self) -> timedelta | None:
        return percentile(self.response_times, 90)

    @property
    def median_first_response(self) -> timedelta | None:
        return percentile(self.first_responses, 50)

    @property
    def p90_first_response(self) -> timedelta | None:
        return percentile(self.first_responses, 90)


@dataclass(frozen=True)
class Report:
    since: datetime
    until: datetime
    rows: list[AgentDay]  # one per agent and local day, in that order
    totals: list[AgentDay]  # one per agent over the whole period (day = first day)
    volume_per_day: list[tuple[date, int]]
    response_distribution: list[tuple[str, int]]


def percentile(values: list[timedelta], rank: int) -> timedelta | None:
    """The nearest-rank percentile (50 = median of an odd count; the upper middle of an even one)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(rank / 100 * len(ordered)) - 1)]


def build_report(since: datetime, until: datetime, zone: ZoneInfo) -> Report:
    """Per agent and per day (in ``zone``) between ``since`` and ``until``.

    A response time runs from the first customer message that no agent has answered yet to the next
    message an agent sends in that conversation; AI assistant messages do not stop the clock.
    """
    names = {user.id: user.name for user in db.session.scalars(select(User))}
    rows: dict[tuple[int, date], AgentDay] = {}

    def row_of(agent_id: int, moment: datetime) -> AgentDay:
        day = moment.astimezone(zone).date()
        return rows.setdefault((agent_id, day), AgentDay(names.get(agent_id, "?"), day, agent_id=agent_id))

    for message, response_time in agent_sends(since, until):
        row = row_of(message.author_user_id, message.occurred_at)
        row.conversations.add(message.conversation_id)
        row.messages_sent += message.outcome != Outcome.FAILED  # a failed send was not sent
        if response_time is not None:
            row.response_times.append(response_time)
        if message.window_override:
            row.overrides[message.outcome] += 1
        row.failed += message.outcome == Outcome.FAILED
        row.unknown += message.outcome == Outcome.UNKNOWN
    for answered_by, answered_at, requested_at in answered_handoffs(since, until):
        row_of(answered_by, answered_at).first_responses.append(answered_at - requested_at)
    ordered = sorted(rows.values(), key=lambda r: (r.agent, r.day))
    return Report(
        since=since,
        until=until,
        rows=ordered,
        totals=totals_per_agent(ordered),
        volume_per_day=volume_per_day(ordered, since, until, zone),
        response_distribution=distribution(t for row in ordered for t in row.response_times),
    )


def agent_sends(since: datetime, until: datetime) -> Iterable[tuple[Row, timedelta | None]]:
    """Each agent message sent in the period, with the response time it ended (or None)."""
    # Customer messages from up to a week earlier may still be waiting for their first reply.
    # Only the columns a report counts: a year of messages must not become a year of ORM objects and bodies.
    query = (
        select(
            Message.id,
            Message.conversation_id,
            Message.occurred_at,
            Message.direction,
            Message.author_user_id,
            Message.window_override,
            Message.outcome,
        )
        .where(
            Message.occurred_at >= since - timedelta(days=7),
            Message.occurred_at < until,
            Message.author.in_([Author.CUSTOMER, Author.AGENT]),
        )
        .order_by(Message.conversation_id, Message.occurred_at, Message.id)
        .execution_options(yield_per=1000)
    )
    waiting_since: dict[int, datetime] = {}
    for message in db.session.execute(query):
        if message.direction == Direction.INBOUND:
            waiting_since.setdefault(message.conversation_id, message.occurred_at)
            continue
        # A failed send answered nobody: the customer is still waiting.
        started = None if message.outcome == Outcome.FAILED else waiting_since.pop(message.conversation_id, None)
        if message.occurred_at >= since and message.author_user_id is not None:
            yield message, (message.occurred_at - started) if started else None


def answered_handoffs(since: datetime, until: datetime) -> Iterable[Row]:
    """Who answered each handoff of the period, when, and since when the customer had waited in the queue."""
    return db.session.execute(
        select(Handoff.answered_by_id, Handoff.answered_at, Handoff.requested_at).where(
            Handoff.answered_at >= since, Handoff.answered_at < until, Handoff.answered_by_id.is_not(None)
        )
    )


# What each figure of an agent's row counts, as build_report counts it: (message row, response time) -> bool.
MEASURES = {
    "conversations": lambda message, waited: True,
    "sent": lambda message, waited: message.outcome != Outcome.FAILED,
    "responses": lambda message, waited: waited is not None,
    "overrides": lambda message, waited: message.window_override,
    "failed": lambda message, waited: message.outcome == Outcome.FAILED,
    "unknown": lambda message, waited: message.outcome == Outcome.UNKNOWN,
}


@dataclass(frozen=True)
class ReportItem:
    message: Message
    response_time: timedelta | None


def report_items(
    agent_id: int, measure: str, since: datetime, until: datetime, zone: ZoneInfo, day: date | None = None
) -> list[ReportItem]:
    """The agent's messages behind one figure of the report (a whole period, or one local day of it), walked
    exactly as build_report walks them, oldest first. For "conversations", each conversation's first."""
    counts = MEASURES[measure]
    chosen, seen = [], set()
    for message, waited in agent_sends(since, until):
        if message.author_user_id != agent_id or not counts(message, waited):
            continue
        if day is not None and message.occurred_at.astimezone(zone).date() != day:
            continue
        if measure == "conversations":
            if message.conversation_id in seen:
                continue
            seen.add(message.conversation_id)
        chosen.append((message.id, waited))
    loaded = {
        message.id: message
        for message in db.session.scalars(
            select(Message)
            .where(Message.id.in_([message_id for message_id, _ in chosen]))
            .options(joinedload(Message.conversation))
        )
    }
    items = [ReportItem(loaded[message_id], waited) for message_id, waited in chosen]
    return sorted(items, key=lambda item: (item.message.occurred_at, item.message.id))


def handoffs_answered_by(agent_id: int, since: datetime, until: datetime) -> list[Handoff]:
    """The handoffs behind an agent's first-response figures for the period, in the order they were answered."""
    return list(
        db.session.scalars(
            select(Handoff)
            .where(Handoff.answered_by_id == agent_id, Handoff.answered_at >= since, Handoff.answered_at < until)
            .options(joinedload(Handoff.conversation))
            .order_by(Handoff.answered_at, Handoff.id)
        )
    )


def overrides_between(since: datetime, until: datetime) -> list[AuditEvent]:
    """Every free-form send outside the window in the period, newest first: who, why, and what became of it."""
    return list(
        db.session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.kind == AuditKind.WINDOW_OVERRIDE,
                AuditEvent.occurred_at >= since,
                AuditEvent.occurred_at < until,
            )
            .options(joinedload(AuditEvent.actor), joinedload(AuditEvent.conversation), joinedload(AuditEvent.message))
            .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        )
    )


MAX_LISTED = 500


def late_failures_between(since: datetime, until: datetime, *, agent_id: int | None = None) -> list[Message]:
    """Agents' sends that WhatsApp failed after Vambe accepted them, learnt in the period, newest first: one
    agent's, or everyone's."""
    query = (
        select(Message)
        .where(Message.failed_late_at >= since, Message.failed_late_at < until)
        .options(joinedload(Message.author_user), joinedload(Message.conversation))
        .order_by(Message.failed_late_at.desc(), Message.id.desc())
        .limit(MAX_LISTED)
    )
    if agent_id is not None:
        query = query.where(Message.author_user_id == agent_id)
    return list(db.session.scalars(query))


def incidents_between(since: datetime, until: datetime) -> list[AuditEvent]:
    """The AI (or another tool) writing after a takeover, newest first, with the message and whether a lead
    marked it as intended (``resumed_by``, set on each event returned)."""
    incidents = list(
        db.session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.kind == AuditKind.AI_AFTER_TAKEOVER,
                AuditEvent.occurred_at >= since,
                AuditEvent.occurred_at < until,
            )
            .options(joinedload(AuditEvent.conversation), joinedload(AuditEvent.message))
            .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        )
    )
    excused = {
        event.details.get("incident"): event
        for event in db.session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.kind == AuditKind.RESUMED_ON_PURPOSE,
                AuditEvent.message_id.in_([incident.message_id for incident in incidents]),
            )
            .options(joinedload(AuditEvent.actor))
        )
    }
    for incident in incidents:
        incident.resumed_by = excused.get(incident.id)
    return incidents


def mark_resumed_on_purpose(incident: AuditEvent, lead: User, *, now: datetime) -> None:
    """A lead's word that the AI's return was intended (someone resumed it in Vambe); commits, once."""
    already = db.session.scalar(
        select(AuditEvent.id).where(
            AuditEvent.kind == AuditKind.RESUMED_ON_PURPOSE, AuditEvent.message_id == incident.message_id
        )
    )
    if already is not None:
        return
    db.session.add(
        AuditEvent(
            occurred_at=now,
            kind=AuditKind.RESUMED_ON_PURPOSE,
            actor=lead,
            conversation_id=incident.conversation_id,
            message_id=incident.message_id,
            details={"incident": incident.id},
        )
    )
    db.session.commit()


def incidents_per_day(since: datetime, until: datetime, zone: ZoneInfo) -> list[tuple[date, int]]:
    """How many times per local day the AI (or another tool) wrote after a takeover; the days with any."""
    counts = Counter(
        moment.astimezone(zone).date()
        for moment in db.session.scalars(
            select(AuditEvent.occurred_at).where(
                AuditEvent.kind == AuditKind.AI_AFTER_TAKEOVER,
                AuditEvent.occurred_at >= since,
                AuditEvent.occurred_at < until,
            )
        )
    )
    return [(day, counts[day]) for day in days_of(since, until, zone) if counts[day]]


def totals_per_agent(rows: list[AgentDay]) -> list[AgentDay]:
    totals: dict[int | None, AgentDay] = {}
    for row in rows:
        total = totals.setdefault(row.agent_id, AgentDay(row.agent, row.day, agent_id=row.agent_id))
        total.conversations |= row.conversations
        total.messages_sent += row.messages_sent
        total.response_times += row.response_times
        total.overrides += row.overrides
        total.failed += row.failed
        total.unknown += row.unknown
        total.first_responses += row.first_responses
    return list(totals.values())


def volume_per_day(rows: list[AgentDay], since: datetime, until: datetime, zone: ZoneInfo) -> list[tuple[date, int]]:
    counts = defaultdict(int)
    for row in rows:
        counts[row.day] += row.messages_sent
    return [(day, counts[day]) for day in days_of(since, until, zone)]


def days_of(since: datetime, until: datetime, zone: ZoneInfo) -> list[date]:
    """Every local day of the period [since, until)."""
    first, last = since.astimezone(zone).date(), (until - timedelta(microseconds=1)).astimezone(zone).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def distribution(response_times: Iterable[timedelta]) -> list[tuple[str, int]]:
    counts = Counter()
    for value in response_times:
        label = next(label for bound, label in RESPONSE_BUCKETS if bound is None or value < bound)
        counts[label] += 1
    return [(label, counts[label]) for _, label in RESPONSE_BUCKETS]


@dataclass
class ConversationRow:
    """One conversation's period, for the one-row-per-conversation export."""

    conversation: Conversation
    handoff_at: datetime | None = None  # the first handoff requested in the period
    first_human_reply_at: datetime | None = None  # the first send of a person in the period that did not fail
    messages: Counter = field(default_factory=Counter)  # author -> messages in the period
    overrides: int = 0
    failures: int = 0
    incidents: int = 0
    review_score: int | None = None  # the latest review's, whenever it was given
    reviewed_at: datetime | None = None


def conversation_rows(since: datetime, until: datetime) -> list[ConversationRow]:
    """Every conversation with a message in the period, with what happened in it: a handful of grouped queries,
    whatever the number of conversations."""
    in_period = (Message.occurred_at >= since, Message.occurred_at < until)
    rows: dict[int, ConversationRow] = {}
    counted = db.session.execute(
        select(Message.conversation_id, Message.author, func.count())
        .where(*in_period)
        .group_by(Message.conversation_id, Message.author)
    )
    for conversation_id, author, count in counted:
        rows.setdefault(conversation_id, ConversationRow(None)).messages[author] = count
    if not rows:
        return []
    ids = list(rows)
    for conversation in db.session.scalars(
        select(Conversation).where(Conversation.id.in_(ids)).options(joinedload(Conversation.assignee))
    ):
        rows[conversation.id].conversation = conversation
    sends = db.session.execute(
        select(
            Message.conversation_id,
            func.min(case((Message.outcome != Outcome.FAILED, Message.occurred_at))),
            func.sum(case((Message.window_override.is_(True), 1), else_=0)),
            func.sum(case((Message.outcome == Outcome.FAILED, 1), else_=0)),
        )
        .where(*in_period, Message.author == Author.AGENT)
        .group_by(Message.conversation_id)
    )
    for conversation_id, first_reply, overrides, failures in sends:
        row = rows[conversation_id]
        row.first_human_reply_at, row.overrides, row.failures = aware(first_reply), int(overrides), int(failures)
    for conversation_id, requested in db.session.execute(
        select(Handoff.conversation_id, func.min(Handoff.requested_at))
        .where(Handoff.conversation_id.in_(ids), Handoff.requested_at >= since, Handoff.requested_at < until)
        .group_by(Handoff.conversation_id)
    ):
        rows[conversation_id].handoff_at = aware(requested)
    for conversation_id, count in db.session.execute(
        select(AuditEvent.conversation_id, func.count())
        .where(
            AuditEvent.conversation_id.in_(ids),
            AuditEvent.kind == AuditKind.AI_AFTER_TAKEOVER,
            AuditEvent.occurred_at >= since,
            AuditEvent.occurred_at < until,
        )
        .group_by(AuditEvent.conversation_id)
    ):
        rows[conversation_id].incidents = count
    latest_review = (
        select(ReviewItem.conversation_id, ReviewItem.score, ReviewItem.reviewed_at)
        .where(ReviewItem.conversation_id.in_(ids), ReviewItem.reviewed_at.is_not(None))
        .order_by(ReviewItem.reviewed_at, ReviewItem.id)
    )
    for conversation_id, score, reviewed_at in db.session.execute(latest_review):
        rows[conversation_id].review_score, rows[conversation_id].reviewed_at = score, reviewed_at
    return sorted(rows.values(), key=lambda row: row.conversation.id)


def aware(moment: datetime | str | None) -> datetime | None:
    """An aggregate's time: SQLite hands MIN() back as text, without the column's type."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment
