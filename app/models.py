"""The store: users, business numbers, conversations, messages and the audit trail."""

import re
import unicodedata
from datetime import datetime
from enum import StrEnum
from typing import Any

from flask_login import UserMixin
from sqlalchemy import JSON, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates
from werkzeug.security import check_password_hash, generate_password_hash

from app.db_types import UTCDateTime
from app.extensions import db


class Role(StrEnum):
    AGENT = "agent"
    LEAD = "lead"
    ADMIN = "admin"


# werkzeug's default (scrypt). Tests swap in a cheap method: hashing is deliberately slow.
PASSWORD_HASH_METHOD = "scrypt"  # noqa: S105  (a method name, not a password)

# Each role can do everything the roles before it can.
ROLE_RANK = {Role.AGENT: 0, Role.LEAD: 1, Role.ADMIN: 2}
MAX_RECORD_ID = 2**31 - 1  # INTEGER primary keys: 32-bit on PostgreSQL


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Author(StrEnum):
    CUSTOMER = "customer"
    ASSISTANT = "assistant"
    AGENT = "agent"
    OTHER_TOOL = "other_tool"


class Outcome(StrEnum):
    RECEIVED = "received"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    UNKNOWN = "unknown"


class DeliveryState(StrEnum):
    PENDING = "pending"
    PROCESSED = "processed"
    FAILED = "failed"


class ConversationStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class AuditKind(StrEnum):
    WINDOW_OVERRIDE = "window_override"
    ASSISTANT_PAUSED = "assistant_paused"
    ASSIGNED = "assigned"
    UNASSIGNED = "unassigned"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    NEWER_REPLY_OVERRIDE = "newer_reply_override"
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    USER_CREATED = "user_created"
    USER_DEACTIVATED = "user_deactivated"
    USER_REACTIVATED = "user_reactivated"
    ROLE_CHANGED = "role_changed"
    PASSWORD_RESET = "password_reset"  # noqa: S105  (an event name)
    PASSWORD_CHANGED = "password_changed"  # noqa: S105  (an event name: the user changed their own)
    PREFERENCES_CHANGED = "preferences_changed"
    WEBHOOKS_REPLAYED = "webhooks_replayed"
    NUMBERS_REFRESHED = "numbers_refreshed"
    HANDOFF_REQUESTED = "handoff_requested"
    HANDOFF_TAKEN = "handoff_taken"
    HANDOFF_PHRASE_ADDED = "handoff_phrase_added"
    HANDOFF_PHRASE_REMOVED = "handoff_phrase_removed"
    TEMPLATE_SAVED = "template_saved"
    AI_AFTER_TAKEOVER = "ai_after_takeover"  # an incident: something other than Handoff wrote after the pause
    RESUMED_ON_PURPOSE = "resumed_on_purpose"  # a lead's word that such an incident was intended
    TEMPLATES_IMPORTED = "templates_imported"
    RECONCILED = "reconciled"  # an admin ran the reconciliation by hand
    REVIEW_RULE_CHANGED = "review_rule_changed"
    REVIEWED = "reviewed"


class HandoffReason(StrEnum):
    VAMBE_STATUS = "vambe_status"  # Vambe marks the contact unattended or ai-away
    PHRASE = "phrase"  # the customer asked for a person in their own words
    CLOSING_WINDOW = "closing_window"  # the 24h window is closing with the customer's message unanswered


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The user's own choices (None: the browser's language, the installation's or the browser's time zone).
    locale: Mapped[str | None] = mapped_column(String(8))
    time_zone: Mapped[str | None] = mapped_column(String(64))

    @property
    def is_active(self) -> bool:
        return self.active

    # The server-side session this user object was signed in or loaded with (app/domain/sessions.py); not a column.
    session_ref = None

    def get_id(self) -> str | None:
        """What the session cookie holds: a reference to this sign-in's server-side session, which signing out,
        a new password, a new role or deactivation ends."""
        return self.session_ref

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password, method=PASSWORD_HASH_METHOD)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def has_role(self, role: Role) -> bool:
        """Whether this user's role is ``role`` or one above it."""
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[role]


