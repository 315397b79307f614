"""Users: creating and administering them, checking their passwords, and the audit trail of both."""

from datetime import datetime, timedelta

from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEvent, AuditKind, Role, User

MIN_PASSWORD_LENGTH = 8
# Failed sign-ins are counted in the database, so the limit holds across workers and instances.
FAILED_LOGIN_LIMIT = 5
FAILED_LOGIN_PERIOD = timedelta(minutes=15)


class AccountError(ValueError):
    """The account cannot be created or changed as asked."""


class TooManyAttempts(Exception):
    """Too many failed sign-ins for this email recently; try again later."""


def create_user(
    email: str, password: str, role: Role, *, name: str = "", now: datetime, actor: User | None = None
) -> User:
    """Create and commit a user; the email is stored lower-cased and must be new."""
    email = normalised_email(email)
    if "@" not in email:
        raise AccountError(f"{email!r} is not an email address.")
    check_password_strength(password)
    if find_user(email) is not None:
        raise AccountError(f"A user with the email {email} already exists.")
    user = User(email=email, name=name or email.split("@")[0], role=Role(role), active=True, created_at=now)
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    audit(AuditKind.USER_CREATED, actor, now, user_id=user.id, email=user.email, role=user.role)
    db.session.commit()
    return user


def authenticate(email: str, password: str, *, now: datetime) -> User | None:
    """The active user with this email and password, else None; every attempt is audited. Commits.

    Raises TooManyAttempts after FAILED_LOGIN_LIMIT failures for the email within FAILED_LOGIN_PERIOD.
    """
    email = normalised_email(email)
    if recent_failures(email, now) >= FAILED_LOGIN_LIMIT:
        raise TooManyAttempts()
    user = find_user(email)
    if user is None or not user.is_active or not user.check_password(password):
        audit(AuditKind.LOGIN_FAILED, None, now, email=email)
        db.session.commit()
        return None
    audit(AuditKind.LOGIN, user, now)
    db.session.commit()
    return user


def recent_failures(email: str, now: datetime) -> int:
    return db.session.scalar(
        select(func.count(AuditEvent.id)).where(
            AuditEvent.kind == AuditKind.LOGIN_FAILED,
            AuditEvent.occurred_at > now - FAILED_LOGIN_PERIOD,
            AuditEvent.details["email"].as_string() == email,
        )
    )


def set_active(user: User, active: bool, *, actor: User, now: datetime) -> None:
    """Deactivate or reactivate ``user``; the last active admin cannot be deactivated. Commits."""
    if user.active == active:
        return
    if not active:
        keep_an_admin(user)
    user.active = active
    audit(AuditKind.USER_REACTIVATED if active else AuditKind.USER_DEACTIVATED, actor, now, user_id=user.id)
    db.session.commit()


def change_role(user: User, role: Role, *, actor: User, now: datetime) -> None:
    """Give ``user`` another role; the last active admin keeps theirs. Commits."""
    if user.role == role:
        return
    if role != Role.ADMIN:
        keep_an_admin(user)
    previous, user.role = user.role, Role(role)
    audit(AuditKind.ROLE_CHANGED, actor, now, user_id=user.id, **{"from": previous, "to": user.role})
    db.session.commit()


def reset_password(user: User, password: str, *, actor: User, now: datetime) -> None:
    check_password_strength(password)
    user.set_password(password)
    audit(AuditKind.PASSWORD_RESET, actor, now, user_id=user.id)
    db.session.commit()


def keep_an_admin(user: User) -> None:
    """Refuse a change that would leave no active admin."""
    if user.role != Role.ADMIN or not user.active:
        return
    admins = db.session.scalar(
        select(func.count(User.id)).where(User.role == Role.ADMIN, User.active.is_(True), User.id != user.id)
    )
    if admins == 0:
        raise AccountError("This is the last active admin: make someone else an admin first.")


def list_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.active.desc(), User.name)))


def audit(kind: AuditKind, actor: User | None, now: datetime, **details) -> None:
    """Add an audit event about accounts (the caller commits)."""
    db.session.add(AuditEvent(occurred_at=now, kind=kind, actor=actor, details=details))


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")


def find_user(email: str) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.email) == normalised_email(email)))


def normalised_email(email: str) -> str:
    return email.strip().lower()
