"""The handoff queue: who needs a person now, why, and until when a person first answered.

A conversation enters the queue when Vambe marks its contact as waiting for a human, when the customer asks for
a person in their own words, or when its window is closing with the customer's message unanswered. It leaves
the queue when someone takes it or replies; the handoff ends with the first human reply (its first-response
time) or when the conversation is resolved.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.domain.window import WINDOW_LENGTH, WindowState, window_condition
from app.extensions import db
from app.i18n import lazy_gettext as _l
from app.models import (
    AuditEvent,
    AuditKind,
    Author,
    Conversation,
    ConversationStatus,
    Handoff,
    HandoffPhrase,
    HandoffReason,
    Message,
    User,
    searchable_text,
)

# Vambe's analytics statuses for a contact whose AI stepped back and who waits for a person.
WAITING_STATUSES = ("unattended", "ai-away")
# How many of the oldest waiting conversations "Take next" tries before it says another agent was faster.
TAKE_NEXT_CANDIDATES = 5

QUEUED_BECAUSE = {  # as the thread's event line reads: "Handoff put it in the queue for a human (…)"
    HandoffReason.PHRASE: "the customer asked for a person: {detail}",
    HandoffReason.VAMBE_STATUS: "Vambe: {detail}",
    HandoffReason.CLOSING_WINDOW: "window closing, customer unanswered",
}

WAITING = and_(Handoff.ended_at.is_(None), Handoff.taken_at.is_(None))


class NothingWaiting(Exception):
    """Take next found no conversation waiting for a human (or every one went to another agent meanwhile)."""

    def __init__(self, raced: bool):
        self.raced = raced
        super().__init__(
            _l("Another agent just took the conversation that was waiting.")
            if raced
            else _l("Nobody is waiting for a human right now.")
        )


def words_of(text: str) -> str:
    """``text`` as single-spaced words, folded for matching: "¿Puedo HABLAR con una persona?" -> "puedo hablar con
    una persona". Phrases and messages are compared in this form, so punctuation, case and accents never matter."""
    return " ".join(re.findall(r"\w+", searchable_text(text)))


def phrase_asking_for_person(text: str) -> HandoffPhrase | None:
    """The admins' phrase that ``text`` contains as whole words, if any."""
    said = f" {words_of(text)} "
    for phrase in db.session.scalars(select(HandoffPhrase).order_by(HandoffPhrase.id)):
        wanted = words_of(phrase.folded)
        if wanted and f" {wanted} " in said:
            return phrase
    return None


def open_handoff(conversation: Conversation) -> Handoff | None:
    return db.session.scalar(
        select(Handoff).where(Handoff.conversation_id == conversation.id, Handoff.ended_at.is_(None))
    )


def request_handoff(
    conversation: Conversation, reason: HandoffReason, detail: str, *, since: datetime, now: datetime
) -> Handoff | None:
    """Queue the conversation because its customer has needed a person since ``since``; None when it is already
    in the queue or being handled, or a person has dealt with it since then (a stale report). Never commits."""
    if conversation.status != ConversationStatus.OPEN or handled_since(conversation, since):
        return None
    handoff = Handoff(conversation_id=conversation.id, reason=reason, detail=detail[:200], requested_at=min(since, now))
    try:
        # The unique index on open handoffs settles two deliveries racing to queue the same conversation.
        with db.session.begin_nested():
            db.session.add(handoff)
    except IntegrityError:
        return None
    db.session.add(
        AuditEvent(
            occurred_at=now,
            kind=AuditKind.HANDOFF_REQUESTED,
            conversation_id=conversation.id,
            details={"reason": QUEUED_BECAUSE[reason].format(detail=detail), "detail": detail},
        )
    )
    return handoff


def handled_since(conversation: Conversation, since: datetime) -> bool:
    """Whether the conversation has an open handoff, or a person answered or closed one at or after ``since``."""
    if conversation.last_human_reply_at is not None and conversation.last_human_reply_at >= since:
        return True
    return bool(
        db.session.scalar(
            select(
                exists().where(
                    Handoff.conversation_id == conversation.id,
                    or_(Handoff.ended_at.is_(None), Handoff.ended_at >= since),
                )
            )
        )
    )


