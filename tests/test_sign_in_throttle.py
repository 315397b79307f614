"""Sign-in throttling: counted in the database before any password is checked, per pair, address and account."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.clock import utcnow
from app.domain import accounts
from app.extensions import db
from app.models import LoginThrottle, User
from tests import factories
from tests.conftest import TEST_PASSWORD, Auth

WRONG = "not the password"


def browser(app, address: str = "198.51.100.7") -> Auth:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return Auth(app, client)


@pytest.fixture
def password_checks(monkeypatch):
    """How many passwords were actually hashed and compared (real or dummy)."""
    calls = []
    real_check, real_dummy = User.check_password, accounts.check_password_hash

    def counted_check(self, password):
        calls.append("user")
        return real_check(self, password)

    def counted_dummy(*args):
        calls.append("dummy")
        return real_dummy(*args)

    monkeypatch.setattr(User, "check_password", counted_check)
    monkeypatch.setattr(accounts, "check_password_hash", counted_dummy)
    return calls


def make_user(app, email: str) -> None:
    with app.app_context():
        factories.make_user(email=email)


def expire_blocks(app) -> None:
    """As if the delays had passed."""
    with app.app_context():
        db.session.execute(update(LoginThrottle).values(blocked_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()


def test_parallel_wrong_passwords_are_checked_no_more_than_the_limit(app, password_checks):
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("parallel requests need a database that takes concurrent writers")
    make_user(app, "ana@example.com")
    workers = 24
    barrier = threading.Barrier(workers)
    statuses = []

    def guess() -> None:
        guesser = browser(app)
        token = guesser.csrf_token("/login")
        barrier.wait()
        response = guesser.client.post(
            "/login", data={"email": "ana@example.com", "password": WRONG, "csrf_token": token}
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=guess) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(password_checks) <= 5
    assert sorted(set(statuses)) == [422, 429]
    assert browser(app).login("ana@example.com", TEST_PASSWORD).status_code == 429


def test_a_throttled_attempt_checks_no_password_and_says_when_to_come_back(app, password_checks):
    make_user(app, "ana@example.com")
    guesser = browser(app)
    for _ in range(5):
        assert guesser.login("ana@example.com", WRONG).status_code == 422
    checked = len(password_checks)

    refused = guesser.login("ana@example.com", TEST_PASSWORD)

    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "15"
    assert "Wait 15 seconds" in refused.get_data(as_text=True)
    assert len(password_checks) == checked


def test_the_delay_doubles_with_each_failure_after_it(app):
    make_user(app, "ana@example.com")
    guesser = browser(app)
    for _ in range(5):
        guesser.login("ana@example.com", WRONG)
    retry_afters = []
    for _ in range(3):
        expire_blocks(app)
        assert guesser.login("ana@example.com", WRONG).status_code == 422  # taken again once the delay passed
        retry_afters.append(guesser.login("ana@example.com", WRONG).headers["Retry-After"])

    assert retry_afters == ["30", "60", "120"]


def test_the_right_password_after_the_delay_signs_in_and_the_pair_starts_afresh(app):
    make_user(app, "ana@example.com")
    owner = browser(app)
    for _ in range(5):
        owner.login("ana@example.com", WRONG)
    expire_blocks(app)

    assert owner.login("ana@example.com", TEST_PASSWORD).status_code == 302
    owner.client.post("/logout", data={"csrf_token": owner.csrf_token()})
    for _ in range(4):
        assert owner.login("ana@example.com", WRONG).status_code == 422  # five free tries again


def test_spraying_many_accounts_from_one_address_is_throttled(app):
    emails = [f"agent{n}@example.com" for n in range(31)]
    for email in emails:
        make_user(app, email)
    sprayer = browser(app, "203.0.113.9")
    answers = [sprayer.login(email, WRONG).status_code for email in emails[:30]]

    assert answers == [422] * 30
    assert sprayer.login(emails[30], TEST_PASSWORD).status_code == 429  # even the right password, while blocked
    assert browser(app, "192.0.2.44").login(emails[30], TEST_PASSWORD).status_code == 302  # others are not


def test_guessing_from_elsewhere_never_locks_the_owner_out(app):
    make_user(app, "ana@example.com")
    for n in range(12):  # a spread-out attack: many addresses, a few guesses each
        attacker = browser(app, f"203.0.113.{n}")
        for _ in range(6):
            attacker.login("ana@example.com", WRONG)

    assert browser(app, "192.0.2.10").login("ana@example.com", TEST_PASSWORD).status_code == 302

    # Under attack, each new address gets one free try for that account.
    newcomer = browser(app, "198.51.100.99")
    assert newcomer.login("ana@example.com", WRONG).status_code == 422
    assert newcomer.login("ana@example.com", WRONG).status_code == 429


def test_no_email_or_address_is_stored_in_the_clear(app):
    make_user(app, "ana@example.com")
    browser(app, "203.0.113.200").login("ana@example.com", WRONG)
    with app.app_context():
        keys = db.session.scalars(select(LoginThrottle.key)).all()
    assert len(keys) == 3
    assert not any("ana" in key or "203.0.113" in key for key in keys)
