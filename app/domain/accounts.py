"""Users: creating them and checking their passwords."""

from datetime import datetime

from sqlalchemy import func, select

from app.extensions import db
from app.models import Role, User

MIN_PASSWORD_LENGTH = 8


class AccountError(ValueError):
    """The account cannot be created as asked."""


def create_user(email: str, password: str, role: Role, *, name: str = "", now: datetime) -> User:
    """Create and commit a user; the email is stored lower-cased and must be new."""
    email = normalised_email(email)
    if "@" not in email:
        raise AccountError(f"{email!r} is not an email address.")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
    if find_user(email) is not None:
        raise AccountError(f"A user with the email {email} already exists.")
    user = User(email=email, name=name or email.split("@")[0], role=Role(role), active=True, created_at=now)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user


def authenticate(email: str, password: str) -> User | None:
    """The active user with this email and password, else None."""
    user = find_user(email)
    if user is None or not user.is_active or not user.check_password(password):
        return None
    return user


def find_user(email: str) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.email) == normalised_email(email)))


def normalised_email(email: str) -> str:
    return email.strip().lower()
