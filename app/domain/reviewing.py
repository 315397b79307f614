"""The review queue: conversations sampled by rules a lead can see and switch, read and scored by leads.

Sampling is incremental: each pass looks at what happened since the last one (kept in ``job_runs``) and adds the
conversations that match an enabled rule. A conversation waits in the queue once, with every reason it matched.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from app.domain.jobs import record_run, single_runner
from app.domain.window import WINDOW_LENGTH
from app.extensions import db
from app.i18n import lazy_gettext as _l
from app.models import (
    AuditEvent,
    AuditKind,
    Author,
    Conversation,
    Handoff,
    JobRun,
    Message,
    Outcome,
    ReviewComment,
    ReviewItem,
    ReviewReason,
    ReviewRule,
    User,
)

SAMPLING_JOB = "review-sampling"
FIRST_LOOK_BACK = timedelta(days=7)  # how far the very first pass looks
# The rules' one setting: (smallest, largest, what it means).
SETTINGS = {
    ReviewReason.LONG_WAIT: (1, 24 * 60, _l("minutes in the handoff queue")),
    ReviewReason.RANDOM: (0, 100, _l("percent of the resolved conversations")),
}
MAX_NOTE = 2000
MAX_COMMENT = 2000
SCORES = range(1, 6)


class ReviewRefused(ValueError):
    """A rule setting, comment or verdict that cannot be taken; the message says why."""


class UnknownRule(ReviewRefused):
    """No review rule has that name."""


def rules() -> list[ReviewRule]:
    """Every rule, in the order the queue page lists them."""
    found = {rule.reason: rule for rule in db.session.scalars(select(ReviewRule))}
    return [found[reason] for reason in ReviewReason if reason in found]


def change_rule(reason: str, *, enabled: bool, setting: int | None, actor: User, now: datetime) -> ReviewRule:
    """Switch a rule on or off and set its one setting; audited, commits."""
    rule = db.session.get(ReviewRule, reason)
    if rule is None:
        raise UnknownRule(_l("There is no review rule “%(rule)s”.", rule=reason[:40]))
    if reason in SETTINGS:
        low, high, meaning = SETTINGS[reason]
        if setting is None or not low <= setting <= high:
            raise ReviewRefused(
                _l("Give a whole number from %(low)d to %(high)d (%(meaning)s).", low=low, high=high, meaning=meaning)
            )
        rule.setting = setting
    rule.enabled, rule.updated_at, rule.updated_by = enabled, now, actor
    db.session.add(
        AuditEvent(
            occurred_at=now,
            kind=AuditKind.REVIEW_RULE_CHANGED,
            actor=actor,
            details={"rule": reason, "enabled": enabled, "setting": rule.setting},
        )
    )
    db.session.commit()
    return rule


def sample(*, now: datetime) -> int | None:
    """Add to the queue what matched an enabled rule since the last pass; commits. Returns how many
    conversations entered the queue, or None when another pass is running."""
    with single_runner(SAMPLING_JOB) as mine:
        if not mine:
            return None
        since = last_sampled_until() or now - FIRST_LOOK_BACK
        matched = matches(since, now)
        added = sum(queue(conversation_id, reasons, now) for conversation_id, reasons in matched.items())
        record_run(SAMPLING_JOB, started_at=since, finished_at=now, summary={"added": added})
        return added


def last_sampled_until() -> datetime | None:
    run = db.session.get(JobRun, SAMPLING_JOB)
    return run.finished_at if run else None


def matches(since: datetime, until: datetime) -> dict[int, list[str]]:
    """Conversation ids, each with the enabled rules it matched in [since, until)."""
    found: dict[int, list[str]] = {}
    for rule in rules():
        if rule.enabled:
            for conversation_id in RULES[rule.reason](since, until, rule.setting):
                found.setdefault(conversation_id, []).append(rule.reason)
    return found


def closed_before_a_person_replied(since: datetime, until: datetime, _setting) -> set[int]:
    """Windows that closed in the period with the customer's last message unanswered by a person, in
    conversations a person was on (assigned, the AI paused, or handed over)."""
    handed_over = select(Handoff.id).where(Handoff.conversation_id == Conversation.id).exists()
    return set(
        db.session.scalars(
            select(Conversation.id).where(
                Conversation.last_inbound_at >= since - WINDOW_LENGTH,
                Conversation.last_inbound_at < until - WINDOW_LENGTH,
                (Conversation.last_human_reply_at.is_(None))
                | (Conversation.last_human_reply_at < Conversation.last_inbound_at),
                Conversation.assignee_id.is_not(None) | Conversation.assistant_paused_at.is_not(None) | handed_over,
            )
        )
    )


def overridden(since: datetime, until: datetime, _setting) -> set[int]:
    return set(
        db.session.scalars(
            select(Message.conversation_id).where(
                Message.window_override.is_(True), Message.occurred_at >= since, Message.occurred_at < until
            )
        )
    )


def failed_or_unknown(since: datetime, until: datetime, _setting) -> set[int]:
    return set(
        db.session.scalars(
            select(Message.conversation_id).where(
                Message.author == Author.AGENT,
                Message.outcome.in_((Outcome.FAILED, Outcome.UNKNOWN)),
                Message.updated_at >= since,
                Message.updated_at < until,
            )
        )
    )


def incidents(since: datetime, until: datetime, _setting) -> set[int]:
    return set(
        db.session.scalars(
            select(AuditEvent.conversation_id).where(
                AuditEvent.kind == AuditKind.AI_AFTER_TAKEOVER,
                AuditEvent.occurred_at >= since,
                AuditEvent.occurred_at < until,
            )
        )
    )


def waited_long(since: datetime, until: datetime, minutes: int) -> set[int]:
    """Handoffs whose wait for a person passed ``minutes`` within the period."""
    limit = timedelta(minutes=minutes)
    candidates = db.session.scalars(
        select(Handoff).where(Handoff.requested_at >= since - limit, Handoff.requested_at < until - limit)
    )
    return {
        handoff.conversation_id
        for handoff in candidates
        if (ended := first_of(handoff.taken_at, handoff.answered_at, handoff.ended_at)) is None
        or ended - handoff.requested_at > limit
    }


def first_of(*moments: datetime | None) -> datetime | None:
    known = [moment for moment in moments if moment is not None]
    return min(known) if known else None


def random_share(since: datetime, until: datetime, percent: int) -> set[int]:
    """A stable ``percent`` share of the conversations resolved in the period: the same resolution is always in
    or always out, whichever instance samples it."""
    resolved = db.session.execute(
        select(AuditEvent.id, AuditEvent.conversation_id).where(
            AuditEvent.kind == AuditKind.RESOLVED, AuditEvent.occurred_at >= since, AuditEvent.occurred_at < until
        )
    )
    return {conversation_id for event_id, conversation_id in resolved if in_share(event_id, percent)}


def in_share(event_id: int, percent: int) -> bool:
    draw = int.from_bytes(hashlib.sha256(f"review:{event_id}".encode()).digest()[:4], "big") % 100
    return draw < percent


RULES = {
    ReviewReason.WINDOW_CLOSED_UNANSWERED: closed_before_a_person_replied,
    ReviewReason.OVERRIDE: overridden,
    ReviewReason.FAILED_SEND: failed_or_unknown,
    ReviewReason.INCIDENT: incidents,
    ReviewReason.LONG_WAIT: waited_long,
    ReviewReason.RANDOM: random_share,
}


def queue(conversation_id: int, reasons: list[str], now: datetime) -> bool:
    """Put the conversation in the queue, or add reasons to its pending review; True when it entered the queue."""
    pending = db.session.scalar(
        select(ReviewItem).where(ReviewItem.conversation_id == conversation_id, ReviewItem.reviewed_at.is_(None))
    )
    if pending is not None:
        pending.reasons = pending.reasons + [reason for reason in reasons if reason not in pending.reasons]
        return False
    conversation = db.session.get(Conversation, conversation_id)
    db.session.add(
        ReviewItem(
            conversation=conversation,
            reasons=list(reasons),
            sampled_at=now,
            agent_id=conversation.assignee_id or last_replier(conversation_id),
        )
    )
    return True


def last_replier(conversation_id: int) -> int | None:
    return db.session.scalar(
        select(Message.author_user_id)
        .where(Message.conversation_id == conversation_id, Message.author == Author.AGENT)
        .order_by(Message.id.desc())
        .limit(1)
    )


def pending_reviews() -> list[ReviewItem]:
    return list(
        db.session.scalars(
            select(ReviewItem).where(ReviewItem.reviewed_at.is_(None)).order_by(ReviewItem.sampled_at, ReviewItem.id)
        )
    )


def recent_reviews(limit: int = 20) -> list[ReviewItem]:
    return list(
        db.session.scalars(
            select(ReviewItem)
            .where(ReviewItem.reviewed_at.is_not(None))
            .order_by(ReviewItem.reviewed_at.desc(), ReviewItem.id.desc())
            .limit(limit)
        )
    )


def reviews_of(agent_id: int, since: datetime, until: datetime) -> list[ReviewItem]:
    """The reviews an agent's score in the period counts (as ``scores_between`` counts them)."""
    return list(
        db.session.scalars(
            select(ReviewItem)
            .where(ReviewItem.agent_id == agent_id, ReviewItem.reviewed_at >= since, ReviewItem.reviewed_at < until)
            .order_by(ReviewItem.reviewed_at.desc(), ReviewItem.id.desc())
        )
    )