class UserSession(db.Model):
    """One sign-in. The cookie holds its id and a random token; only the token's SHA-256 is stored."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class LoginThrottle(db.Model):
    """Sign-in attempts counted per account, per client address, and per pair of both (app/domain/throttling.py)."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of what is counted: no emails or IPs
    attempts: Mapped[int] = mapped_column(default=0)
    last_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BusinessNumber(db.Model):
    """A WhatsApp number of the Vambe account, as the channels endpoint lists it."""

    __tablename__ = "business_numbers"

    id: Mapped[int] = mapped_column(primary_key=True)
    vambe_channel_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    phone_number: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(120), default="")

    @property
    def label(self) -> str:
        return f"{self.name} (+{self.phone_number.lstrip('+')})" if self.name else f"+{self.phone_number}"


class Conversation(db.Model):
    """One WhatsApp contact's conversation with the business."""

    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(primary_key=True)
    vambe_contact_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    phone: Mapped[str | None] = mapped_column(String(20), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    business_number_id: Mapped[int | None] = mapped_column(ForeignKey("business_numbers.id"))
    # The 24h window is measured from the newest *inbound* message only.
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    assistant_paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    assistant_paused_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=ConversationStatus.OPEN, server_default="open", index=True)
    # When a person last answered (a reply Vambe accepted): the customer is "unanswered" while last_inbound_at is later.
    last_human_reply_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    business_number: Mapped[BusinessNumber | None] = relationship()
    assistant_paused_by: Mapped[User | None] = relationship(foreign_keys=[assistant_paused_by_id])
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])

    @property
    def display_name(self) -> str:
        return self.name or self.phone or "Unknown contact"


# PostgreSQL text cannot hold NUL, and no UTF-8 encoder can write a lone surrogate (JSON's "\ud800" makes one).
UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def unstorable(text: str) -> bool:
    """Whether ``text`` holds a character no text column can store."""
    return UNSTORABLE.search(text) is not None


def storable_text(text: str) -> str:
    """``text`` with what no text column can store replaced by U+FFFD, as a UTF-8 decoder marks broken bytes."""
    return UNSTORABLE.sub("\ufffd", text)


def searchable_text(text: str) -> str:
    """``text`` folded for full-text search: lower case, accents removed ("Canción" -> "cancion")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


class Message(db.Model):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_conversation_occurred", "conversation_id", "occurred_at"),
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
        # Review search by agent and day, and reports by period.
        Index("ix_messages_author_user_occurred", "author_user_id", "occurred_at"),
        Index("ix_messages_occurred_at", "occurred_at"),
        # Reconciliation and the health panel look only at the few late failures and missed messages.
        Index(
            "ix_messages_failed_late",
            "author_user_id",
            "failed_late_at",
            postgresql_where=text("failed_late_at IS NOT NULL"),
            sqlite_where=text("failed_late_at IS NOT NULL"),
        ),
        Index(
            "ix_messages_missed_by_webhook",
            "created_at",
            postgresql_where=text("missed_by_webhook"),
            sqlite_where=text("missed_by_webhook"),
        ),
        # The stuck-send sweep looks only at the few messages still sending.
        Index(
            "ix_messages_still_sending",
            "updated_at",
            postgresql_where=text("outcome = 'sending'"),
            sqlite_where=text("outcome = 'sending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    direction: Mapped[str] = mapped_column(String(8))
    author: Mapped[str] = mapped_column(String(16))
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    # The body folded for the full-text index (see migrations: FTS5 on SQLite, GIN on PostgreSQL).
    search_text: Mapped[str] = mapped_column(Text, default="")
    # One Vambe account per installation, so the provider id is unique across the store.
    provider_message_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    # sha256 of a webhook payload that named no message id: a redelivery of it is the same message.
    fingerprint: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    quoted_message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    pause_assistant: Mapped[bool | None]
    business_number_id: Mapped[int | None] = mapped_column(ForeignKey("business_numbers.id"))
    outcome: Mapped[str] = mapped_column(String(16))
    outcome_reason: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    window_override: Mapped[bool] = mapped_column(default=False)
    # Sent as this approved template (its name then): the text in ``body`` is the template filled in.
    template_name: Mapped[str | None] = mapped_column(String(120))
    # Found in Vambe's history by reconciliation: no webhook ever delivered it.
    missed_by_webhook: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # An agent's send that Vambe accepted and WhatsApp later reported failed; and when its agent saw that.
    failed_late_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    late_failure_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    conversation: Mapped[Conversation] = relationship()
    author_user: Mapped[User | None] = relationship()
    quoted_message: Mapped["Message | None"] = relationship(remote_side=[id])
    business_number: Mapped[BusinessNumber | None] = relationship()

    @property
    def can_be_quoted(self) -> bool:
        return self.provider_message_id is not None

    @validates("body")
    def fold_for_search(self, key: str, body: str) -> str:
        self.search_text = searchable_text(body)
        return body


class AuditEvent(db.Model):
    """An append-only record of a decision someone made: an override, a pause."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    actor: Mapped[User | None] = relationship()
    conversation: Mapped[Conversation | None] = relationship()
    message: Mapped[Message | None] = relationship()

    @validates("details")
    def bound_details(self, key: str, details: dict[str, Any] | None) -> dict[str, Any]:
        """Whatever a request carried, the audit trail keeps a bounded copy of it."""
        return bounded(details or {})


