"""Scheduled jobs that must run once at a time across every worker and instance."""

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy import text

from app.extensions import db
from app.models import JobRun


def lock_key(job: str) -> int:
    """The job's PostgreSQL advisory-lock key: a stable signed 64-bit number from its name."""
    return int.from_bytes(hashlib.sha256(f"handoff:{job}".encode()).digest()[:8], "big", signed=True)


@contextmanager
def single_runner(job: str) -> Iterator[bool]:
    """Yields whether this process may run ``job`` now: False while another process runs it.

    On PostgreSQL a session advisory lock on a connection of its own, so the job's commits do not release it and
    a crashed runner's lock dies with its connection. SQLite lives on one machine, so a lock on a file next to
    the database does the same."""
    engine = db.engine
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            key = lock_key(job)
            held = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
            try:
                yield held
            finally:
                if held:
                    connection.scalar(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield True  # one process owns an in-memory database
        return
    with Path(f"{database}.{job}.lock").open("a") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def record_run(
    job: str, *, started_at: datetime, finished_at: datetime, summary: dict | None = None, error: str | None = None
) -> None:
    """Keep ``job``'s last run (its summary, or the error that ended it) for the health panel; commits."""
    run = db.session.get(JobRun, job) or JobRun(job=job)
    run.started_at, run.finished_at = started_at, finished_at
    run.succeeded, run.summary, run.error = error is None, summary or {}, error
    db.session.add(run)
    db.session.commit()
