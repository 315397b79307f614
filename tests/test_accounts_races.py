"""Two admins removing each other (deactivating or demoting) at the same moment, each in their own session:
exactly one change is saved and an active admin remains, on SQLite and on PostgreSQL."""

import re
import threading

import pytest
from sqlalchemy import event, select

from app.clock import utcnow
from app.domain.accounts import AccountError, change_role, set_active
from app.extensions import db
from app.models import AuditEvent, AuditKind, Role, User
from tests import factories

# Only a safety net against a hang: when things work, no wait comes near it.
RACE_TIMEOUT_SECONDS = 30
WRITES_OR_LOCKS = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b|\bFOR (NO KEY |KEY )?(UPDATE|SHARE)\b", re.IGNORECASE)


def deactivate(user: User, actor: User) -> None:
    set_active(user, False, actor=actor, now=utcnow())


def demote(user: User, actor: User) -> None:
    change_role(user, Role.AGENT, actor=actor, now=utcnow())


class PointOfNoReturn:
    """Holds each racing thread before its first statement that writes or locks rows, until every racer is there.

    By then each has read what it reads first (who the admins are, how many), and none has changed anything or
    holds a lock: the moment at which two unsynchronised changes would both still see the other admin."""

    def __init__(self, racers: int):
        self.barrier = threading.Barrier(racers, timeout=RACE_TIMEOUT_SECONDS)
        self.racing = threading.local()

    def arm(self) -> None:
        """Called by a racing thread before it starts."""
        self.racing.armed = True

    def disarm(self) -> None:
        """Called by a racing thread when it ends: one that never got there must not keep the others waiting."""
        if getattr(self.racing, "armed", False):
            self.barrier.abort()

    def before_cursor_execute(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if getattr(self.racing, "armed", False) and WRITES_OR_LOCKS.search(statement):
            self.racing.armed = False
            self.barrier.wait()


def race(app, changes) -> list[str]:
    """Run each (change, user id, actor id) in its own thread, app context and session; each one's outcome:
    "saved", "refused" (AccountError) or the unexpected exception."""
    point = PointOfNoReturn(len(changes))
    outcomes = [None] * len(changes)

    def run(index: int, change, user_id: int, actor_id: int) -> None:
        point.arm()
        try:
            with app.app_context():
                user, actor = db.session.get(User, user_id), db.session.get(User, actor_id)
                try:
                    change(user, actor)
                    outcomes[index] = "saved"
                except AccountError:
                    outcomes[index] = "refused"
        except Exception as error:  # noqa: BLE001  (reported by the test)
            outcomes[index] = repr(error)
        finally:
            point.disarm()

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", point.before_cursor_execute)
    try:
        threads = [threading.Thread(target=run, args=(i, *change)) for i, change in enumerate(changes)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(RACE_TIMEOUT_SECONDS * 2)
            assert not thread.is_alive(), "a racing change hung"
    finally:
        event.remove(engine, "before_cursor_execute", point.before_cursor_execute)
    return outcomes


@pytest.mark.parametrize(
    ("ana_does", "bea_does"),
    [
        pytest.param(deactivate, deactivate, id="both-deactivate"),
        pytest.param(demote, demote, id="both-demote"),
        pytest.param(deactivate, demote, id="one-deactivates-the-other-demotes"),
    ],
)
def test_two_admins_removing_each_other_at_once_leave_an_active_admin(app, ana_does, bea_does):
    with app.app_context():
        ana = factories.make_user(email="ana@example.com", role=Role.ADMIN).id
        bea = factories.make_user(email="bea@example.com", role=Role.ADMIN).id
        before = db.session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1)) or 0

    outcomes = race(app, [(ana_does, bea, ana), (bea_does, ana, bea)])

    with app.app_context():
        active_admins = db.session.scalars(
            select(User.email).where(User.role == Role.ADMIN, User.active.is_(True))
        ).all()
        events = db.session.scalars(
            select(AuditEvent.kind).where(
                AuditEvent.id > before, AuditEvent.kind.in_([AuditKind.USER_DEACTIVATED, AuditKind.ROLE_CHANGED])
            )
        ).all()
    assert len(active_admins) >= 1, f"no active admin left: {outcomes}"
    assert sorted(outcomes) == ["refused", "saved"], outcomes
    assert len(events) == 1, events  # the refused change left no trace