AUDIT_TEXT_LIMIT = 500
AUDIT_ITEMS_LIMIT = 50


def bounded(value: Any) -> Any:
    """``value`` with long texts cut (and marked) and long lists or objects shortened, at any depth."""
    if isinstance(value, str):
        return value if len(value) <= AUDIT_TEXT_LIMIT else value[:AUDIT_TEXT_LIMIT] + " […cut]"
    if isinstance(value, dict):
        return {str(name)[:100]: bounded(item) for name, item in list(value.items())[:AUDIT_ITEMS_LIMIT]}
    if isinstance(value, list | tuple):
        return [bounded(item) for item in value[:AUDIT_ITEMS_LIMIT]]
    return value


class WebhookDelivery(db.Model):
    """A webhook delivery exactly as it arrived, stored before it is processed so nothing is lost."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    authenticated_by: Mapped[str] = mapped_column(String(16))  # "signature" | "url_token"
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    body: Mapped[str] = mapped_column(Text)
    event: Mapped[str | None] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))


class ConversationView(db.Model):
    """When a user last looked at a conversation: newer customer messages are unread for them."""

    __tablename__ = "conversation_views"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class QuickReply(db.Model):
    """A canned answer that leads maintain and agents insert with "/" in the composer."""

    __tablename__ = "quick_replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    shortcut: Mapped[str] = mapped_column(String(40), unique=True)
    body: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    created_by: Mapped[User | None] = relationship()


OPEN_HANDOFF = text("ended_at IS NULL")


class Handoff(db.Model):
    """A customer who needs a person, from the moment Handoff learns of it until a person first replies.

    It waits in the queue until someone takes the conversation or replies; the time to that first reply is the
    first-response time. A conversation has at most one open handoff.
    """

    __tablename__ = "handoffs"
    __table_args__ = (
        Index(
            "uq_handoffs_one_open",
            "conversation_id",
            unique=True,
            postgresql_where=OPEN_HANDOFF,
            sqlite_where=OPEN_HANDOFF,
        ),
        Index("ix_handoffs_requested_at", "requested_at"),
        Index("ix_handoffs_answered_at", "answered_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    reason: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(String(200), default="")  # Vambe's status or the phrase matched
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    taken_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    answer_message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # answered, or the conversation was resolved

    conversation: Mapped[Conversation] = relationship()
    taken_by: Mapped[User | None] = relationship(foreign_keys=[taken_by_id])
    answered_by: Mapped[User | None] = relationship(foreign_keys=[answered_by_id])

    @property
    def waiting(self) -> bool:
        return self.ended_at is None and self.taken_at is None


class HandoffPhrase(db.Model):
    """Words with which a customer asks for a person ("quiero hablar con una persona"), kept by admins."""

    __tablename__ = "handoff_phrases"
    __table_args__ = (Index("uq_handoff_phrases_language_folded", "language", "folded", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    language: Mapped[str] = mapped_column(String(8))
    phrase: Mapped[str] = mapped_column(String(200))
    folded: Mapped[str] = mapped_column(String(200))  # handoffs.words_of(phrase): what a message is matched on
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    created_by: Mapped[User | None] = relationship()


class MessageTemplate(db.Model):
    """An approved WhatsApp template of the Vambe account, registered by an admin: Vambe lists none."""

    __tablename__ = "message_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    vambe_template_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    language: Mapped[str] = mapped_column(String(16))  # as Meta names it: "es", "pt_BR", "en_US"
    category: Mapped[str] = mapped_column(String(32), default="")
    business_number_id: Mapped[int | None] = mapped_column(ForeignKey("business_numbers.id"))
    header: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text)  # with {{1}}, {{2}}… where the agent's values go
    footer: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    business_number: Mapped[BusinessNumber | None] = relationship()


class JobRun(db.Model):
    """The last run of a scheduled job (reconciliation, review sampling): what the health panel shows, and where
    an incremental job resumes. Kept in the database: every worker and instance sees the same."""

    __tablename__ = "job_runs"

    job: Mapped[str] = mapped_column(String(40), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    succeeded: Mapped[bool | None]
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)


class VambeCallCount(db.Model):
    """Calls to Vambe's API and how many of them failed on Vambe's side, per hour: the health panel's error rate."""

    __tablename__ = "vambe_call_counts"

    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    calls: Mapped[int] = mapped_column(default=0)
    errors: Mapped[int] = mapped_column(default=0)