def comments_by_message(item: ReviewItem) -> dict[int, list[ReviewComment]]:
    found: dict[int, list[ReviewComment]] = {}
    for comment in db.session.scalars(
        select(ReviewComment).where(ReviewComment.review_item_id == item.id).order_by(ReviewComment.id)
    ):
        found.setdefault(comment.message_id, []).append(comment)
    return found


def comment(item: ReviewItem, message_id: int | None, body: str, *, author: User, now: datetime) -> ReviewComment:
    """A lead's comment on one message of the conversation under review; commits."""
    text = body.strip()
    if not text:
        raise ReviewRefused(_l("Write the comment first."))
    if len(text) > MAX_COMMENT:
        raise ReviewRefused(_l("A comment is at most %(count)d characters.", count=MAX_COMMENT))
    message = db.session.get(Message, message_id) if message_id else None
    if message is None or message.conversation_id != item.conversation_id:
        raise ReviewRefused(_l("That message is not part of this conversation."))
    note = ReviewComment(review_item_id=item.id, message_id=message.id, author=author, body=text, created_at=now)
    db.session.add(note)
    db.session.commit()
    return note


def give_verdict(item: ReviewItem, score: int | None, note: str, *, reviewer: User, now: datetime) -> ReviewItem:
    """Score the conversation (1 to 5) with a note and mark it reviewed; audited, commits. A review is given
    once: a second verdict is refused, so no score is silently replaced."""
    if item.reviewed_at is not None:
        by = item.reviewed_by.name if item.reviewed_by else _l("someone")
        raise ReviewRefused(_l("%(name)s already reviewed this conversation.", name=by))
    if score not in SCORES:
        raise ReviewRefused(_l("Give a score from 1 to 5."))
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise ReviewRefused(_l("The note is at most %(count)d characters.", count=MAX_NOTE))
    item.score, item.note, item.reviewed_at, item.reviewed_by = score, note, now, reviewer
    db.session.add(
        AuditEvent(
            occurred_at=now,
            kind=AuditKind.REVIEWED,
            actor=reviewer,
            conversation_id=item.conversation_id,
            details={"review": item.id, "score": score, "agent_id": item.agent_id},
        )
    )
    db.session.commit()
    return item


@dataclass(frozen=True)
class AgentScores:
    agent_id: int
    agent: str
    reviews: int
    average: float


def scores_between(since: datetime, until: datetime) -> list[AgentScores]:
    """Per agent: the reviews given in the period and their average score."""
    rows = db.session.execute(
        select(User.id, User.name, func.count(ReviewItem.id), func.avg(ReviewItem.score))
        .join(User, User.id == ReviewItem.agent_id)
        .where(ReviewItem.reviewed_at >= since, ReviewItem.reviewed_at < until)
        .group_by(User.id, User.name)
        .order_by(User.name, User.id)
    )
    return [AgentScores(agent_id, name, count, float(average)) for agent_id, name, count, average in rows]
