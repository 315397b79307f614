"""Sending an agent's reply: validate, record, call Vambe once, record the outcome."""

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.domain.handoffs import record_human_reply, record_taken
from app.domain.ingesting import advance_conversation, advance_outcome
from app.domain.templates import TemplateRefused, filled
from app.domain.window import WindowStatus, window_status
from app.extensions import db
from app.i18n import N_
from app.i18n import lazy_gettext as _l
from app.models import (
    AuditEvent,
    AuditKind,
    Author,
    BusinessNumber,
    Conversation,
    Direction,
    Message,
    MessageTemplate,
    Outcome,
    User,
    WebhookDelivery,
)
from app.vambe import Accepted, SessionMessage, VambeClient, VambeError

log = logging.getLogger(__name__)

MAX_MESSAGE_LENGTH = 4096  # WhatsApp's cap on a text body
MIN_REASON = 3  # an override's reason: a few words, but something
# WhatsApp's answer to a free-form message outside the window (error 131047), however Vambe words it.
REENGAGEMENT = re.compile(r"131047|re-?engagement|24 ?hours? (have )?passed|outside (of )?the (24|customer)", re.I)
IDEMPOTENCY_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{8,64}")


class SendRefused(Exception):
    """The reply cannot be sent as asked; nothing was stored or sent."""


class NewerReply(Exception):
    """Someone else replied to the contact after the agent's composer was loaded."""

    def __init__(self, message: Message):
        super().__init__("someone else replied while the agent was typing")
        self.message = message


class OutsideWindow(Exception):
    """The 24h window is not open and the agent has not confirmed sending anyway, with a reason."""

    def __init__(self, window: WindowStatus, reason_missing: bool = False):
        super().__init__(f"the 24h window is {window.state}")
        self.window = window
        self.reason_missing = reason_missing  # the agent confirmed, but did not say why


@dataclass(frozen=True)
class Reply:
    """What the agent asked to send."""

    text: str
    idempotency_key: str
    pause_assistant: bool = True
    quoted_message_id: int | None = None
    business_number_id: int | None = None
    confirmed_outside_window: bool = False
    override_reason: str = ""  # why a free-form message goes out although the window is not open
    # The newest message the agent had seen when the composer was rendered.
    seen_through_message_id: int | None = None
    confirmed_newer_reply: bool = False


def send_reply(
    conversation: Conversation,
    agent: User,
    reply: Reply,
    *,
    client: VambeClient,
    now: datetime,
    warning: timedelta,
    assign_unassigned: bool = True,
) -> Message:
    """Send ``reply`` once per idempotency key and return its message, settled to its outcome. Replying to an
    unassigned conversation assigns it to the agent, unless the installation turned that off.

    Raises SendRefused, NewerReply or OutsideWindow before anything is stored. The message is committed as
    ``sending`` before Vambe is called, so a crash or a repeated request can never send twice.
    """
    existing = lock_for_sending(conversation, reply.idempotency_key)
    if existing is not None:
        return existing
    try:
        text = validated_text(reply.text)
        quoted = validated_quote(conversation, reply.quoted_message_id)
        number = chosen_business_number(conversation, reply.business_number_id)
        newer = newer_reply(conversation, agent, reply.seen_through_message_id)
        if newer is not None and not reply.confirmed_newer_reply:
            raise NewerReply(newer)
        window = window_status(conversation.last_inbound_at, now, warning)
        reason = " ".join(reply.override_reason.split())
        if not window.allows_free_form and not (reply.confirmed_outside_window and len(reason) >= MIN_REASON):
            raise OutsideWindow(window, reason_missing=reply.confirmed_outside_window)
    except (SendRefused, NewerReply, OutsideWindow):
        db.session.rollback()  # nothing stored; let the next send go
        raise

    message = agent_message(
        conversation,
        agent,
        text,
        reply.idempotency_key,
        now,
        quoted_message=quoted,
        pause_assistant=reply.pause_assistant,
        business_number=number,
        window_override=not window.allows_free_form,
    )
    events = [override_event(message, agent, window, reason, now)] if message.window_override else []
    if newer is not None:
        events.append(newer_reply_event(message, agent, newer, now))
    stored = commit_sending(message, agent, events, assign_unassigned=assign_unassigned, now=now)
    if stored is not message:
        return stored

    outgoing = SessionMessage(
        message=text,
        pause_assistant=reply.pause_assistant,
        contact_id=conversation.vambe_contact_id,
        phone=None if conversation.vambe_contact_id else conversation.phone,
        reply_message_id=quoted.provider_message_id if quoted else None,
        from_phone_number=number.phone_number if number else None,
    )
    deliver(message, lambda: client.send_session_message(outgoing), agent, pause=reply.pause_assistant, now=now)
    return message