class ReviewReason(StrEnum):
    WINDOW_CLOSED_UNANSWERED = "window_closed_unanswered"
    OVERRIDE = "override"
    FAILED_SEND = "failed_send"
    INCIDENT = "incident"
    LONG_WAIT = "long_wait"
    RANDOM = "random"


class ReviewRule(db.Model):
    """A rule that samples conversations into the review queue; leads switch them on and off."""

    __tablename__ = "review_rules"

    reason: Mapped[str] = mapped_column(String(32), primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    # The rule's one setting: minutes for a long wait, a percentage for the random share; unused by the others.
    setting: Mapped[int | None]
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    updated_by: Mapped[User | None] = relationship()


PENDING_REVIEW = text("reviewed_at IS NULL")


class ReviewItem(db.Model):
    """A conversation sampled for a lead to review, why, and the lead's verdict."""

    __tablename__ = "review_items"
    __table_args__ = (
        Index(
            "uq_review_items_one_pending",
            "conversation_id",
            unique=True,
            postgresql_where=PENDING_REVIEW,
            sqlite_where=PENDING_REVIEW,
        ),
        Index("ix_review_items_reviewed", "agent_id", "reviewed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    sampled_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # Whose work is reviewed: the conversation's assignee (or last replier) when it was sampled.
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    score: Mapped[int | None]
    note: Mapped[str] = mapped_column(Text, default="")

    conversation: Mapped[Conversation] = relationship()
    agent: Mapped[User | None] = relationship(foreign_keys=[agent_id])
    reviewed_by: Mapped[User | None] = relationship(foreign_keys=[reviewed_by_id])


class ReviewComment(db.Model):
    """A lead's comment on one message of a conversation under review."""

    __tablename__ = "review_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    review_item_id: Mapped[int] = mapped_column(ForeignKey("review_items.id"), index=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    author: Mapped[User] = relationship()
