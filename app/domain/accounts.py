"""Users: creating and administering them, checking their passwords, and the audit trail of both."""

import secrets
from datetime import datetime
from functools import cache

from sqlalchemy import and_, func, or_, select
from werkzeug.security import check_password_hash, generate_password_hash

from app import models
from app.domain.sessions import end_session, end_sessions_of, start_session
from app.domain.throttling import charge_attempt, hold_pair, record_outcome
from app.extensions import db
from app.i18n import lazy_gettext as _l
from app.models import AuditEvent, AuditKind, Role, User

MIN_PASSWORD_LENGTH = 8


class AccountError(ValueError):
    """The account cannot be created or changed as asked."""


def create_user(
    email: str, password: str, role: Role, *, name: str = "", now: datetime, actor: User | None = None
) -> User:
    """Create and commit a user; the email is stored lower-cased and must be new."""
    email = normalised_email(email)
    if "@" not in email:
        raise AccountError(_l("“%(email)s” is not an email address.", email=email))
    check_password_strength(password)
    if find_user(email) is not None:
        raise AccountError(_l("A user with the email %(email)s already exists.", email=email))
    user = User(email=email, name=name or email.split("@")[0], role=Role(role), active=True, created_at=now)
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    audit(AuditKind.USER_CREATED, actor, now, user_id=user.id, email=user.email, role=user.role)
    db.session.commit()
    return user


def sign_in(email: str, password: str, *, address: str, now: datetime) -> User | None:
    """The active user with this email and password, signed in to a new server-side session (``user.session_ref``),
    else None. Every attempt that is checked is audited; raises Throttled, checking nothing, when this address or
    this account from this address must wait (app/domain/throttling.py). Commits: the attempt first, so that
    parallel guesses are counted before any password is hashed, then the outcome."""
    email = normalised_email(email)
    charge = charge_attempt(email, address, now=now)
    pair = hold_pair(charge, now=now)
    user = find_user(email)
    if user is None:
        # The same cost as checking a real password, so that the time taken does not tell which emails exist.
        check_password_hash(dummy_password_hash(models.PASSWORD_HASH_METHOD), password)
    # The password first, so that a deactivated account costs the same too.
    succeeded = user is not None and user.check_password(password) and user.is_active
    record_outcome(charge, pair, succeeded=succeeded, now=now)
    if not succeeded:
        audit(AuditKind.LOGIN_FAILED, None, now, email=email)
        db.session.commit()
        return None
    audit(AuditKind.LOGIN, user, now)
    start_session(user, now=now)
    db.session.commit()
    return user


def sign_out(session_ref: str | None, *, now: datetime) -> None:
    """End this browser's session on the server: a copy of its cookie stops working too. Commits."""
    end_session(session_ref, now=now)
    db.session.commit()


@cache
def dummy_password_hash(method: str) -> str:
    """A hash of a random password, made (once per hashing method) like real ones, for emails without a user."""
    return generate_password_hash(secrets.token_urlsafe(16), method=method)


def set_active(user: User, active: bool, *, actor: User, now: datetime) -> None:
    """Deactivate or reactivate ``user``; the last active admin cannot be deactivated. Commits."""
    removes_an_admin = not active and lock_the_admins(user)
    if user.active == active:
        db.session.rollback()  # nothing to change: end the transaction (and its locks)
        return
    user.active = active
    if not active:
        end_sessions_of(user, now=now)
    audit(AuditKind.USER_REACTIVATED if active else AuditKind.USER_DEACTIVATED, actor, now, user_id=user.id)
    if removes_an_admin:
        keep_an_admin()
    db.session.commit()


def change_role(user: User, role: Role, *, actor: User, now: datetime) -> None:
    """Give ``user`` another role; the last active admin keeps theirs. Commits."""
    removes_an_admin = role != Role.ADMIN and lock_the_admins(user)
    if user.role == role:
        db.session.rollback()  # nothing to change: end the transaction (and its locks)
        return
    previous, user.role = user.role, Role(role)
    # Sessions began under the old role: they end (all but the one making the change, when it is the user's own).
    end_sessions_of(user, now=now, keep=actor.session_ref)
    audit(AuditKind.ROLE_CHANGED, actor, now, user_id=user.id, **{"from": previous, "to": user.role})
    if removes_an_admin:
        keep_an_admin()
    db.session.commit()


def reset_password(user: User, password: str, *, actor: User, now: datetime) -> None:
    """Give ``user`` a new password and end their sessions, but the one the actor is resetting it from. Commits."""
    check_password_strength(password)
    user.set_password(password)
    end_sessions_of(user, now=now, keep=actor.session_ref)
    audit(AuditKind.PASSWORD_RESET, actor, now, user_id=user.id)
    db.session.commit()


def change_own_password(user: User, current: str, new: str, *, now: datetime) -> None:
    """The user's new password, given their current one; their other sessions end. Audited, commits."""
    if not user.check_password(current):
        raise AccountError(_l("Your current password is not right."))
    if new == current:
        raise AccountError(_l("Choose a new password, not the current one."))
    check_password_strength(new)
    user.set_password(new)
    end_sessions_of(user, now=now, keep=user.session_ref)
    audit(AuditKind.PASSWORD_CHANGED, user, now, user_id=user.id)
    db.session.commit()


def set_preferences(user: User, *, locale: str | None, time_zone: str | None, now: datetime) -> None:
    """The user's language and time zone (None: automatic). Audited, commits."""
    user.locale, user.time_zone = locale, time_zone
    audit(AuditKind.PREFERENCES_CHANGED, user, now, user_id=user.id, locale=locale, time_zone=time_zone)
    db.session.commit()


# Two admins deactivating (or demoting) each other at the same moment must not leave no admin at all:
# each change takes the admins' locks, writes, then counts the active admins left in the same transaction.


def lock_the_admins(user: User) -> bool:
    """Lock the rows of the active admins and of ``user``, reload them, and say whether ``user`` is an active admin.

    On PostgreSQL a concurrent change to an admin waits here until this transaction ends, then sees its outcome.
    SQLite has no row locks (nothing is rendered), and pysqlite begins the transaction only at the first write:
    there, keep_an_admin() counts after writing, once this change holds the database's write lock.
    """
    db.session.scalars(
        select(User)
        .where(or_(and_(User.role == Role.ADMIN, User.active.is_(True)), User.id == user.id))
        .order_by(User.id)  # the same order in every transaction: no deadlock between two of them
        # FOR NO KEY UPDATE: conflicts with other changes to these rows, but not with rows that merely refer to them.
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).all()
    return user.role == Role.ADMIN and user.active


def keep_an_admin() -> None:
    """After a change that removed an active admin (see lock_the_admins), and before committing it: roll it back and
    refuse if no active admin is left."""
    db.session.flush()
    admins = db.session.scalar(select(func.count(User.id)).where(User.role == Role.ADMIN, User.active.is_(True)))
    if admins == 0:
        db.session.rollback()
        raise AccountError(_l("This is the last active admin: make someone else an admin first."))


def list_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.active.desc(), User.name)))


def audit(kind: AuditKind, actor: User | None, now: datetime, **details) -> None:
    """Add an audit event about accounts (the caller commits)."""
    db.session.add(AuditEvent(occurred_at=now, kind=kind, actor=actor, details=details))


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(_l("The password must have at least %(count)d characters.", count=MIN_PASSWORD_LENGTH))


def find_user(email: str) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.email) == normalised_email(email)))


def normalised_email(email: str) -> str:
    return email.strip().lower()
