"""Sessions end on the server: a copied cookie stops working after sign-out, a new password, a new role or
deactivation, and after the idle and absolute limits."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.domain import sessions
from app.extensions import db
from app.models import Role, User, UserSession
from tests import factories
from tests.conftest import TEST_PASSWORD, Auth, csrf_token_from

INBOX = "/"


def signed_in(app, email: str, role: Role = Role.AGENT) -> Auth:
    with app.app_context():
        if db.session.scalar(select(User).where(User.email == email)) is None:
            factories.make_user(email=email, role=role)
    auth = Auth(app, app.test_client())
    assert auth.login(email).status_code == 302
    return auth


def copy_of(app, auth: Auth):
    """Another client holding the same session cookie, as a thief with a copy would."""
    thief = app.test_client()
    cookie = auth.client.get_cookie(app.config.get("SESSION_COOKIE_NAME", "session"))
    thief.set_cookie(cookie.key, cookie.value)
    assert thief.get(INBOX).status_code == 200
    return thief


def post_admin(admin: Auth, path: str, **data):
    token = csrf_token_from(admin.client.get("/admin/users").get_data(as_text=True))
    return admin.client.post(path, data={"csrf_token": token, **data})


def user_id(app, email: str) -> int:
    with app.app_context():
        return db.session.scalar(select(User.id).where(User.email == email))


def age_session(app, column: str, age: timedelta) -> None:
    """As if ``age`` had passed since the session's ``column`` was written."""
    with app.app_context():
        for row in db.session.scalars(select(UserSession)):
            setattr(row, column, getattr(row, column) - age)
        db.session.commit()


def test_a_copied_cookie_stops_working_after_sign_out(app):
    agent = signed_in(app, "ana@example.com")
    thief = copy_of(app, agent)

    agent.client.post("/logout", data={"csrf_token": agent.csrf_token()})

    assert thief.get(INBOX).status_code == 302


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/admin/users/{id}/password", {"password": "a-new-password-9"}),
        ("/admin/users/{id}/role", {"role": "lead"}),
        ("/admin/users/{id}/active", {"active": "no"}),
    ],
    ids=["password", "role", "deactivated"],
)
def test_a_copied_cookie_stops_working_after_an_admin_change(app, path, data):
    agent = signed_in(app, "ana@example.com")
    thief = copy_of(app, agent)
    admin = signed_in(app, "boss@example.com", Role.ADMIN)

    response = post_admin(admin, path.format(id=user_id(app, "ana@example.com")), **data)

    assert response.status_code == 303
    assert thief.get(INBOX).status_code == 302
    assert agent.client.get(INBOX).status_code == 302
    assert admin.client.get(INBOX).status_code == 200


def test_an_admin_resetting_their_own_password_stays_signed_in_here_only(app):
    admin = signed_in(app, "boss@example.com", Role.ADMIN)
    elsewhere = signed_in(app, "boss@example.com")

    response = post_admin(admin, f"/admin/users/{user_id(app, 'boss@example.com')}/password", password="new-pass-42")

    assert response.status_code == 303
    assert admin.client.get(INBOX).status_code == 200
    assert elsewhere.client.get(INBOX).status_code == 302


def test_signing_out_in_one_browser_leaves_the_others_signed_in(app):
    first = signed_in(app, "ana@example.com")
    second = signed_in(app, "ana@example.com")

    first.client.post("/logout", data={"csrf_token": first.csrf_token()})

    assert second.client.get(INBOX).status_code == 200


@pytest.mark.parametrize(
    ("column", "age"),
    [("last_seen_at", sessions.IDLE_LIMIT), ("created_at", sessions.ABSOLUTE_LIMIT)],
    ids=["idle", "absolute"],
)
def test_a_session_ends_after_its_limits(app, column, age):
    agent = signed_in(app, "ana@example.com")
    age_session(app, column, age)

    assert agent.client.get(INBOX).status_code == 302


def test_the_store_keeps_only_a_hash_of_the_token(app):
    agent = signed_in(app, "ana@example.com")
    cookie = agent.client.get_cookie("session").value
    with app.app_context():
        [row] = db.session.scalars(select(UserSession)).all()
    assert row.token_hash not in cookie and len(row.token_hash) == 64


def test_last_seen_is_written_at_most_every_few_minutes(app):
    agent = signed_in(app, "ana@example.com")
    with app.app_context():
        before = db.session.scalar(select(UserSession.last_seen_at))
    agent.client.get(INBOX)
    with app.app_context():
        assert db.session.scalar(select(UserSession.last_seen_at)) == before
    age_session(app, "last_seen_at", timedelta(minutes=6))
    agent.client.get(INBOX)
    with app.app_context():
        assert db.session.scalar(select(UserSession.last_seen_at)) > before - timedelta(minutes=1)


class TestBackToThePageAfterSigningInAgain:
    def test_an_htmx_poll_that_finds_the_session_ended_sends_back_to_the_page(self, app):
        agent = signed_in(app, "ana@example.com")
        agent.client.post("/logout", data={"csrf_token": agent.csrf_token()})

        response = agent.client.get(
            "/conversations/7/live",
            headers={"HX-Request": "true", "HX-Current-URL": "http://localhost/conversations/7?quote=3"},
        )

        assert response.status_code == 401
        assert response.headers["HX-Redirect"] == "/login?next=/conversations/7?quote%3D3"

    @pytest.mark.parametrize(
        "current", ["http://evil.example/steal", "javascript:alert(1)", "http://localhost//evil.example", ""]
    )
    def test_a_page_elsewhere_is_not_a_place_to_return_to(self, app, current):
        response = app.test_client().get("/", headers={"HX-Request": "true", "HX-Current-URL": current})
        assert response.headers["HX-Redirect"] == "/login"

    @pytest.mark.parametrize("target", ["//evil.example", "/\\evil.example", "https://evil.example", "/ok\x0a"])
    def test_a_hostile_next_is_ignored_after_signing_in(self, app, target):
        with app.app_context():
            factories.make_user(email="ana@example.com")
        auth = Auth(app, app.test_client())
        token = csrf_token_from(auth.client.get("/login").get_data(as_text=True))
        response = auth.client.post(
            "/login", data={"email": "ana@example.com", "password": TEST_PASSWORD, "csrf_token": token, "next": target}
        )
        assert response.status_code == 302 and response.headers["Location"] == "/"