def agent_message(
    conversation: Conversation, agent: User, text: str, idempotency_key: str, now: datetime, **fields
) -> Message:
    """An agent's message about to go out: "sending" until Vambe answers."""
    return Message(
        conversation=conversation,
        direction=Direction.OUTBOUND,
        author=Author.AGENT,
        author_user=agent,
        body=text,
        outcome=Outcome.SENDING,
        idempotency_key=idempotency_key,
        occurred_at=now,
        created_at=now,
        updated_at=now,
        **fields,
    )


def lock_for_sending(conversation: Conversation, idempotency_key: str) -> Message | None:
    """Take the conversation's send lock; the message already sent under ``idempotency_key``, if any (then the
    lock is released at once).

    One send at a time per conversation, until this one is committed as "sending": a second agent's send waits
    here, then sees this reply as newer than what they had seen. (On SQLite this takes the write lock.)"""
    db.session.execute(update(Conversation).where(Conversation.id == conversation.id).values(id=Conversation.id))
    existing = message_with_key(idempotency_key, conversation)
    if existing is not None:
        db.session.rollback()
    return existing


def commit_sending(
    message: Message, agent: User, events: list[AuditEvent], *, assign_unassigned: bool, now: datetime
) -> Message:
    """Store ``message`` as "sending", with its audit ``events``, and commit before Vambe is called. Returns it, or
    the message a request with the same key stored first (a double click fails at the INSERT, right here)."""
    conversation = message.conversation
    db.session.add(message)
    try:
        db.session.flush()
        advance_conversation(conversation.id, Direction.OUTBOUND, now)
        db.session.add_all(events)
        if assign_unassigned and conversation.assignee_id is None:
            assign_to_replier(conversation, agent, now)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return message_with_key(message.idempotency_key, conversation)
    return message


def deliver(message: Message, call: Callable[[], Accepted], agent: User, *, pause: bool, now: datetime) -> None:
    """Make the one Vambe ``call`` for ``message`` and commit its outcome."""
    try:
        accepted = call()
    except VambeError as error:
        settle(message, Outcome.UNKNOWN if error.delivery_unknown else Outcome.FAILED, error.agent_message, now)
    except Exception:
        log.exception("unexpected error while sending message %s", message.id)
        settle(
            message,
            Outcome.UNKNOWN,
            N_(
                "Handoff hit an unexpected error while sending. The message may or may not have been delivered: "
                "check the conversation before sending it again."
            ),
            now,
        )
    else:
        record_acceptance(message, accepted.provider_message_id, agent, pause=pause, now=now)
    if message.outcome != Outcome.FAILED:  # sent, or may have been: either way the customer was answered
        record_human_reply(message, agent, now=now)
    db.session.commit()


def assign_to_replier(conversation: Conversation, agent: User, now: datetime) -> None:
    conversation.assignee = agent
    record_taken(conversation, agent, now=now)
    db.session.add(
        AuditEvent(
            occurred_at=now,
            kind=AuditKind.ASSIGNED,
            actor=agent,
            conversation=conversation,
            details={"from": None, "to": agent.name, "why": "replied"},
        )
    )


def record_acceptance(message: Message, provider_message_id: str | None, agent: User, *, pause: bool, now: datetime):
    """Settle ``message`` as sent after Vambe's 201. Recording it must not fail the send that already happened:
    should the id clash with what a webhook stored meanwhile, the message is still settled, without the id."""
    try:
        # Vambe's 201 body is undocumented; the id usually arrives later (webhook or history).
        settle(message, Outcome.SENT, None, now, provider_message_id=provider_message_id)
        if pause:
            pause_assistant(message.conversation, agent, message, now)
        db.session.flush()
    except SQLAlchemyError:
        log.exception("could not record Vambe's id %r for message %s", provider_message_id, message.id)
        db.session.rollback()
        settle(message, Outcome.SENT, None, now)
        if pause:
            pause_assistant(message.conversation, agent, message, now)


STUCK_REASON = N_(
    "Handoff stopped while sending this message, so it may or may not have been delivered: check the "
    "conversation (or Refresh from Vambe) before sending it again."
)