def notice_customer_message(message: Message, *, now: datetime) -> Handoff | None:
    """Queue the conversation when a new customer message asks for a person, while a person can still answer
    it freely (an old message found by a backfill is history, not a request)."""
    if message.author != Author.CUSTOMER or message.occurred_at <= now - WINDOW_LENGTH:
        return None
    phrase = phrase_asking_for_person(message.body)
    if phrase is None:
        return None
    return request_handoff(
        message.conversation, HandoffReason.PHRASE, phrase.phrase, since=message.occurred_at, now=now
    )


def notice_vambe_status(conversation: Conversation, status: str | None, *, since: datetime, now: datetime):
    """Queue the conversation when Vambe says its contact waits for a human ("unattended", "ai-away")."""
    status = (status or "").strip().lower().replace("_", "-")
    if status not in WAITING_STATUSES:
        return None
    return request_handoff(conversation, HandoffReason.VAMBE_STATUS, status, since=since, now=now)


def queue_closing_windows(*, now: datetime, warning: timedelta) -> int:
    """Queue every open conversation whose window closes within ``warning`` while nobody (AI or person) has
    answered the customer's last message: after that only a template reaches them. Never commits; returns how many."""
    closing = select(Conversation).where(
        Conversation.status == ConversationStatus.OPEN,
        window_condition(WindowState.CLOSING, now, warning),
        Conversation.last_inbound_at >= Conversation.last_message_at,  # the customer wrote last
        unanswered_by_human(),
        ~exists().where(Handoff.conversation_id == Conversation.id, Handoff.ended_at.is_(None)),
    )
    queued = 0
    for conversation in db.session.scalars(closing).all():
        since = conversation.last_inbound_at + WINDOW_LENGTH - warning
        if request_handoff(conversation, HandoffReason.CLOSING_WINDOW, "", since=since, now=now) is not None:
            queued += 1
    return queued


def unanswered_by_human():
    """SQL: the customer's last message has no human reply after it (an AI answer does not count)."""
    return and_(
        Conversation.last_inbound_at.is_not(None),
        or_(
            Conversation.last_human_reply_at.is_(None),
            Conversation.last_human_reply_at < Conversation.last_inbound_at,
        ),
    )


def record_human_reply(message: Message, agent: User, *, now: datetime) -> None:
    """A person answered (Vambe accepted the reply, or may have): the conversation leaves the queue and its open
    handoff ends, with its first-response time. Never commits."""
    conversation = message.conversation
    if conversation.last_human_reply_at is None or conversation.last_human_reply_at < message.occurred_at:
        conversation.last_human_reply_at = message.occurred_at
    db.session.execute(
        update(Handoff)
        .where(Handoff.conversation_id == conversation.id, Handoff.ended_at.is_(None))
        .values(
            taken_at=func.coalesce(Handoff.taken_at, now),
            taken_by_id=func.coalesce(Handoff.taken_by_id, agent.id),
            answered_at=message.occurred_at,
            answered_by_id=agent.id,
            answer_message_id=message.id,
            ended_at=now,
        )
    )


def record_taken(conversation: Conversation, assignee: User | None, *, now: datetime) -> None:
    """Assigning a waiting conversation takes it out of the queue; unassigning one nobody has answered yet puts
    it back, still waiting since it first asked. Never commits."""
    still_open = and_(Handoff.conversation_id == conversation.id, Handoff.ended_at.is_(None))
    if assignee is None:
        db.session.execute(update(Handoff).where(still_open).values(taken_at=None, taken_by_id=None))
    else:
        db.session.execute(
            update(Handoff).where(still_open, Handoff.taken_at.is_(None)).values(taken_at=now, taken_by_id=assignee.id)
        )


def record_resolved(conversation: Conversation, *, now: datetime) -> None:
    """Resolving ends the open handoff, unanswered: it no longer waits, and has no first-response time."""
    db.session.execute(
        update(Handoff)
        .where(Handoff.conversation_id == conversation.id, Handoff.ended_at.is_(None))
        .values(ended_at=now)
    )


