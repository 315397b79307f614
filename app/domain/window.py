"""WhatsApp's 24-hour customer-care window."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import and_

from app.models import Conversation

WINDOW_LENGTH = timedelta(hours=24)


class WindowState(StrEnum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class WindowStatus:
    state: WindowState
    expires_at: datetime | None
    remaining: timedelta

    @property
    def allows_free_form(self) -> bool:
        """Whether WhatsApp should accept a free-form message now."""
        return self.state in (WindowState.OPEN, WindowState.CLOSING)


def window_status(last_inbound_at: datetime | None, now: datetime, warning: timedelta) -> WindowStatus:
    """The window as of ``now``, given the newest inbound message time (None when none is known)."""
    if last_inbound_at is None:
        return WindowStatus(WindowState.UNKNOWN, None, timedelta(0))
    # A timestamp ahead of our clock (skew) must not stretch the window past 24h from now.
    anchor = min(last_inbound_at, now)
    expires_at = anchor + WINDOW_LENGTH
    remaining = expires_at - now
    if remaining <= timedelta(0):
        return WindowStatus(WindowState.CLOSED, expires_at, timedelta(0))
    state = WindowState.CLOSING if remaining < warning else WindowState.OPEN
    return WindowStatus(state, expires_at, remaining)


def window_condition(state: str, now: datetime, warning: timedelta):
    """The SQL twin of window_status(): which last-inbound times put a conversation in ``state``."""
    expired_before = now - WINDOW_LENGTH
    closing_before = expired_before + warning
    inbound = Conversation.last_inbound_at
    return {
        WindowState.OPEN: inbound >= closing_before,
        WindowState.CLOSING: and_(inbound > expired_before, inbound < closing_before),
        WindowState.CLOSED: inbound <= expired_before,
        WindowState.UNKNOWN: inbound.is_(None),
    }[WindowState(state)]
