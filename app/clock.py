"""The only place that reads the wall clock; domain code takes ``now`` as an argument."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)