def settle_stuck_sends(*, now: datetime, older_than: timedelta, conversation: Conversation | None = None) -> int:
    """Settle messages left "sending" by a worker that died mid-send as "unknown"; commits. Returns how many."""
    stuck = [Message.outcome == Outcome.SENDING, Message.updated_at < now - older_than]
    if conversation is not None:
        stuck.append(Message.conversation_id == conversation.id)
    if db.session.scalar(select(Message.id).where(*stuck).limit(1)) is None:
        return 0
    settled = db.session.execute(
        update(Message).where(*stuck).values(outcome=Outcome.UNKNOWN, outcome_reason=STUCK_REASON, updated_at=now)
    ).rowcount
    db.session.commit()
    return settled


def settle(
    message: Message, outcome: Outcome, reason: str | None, now: datetime, *, provider_message_id: str | None = None
) -> None:
    """Record the answer to the send, unless Vambe already reported what became of the message.

    Its message.sent webhook can land before the HTTP answer, and its word beats a lost or gateway answer:
    overwriting "sent" with "failed" or "unknown" would invite the agent to send it twice.
    """
    this_message = Message.id == message.id
    db.session.execute(
        update(Message)
        .where(this_message, Message.outcome == Outcome.SENDING)
        .values(outcome=outcome, outcome_reason=reason, updated_at=now)
    )
    if provider_message_id:
        absorb_copy(message, provider_message_id, now)
        db.session.execute(
            update(Message)
            .where(this_message, Message.provider_message_id.is_(None))
            .values(provider_message_id=provider_message_id)
        )
    db.session.refresh(message)


def absorb_copy(message: Message, provider_message_id: str, now: datetime) -> None:
    """A webhook that came before the 201 and did not recognise this send stored it as a message of its own,
    under the id the 201 now gives. The two are one message: keep this one (the agent's), with what the copy
    knew of its fate, and point whatever referred to the copy at it."""
    copy = db.session.scalar(
        select(Message).where(Message.provider_message_id == provider_message_id, Message.id != message.id)
    )
    if copy is None or copy.conversation_id != message.conversation_id or copy.direction != Direction.OUTBOUND:
        return
    for model, column in ((WebhookDelivery, WebhookDelivery.message_id), (AuditEvent, AuditEvent.message_id)):
        db.session.execute(update(model).where(column == copy.id).values({column: message.id}))
    db.session.execute(update(Message).where(Message.quoted_message_id == copy.id).values(quoted_message_id=message.id))
    db.session.refresh(message)
    advance_outcome(message, Outcome(copy.outcome), now)
    db.session.delete(copy)
    db.session.flush()


def needs_a_template(message: Message) -> bool:
    """Whether ``message`` failed because the window had closed: only a template can follow it, not a retry."""
    return message.outcome == Outcome.FAILED and bool(REENGAGEMENT.search(message.outcome_reason or ""))


@dataclass(frozen=True)
class TemplateSend:
    """The template an agent chose, and the values for its placeholders in order."""

    template_id: int
    values: list[str]
    idempotency_key: str


def send_template(
    conversation: Conversation,
    agent: User,
    chosen: TemplateSend,
    *,
    client: VambeClient,
    now: datetime,
    assign_unassigned: bool = True,
) -> Message:
    """Send an approved template once per idempotency key, whatever the window, and return its message settled
    to its outcome. Like a reply: stored as "sending" and committed before Vambe is called. The template call has
    no pause flag, so the AI assistant stays as it was (recorded: ``pause_assistant`` False).

    Raises SendRefused before anything is stored."""
    existing = lock_for_sending(conversation, chosen.idempotency_key)
    if existing is not None:
        return existing
    try:
        template = usable_template(conversation, chosen.template_id)
        text = filled(template, chosen.values)
        if not conversation.phone:
            raise SendRefused(
                "Handoff does not know this customer's phone number, which the template call needs: "
                "use Refresh from Vambe first."
            )
    except (SendRefused, TemplateRefused) as refusal:
        db.session.rollback()
        raise SendRefused(str(refusal)) from None
    message = agent_message(
        conversation,
        agent,
        text,
        chosen.idempotency_key,
        now,
        pause_assistant=False,
        business_number=conversation.business_number,
        template_name=template.name,
    )
    stored = commit_sending(message, agent, [], assign_unassigned=assign_unassigned, now=now)
    if stored is not message:
        return stored
    number = conversation.business_number
    phone = conversation.phone.lstrip("+")
    values = [value.strip() for value in chosen.values]
    call = lambda: client.send_template(  # noqa: E731
        phone, template.vambe_template_id, values, number.phone_number if number else None
    )
    deliver(message, call, agent, pause=False, now=now)
    return message