def take_next(agent: User, *, now: datetime) -> tuple[Conversation, Handoff]:
    """Give ``agent`` the conversation that has waited longest (unassigned, or already theirs); commits.

    Two agents clicking at once never get the same one: the conditional UPDATE lets exactly one of them take it,
    and the other moves on to the next, or hears that nothing is left. Raises NothingWaiting."""
    candidates = db.session.scalars(
        select(Handoff)
        .join(Conversation, Conversation.id == Handoff.conversation_id)
        .where(
            WAITING,
            Conversation.status == ConversationStatus.OPEN,
            or_(Conversation.assignee_id.is_(None), Conversation.assignee_id == agent.id),
        )
        .order_by(Handoff.requested_at, Handoff.id)
        .limit(TAKE_NEXT_CANDIDATES)
    ).all()
    for handoff in candidates:
        took = db.session.execute(
            update(Handoff).where(Handoff.id == handoff.id, WAITING).values(taken_at=now, taken_by_id=agent.id)
        ).rowcount
        assigned = (
            took
            and db.session.execute(
                update(Conversation)
                .where(
                    Conversation.id == handoff.conversation_id,
                    or_(Conversation.assignee_id.is_(None), Conversation.assignee_id == agent.id),
                )
                .values(assignee_id=agent.id)
            ).rowcount
        )
        if not assigned:
            db.session.rollback()  # another agent was faster: try the next one
            continue
        db.session.add(
            AuditEvent(
                occurred_at=now,
                kind=AuditKind.HANDOFF_TAKEN,
                actor=agent,
                conversation_id=handoff.conversation_id,
                details={"waited_seconds": int((now - handoff.requested_at).total_seconds())},
            )
        )
        db.session.commit()
        db.session.refresh(handoff)
        return db.session.get(Conversation, handoff.conversation_id), handoff
    raise NothingWaiting(raced=bool(candidates))


def last_assistant_message(conversation: Conversation) -> Message | None:
    """What the AI last told the customer, so the person taking over does not repeat it."""
    return db.session.scalar(
        select(Message)
        .where(Message.conversation_id == conversation.id, Message.author == Author.ASSISTANT)
        .order_by(Message.occurred_at.desc(), Message.id.desc())
        .limit(1)
    )


@dataclass(frozen=True)
class Alerts:
    """The header's counts. ``unassigned_*`` are for leads only (None for agents)."""

    waiting: int
    mine_closing: int
    mine_unanswered: int
    my_late_failures: int = 0  # the viewer's sends WhatsApp failed after Vambe accepted them, not yet seen
    unassigned_closing: int | None = None
    unassigned_unanswered: int | None = None


def alerts_for(viewer: User, *, now: datetime, warning: timedelta, lead: bool) -> Alerts:
    """Who needs a human now, as ``viewer`` sees it, in one statement."""
    open_ = Conversation.status == ConversationStatus.OPEN
    closing = window_condition(WindowState.CLOSING, now, warning)
    unanswered = unanswered_by_human()
    mine = Conversation.assignee_id == viewer.id
    nobody = Conversation.assignee_id.is_(None)

    def count(*conditions):
        return select(func.count(Conversation.id)).where(open_, *conditions).scalar_subquery()

    waiting = (
        select(func.count(Handoff.id))
        .join(Conversation, Conversation.id == Handoff.conversation_id)
        .where(WAITING, open_)
        .scalar_subquery()
    )
    late_failures = (
        select(func.count(Message.id))
        .where(
            Message.author_user_id == viewer.id,
            Message.failed_late_at.is_not(None),
            Message.late_failure_seen_at.is_(None),
        )
        .scalar_subquery()
    )
    columns = [waiting, count(mine, closing), count(mine, unanswered), late_failures]
    if lead:
        columns += [count(nobody, closing), count(nobody, unanswered)]
    return Alerts(*db.session.execute(select(*columns)).one())
