"""Server-side sessions: a signed cookie alone cannot be ended, so it holds only a reference to one of these.

The reference is ``<session id>.<random token>``; the store keeps the token's SHA-256, so a leaked database
does not hand out live sessions. Signing out ends one session; a new password, a new role or deactivation
end all of a user's.
"""

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update

from app.extensions import db
from app.models import MAX_RECORD_ID, User, UserSession

IDLE_LIMIT = timedelta(hours=12)
ABSOLUTE_LIMIT = timedelta(days=7)
# last_seen_at is written at most this often: not a write on every request.
SEEN_RESOLUTION = timedelta(minutes=5)


def start_session(user: User, *, now: datetime) -> str:
    """Open a session for ``user`` and return its reference (the caller commits); also set on ``user``."""
    token = secrets.token_urlsafe(32)
    row = UserSession(user=user, token_hash=digest(token), created_at=now, last_seen_at=now)
    db.session.add(row)
    db.session.flush()
    user.session_ref = f"{row.id}.{token}"
    return user.session_ref


def session_user(reference: str, *, now: datetime) -> User | None:
    """The active user of the live session ``reference`` names, else None. Notes that it was seen; may commit."""
    row = live_session(reference, now)
    if row is None or not row.user.is_active:
        return None
    if now - row.last_seen_at >= SEEN_RESOLUTION:
        row.last_seen_at = now
        db.session.commit()
    row.user.session_ref = reference
    return row.user


def end_session(reference: str | None, *, now: datetime) -> None:
    """End the session ``reference`` names (signing out); the caller commits."""
    row = live_session(reference or "", now)
    if row is not None:
        row.ended_at = now


def end_sessions_of(user: User, *, now: datetime, keep: str | None = None) -> None:
    """End every live session of ``user``, except the one ``keep`` names; the caller commits."""
    kept = live_session(keep or "", now)
    query = update(UserSession).where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
    if kept is not None:
        query = query.where(UserSession.id != kept.id)
    db.session.execute(query.values(ended_at=now))


def live_session(reference: str, now: datetime) -> UserSession | None:
    session_id, _, token = reference.partition(".")
    if not (session_id.isascii() and session_id.isdigit() and 0 < int(session_id) <= MAX_RECORD_ID and token):
        return None
    row = db.session.scalar(select(UserSession).where(UserSession.id == int(session_id)))
    if row is None or row.ended_at is not None or not hmac.compare_digest(row.token_hash, digest(token)):
        return None
    if now - row.created_at >= ABSOLUTE_LIMIT or now - row.last_seen_at >= IDLE_LIMIT:
        return None
    return row


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