def usable_template(conversation: Conversation, template_id: int) -> MessageTemplate:
    template = db.session.get(MessageTemplate, template_id)
    if template is None or not template.active:
        raise SendRefused(_l("That template is not available any more: choose another."))
    number = conversation.business_number_id
    if template.business_number_id is not None and number is not None and template.business_number_id != number:
        raise SendRefused(
            _l("“%(name)s” belongs to another business number than this customer writes to.", name=template.name)
        )
    return template


def pause_assistant(conversation: Conversation, agent: User, message: Message, now: datetime) -> None:
    """Record that Vambe paused the AI assistant for this contact because of ``message``."""
    conversation.assistant_paused_at = now
    conversation.assistant_paused_by = agent
    db.session.add(
        AuditEvent(
            occurred_at=now,
            kind=AuditKind.ASSISTANT_PAUSED,
            actor=agent,
            conversation=conversation,
            message=message,
            details={},
        )
    )


def override_event(message: Message, agent: User, window: WindowStatus, reason: str, now: datetime) -> AuditEvent:
    details: dict = {"window_state": str(window.state), "reason": reason}
    if window.expires_at is not None:
        details["window_expired_at"] = window.expires_at.isoformat()
        details["late_by_seconds"] = int((now - window.expires_at).total_seconds())
    return AuditEvent(
        occurred_at=now,
        kind=AuditKind.WINDOW_OVERRIDE,
        actor=agent,
        conversation=message.conversation,
        message=message,
        details=details,
    )


def newer_reply(conversation: Conversation, agent: User, seen_through_message_id: int | None) -> Message | None:
    """The latest reply by someone else (agent, AI or tool) that the agent had not seen, if any."""
    if seen_through_message_id is None:
        return None
    return db.session.scalar(
        select(Message)
        .where(
            Message.conversation_id == conversation.id,
            Message.direction == Direction.OUTBOUND,
            Message.id > seen_through_message_id,
            or_(Message.author_user_id.is_(None), Message.author_user_id != agent.id),
        )
        .order_by(Message.id.desc())
        .limit(1)
    )


def newer_reply_event(message: Message, agent: User, newer: Message, now: datetime) -> AuditEvent:
    return AuditEvent(
        occurred_at=now,
        kind=AuditKind.NEWER_REPLY_OVERRIDE,
        actor=agent,
        conversation=message.conversation,
        message=message,
        details={"newer_message_id": newer.id},
    )


def message_with_key(key: str, conversation: Conversation) -> Message | None:
    """The message already sent under ``key``, after checking the key is well formed and not reused."""
    if not IDEMPOTENCY_KEY_PATTERN.fullmatch(key or ""):
        raise SendRefused(_l("This form is missing its send token. Reload the page and try again."))
    message = db.session.scalar(select(Message).where(Message.idempotency_key == key))
    if message is not None and message.conversation_id != conversation.id:
        raise SendRefused(_l("This send token belongs to another conversation. Reload the page and try again."))
    return message


def validated_text(text: str) -> str:
    text = (text or "").replace("\r\n", "\n")
    if not text.strip():
        raise SendRefused(_l("Type a message before sending."))
    if len(text) > MAX_MESSAGE_LENGTH:
        raise SendRefused(
            _l(
                "The message is %(length)d characters long; WhatsApp accepts at most %(limit)d.",
                length=len(text),
                limit=MAX_MESSAGE_LENGTH,
            )
        )
    return text


def validated_quote(conversation: Conversation, quoted_message_id: int | None) -> Message | None:
    if quoted_message_id is None:
        return None
    quoted = db.session.get(Message, quoted_message_id)
    if quoted is None or quoted.conversation_id != conversation.id:
        raise SendRefused(_l("The quoted message is not part of this conversation."))
    if not quoted.can_be_quoted:
        raise SendRefused(_l("That message cannot be quoted: WhatsApp has not given it an id yet."))
    return quoted


def chosen_business_number(conversation: Conversation, business_number_id: int | None) -> BusinessNumber | None:
    """The number to send from: the agent's choice, or the conversation's own when Vambe needs one."""
    if business_number_id is not None:
        number = db.session.get(BusinessNumber, business_number_id)
        if number is None:
            raise SendRefused(_l("The chosen business number no longer exists. Reload the page and choose again."))
        return number
    # Vambe requires from_phone_number when targeting by phone on an account with several numbers.
    if conversation.vambe_contact_id is None and db.session.scalar(select(func.count(BusinessNumber.id))) > 1:
        if conversation.business_number is None:
            raise SendRefused(_l("Choose the business number to send from."))
        return conversation.business_number
    return None
