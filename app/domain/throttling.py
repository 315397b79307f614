"""Sign-in throttling, counted in the database so that it holds across workers, instances and parallel requests.

Three counters: the pair (account, address) stops one guesser; the address stops one guesser spraying many
accounts; the account notices guessing spread over many addresses. A blocked pair or address waits a delay that
doubles with every further failure; the account counter never blocks anyone by itself (that would let anyone
lock any agent out), it only cuts each address's free tries for that account down to one, so the agent signing
in from their own address is at most slowed, never locked out by someone else's guessing.

An attempt is charged to its account and address before its password is checked, so parallel requests cannot
all slip through; a success refunds it. The pair's counter stays locked while the password is checked, so one
guesser's parallel attempts are checked one at a time and stop at the limit.
"""

import hashlib
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select, update

from app.domain.ingesting import insert_ignoring_conflict
from app.extensions import db
from app.models import LoginThrottle


@dataclass(frozen=True)
class Policy:
    free: int  # attempts taken before the next one has to wait
    first_delay: timedelta
    max_delay: timedelta
    forget_after: timedelta  # a counter left alone this long starts again from zero


PAIR = Policy(5, timedelta(seconds=15), max_delay=timedelta(minutes=15), forget_after=timedelta(hours=1))
ADDRESS = Policy(30, timedelta(seconds=15), max_delay=timedelta(minutes=15), forget_after=timedelta(hours=1))
# Failures for one account, from any address, after which every address gets a single free try for it.
ACCOUNT_UNDER_ATTACK = 10
ACCOUNT_FORGET_AFTER = timedelta(minutes=15)
PAIR_TRIES_UNDER_ATTACK = 1


class Throttled(Exception):
    """Too many failed sign-ins; ``retry_after`` seconds until the next try is taken."""

    def __init__(self, retry_after: int):
        super().__init__(f"try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Charge:
    """An attempt counted against its account and address, for the rest of the sign-in."""

    account: str
    address: str
    pair: str
    under_attack: bool


def charge_attempt(email: str, address: str, *, now: datetime) -> Charge:
    """Count an attempt against its account and address before anything else; raise Throttled (counting
    nothing) while the address must wait. Commits, so that these locks last a moment, not a password check."""
    account, place = key("account", email), key("address", address)
    rows = locked_rows([account, place], now)
    if wait := wait_for(rows[place], now):
        db.session.rollback()
        raise Throttled(wait)
    under_attack = attempts_now(rows[account], ACCOUNT_FORGET_AFTER, now) >= ACCOUNT_UNDER_ATTACK
    advance(rows[account], None, ACCOUNT_FORGET_AFTER, now)
    advance(rows[place], ADDRESS, ADDRESS.forget_after, now)
    db.session.commit()
    return Charge(account, place, key("pair", f"{email}|{address}"), under_attack)


def hold_pair(charge: Charge, *, now: datetime) -> LoginThrottle:
    """Lock the (account, address) counter until the caller commits, so that one guesser's parallel attempts are
    checked one after another, each knowing how the last went; raise Throttled while the pair must wait."""
    pair = locked_rows([charge.pair], now)[charge.pair]
    if wait := wait_for(pair, now):
        db.session.rollback()
        raise Throttled(wait)
    return pair


def record_outcome(charge: Charge, pair: LoginThrottle, *, succeeded: bool, now: datetime) -> None:
    """A failure counts against the pair, whose next attempt may then have to wait; a success was no failure:
    the account and address get their attempt back, and the pair starts afresh. The caller commits."""
    if not succeeded:
        policy = replace(PAIR, free=PAIR_TRIES_UNDER_ATTACK) if charge.under_attack else PAIR
        advance(pair, policy, policy.forget_after, now)
        return
    pair.attempts, pair.blocked_until = 0, None
    for name in sorted([charge.account, charge.address]):  # in the keys' order, as locked_rows takes them
        db.session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.key == name, LoginThrottle.attempts > 0)
            .values(attempts=LoginThrottle.attempts - 1)
        )


def key(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{value}".encode("utf-8", "surrogatepass")).hexdigest()


def locked_rows(keys: list[str], now: datetime) -> dict[str, LoginThrottle]:
    """The counters, created when missing and locked until the commit. Every lock is taken row by row in the
    keys' order, inserts included: one UPDATE over several keys locks them in whatever order it meets them, and two
    sign-ins sharing an account or an address then deadlock. The no-op UPDATE takes the row lock on PostgreSQL and
    the write lock on SQLite before anything is read."""
    for name in sorted(keys):
        insert_ignoring_conflict(LoginThrottle, {"key": name, "attempts": 0, "last_attempt_at": now}, "key")
        db.session.execute(update(LoginThrottle).where(LoginThrottle.key == name).values(key=LoginThrottle.key))
    rows = db.session.scalars(
        select(LoginThrottle).where(LoginThrottle.key.in_(keys)).execution_options(populate_existing=True)
    )
    return {row.key: row for row in rows}


def attempts_now(row: LoginThrottle, forget_after: timedelta, now: datetime) -> int:
    return 0 if now - row.last_attempt_at > forget_after else row.attempts


def wait_for(row: LoginThrottle, now: datetime) -> int:
    """Whole seconds until ``row`` takes an attempt again (0: now)."""
    if row.blocked_until is None or row.blocked_until <= now:
        return 0
    return math.ceil((row.blocked_until - now).total_seconds())


def advance(row: LoginThrottle, policy: Policy | None, forget_after: timedelta, now: datetime) -> None:
    """Charge one attempt; from the policy's last free one on, the next attempt waits a delay that doubles each time."""
    row.attempts = attempts_now(row, forget_after, now) + 1
    row.last_attempt_at = now
    if policy is not None and row.attempts >= policy.free:
        delay = policy.first_delay * 2 ** min(row.attempts - policy.free, 20)
        row.blocked_until = now + min(delay, policy.max_delay)
