"""Quick replies: canned answers that leads maintain and agents insert with "/"."""

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.domain.sending import MAX_MESSAGE_LENGTH
from app.extensions import db
from app.i18n import lazy_gettext as _l
from app.models import QuickReply, User

SHORTCUT_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


class QuickReplyRefused(ValueError):
    """The quick reply cannot be saved as given."""


def list_quick_replies() -> list[QuickReply]:
    return list(db.session.scalars(select(QuickReply).order_by(QuickReply.shortcut)))


def save_quick_reply(
    shortcut: str, body: str, *, actor: User, now: datetime, quick_reply: QuickReply | None = None
) -> QuickReply:
    """Create (or update ``quick_reply``) after validating it; commits."""
    shortcut = shortcut.strip().lower().lstrip("/")
    if not SHORTCUT_PATTERN.fullmatch(shortcut):
        raise QuickReplyRefused(_l("A shortcut is 1 to 40 lowercase letters, digits or dashes, like “shipping-delay”."))
    if not body.strip() or len(body) > MAX_MESSAGE_LENGTH:
        raise QuickReplyRefused(_l("The text must have between 1 and %(count)d characters.", count=MAX_MESSAGE_LENGTH))
    if quick_reply is None:
        quick_reply = QuickReply(created_by=actor, created_at=now)
        db.session.add(quick_reply)
    quick_reply.shortcut = shortcut
    quick_reply.body = body.replace("\r\n", "\n")
    quick_reply.updated_at = now
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise QuickReplyRefused(_l("There is already a quick reply “/%(shortcut)s”.", shortcut=shortcut)) from None
    return quick_reply


def delete_quick_reply(quick_reply: QuickReply) -> None:
    db.session.delete(quick_reply)
    db.session.commit()
