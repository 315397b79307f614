"""Who works a conversation, and whether it is resolved: each change is an audit event."""

from datetime import datetime

from app.domain.handoffs import record_resolved, record_taken
from app.extensions import db
from app.i18n import lazy_gettext as _l
from app.models import AuditEvent, AuditKind, Conversation, ConversationStatus, User


class AssignmentRefused(ValueError):
    """The change cannot be made as asked."""


def assign(conversation: Conversation, actor: User, assignee: User | None, *, now: datetime) -> None:
    """Give the conversation to ``assignee`` (None: unassign) and record who did it; commits."""
    if assignee is not None and not assignee.is_active:
        raise AssignmentRefused(_l("%(name)s is deactivated and cannot take conversations.", name=assignee.name))
    if conversation.assignee_id == (assignee.id if assignee else None):
        return
    previous = conversation.assignee
    conversation.assignee = assignee
    record_taken(conversation, assignee, now=now)
    details = {"from": previous.name if previous else None, "to": assignee.name if assignee else None}
    kind = AuditKind.ASSIGNED if assignee is not None else AuditKind.UNASSIGNED
    db.session.add(AuditEvent(occurred_at=now, kind=kind, actor=actor, conversation=conversation, details=details))
    db.session.commit()


def set_status(conversation: Conversation, actor: User, status: ConversationStatus, *, now: datetime) -> None:
    """Resolve or reopen the conversation and record who did it; commits."""
    if conversation.status == status:
        return
    conversation.status = status
    if status == ConversationStatus.RESOLVED:
        record_resolved(conversation, now=now)
    kind = AuditKind.RESOLVED if status == ConversationStatus.RESOLVED else AuditKind.REOPENED
    db.session.add(AuditEvent(occurred_at=now, kind=kind, actor=actor, conversation=conversation, details={}))
    db.session.commit()
