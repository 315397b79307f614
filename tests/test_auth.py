import pytest
from werkzeug.security import check_password_hash

from app import models
from app.domain.accounts import find_user
from app.extensions import db
from app.models import Role
from tests import factories
from tests.conftest import TEST_PASSWORD, csrf_token_from


def test_login_page_labels_its_fields(client):
    html = client.get("/login").get_data(as_text=True)
    assert '<label for="email">Email</label>' in html
    assert '<label for="password">Password</label>' in html
    assert ">Sign in</button>" in html


def test_signing_in_lands_on_the_inbox(app, auth):
    with app.app_context():
        factories.make_user(email="ana@example.com")
    response = auth.login("ANA@example.com ")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert auth.client.get("/").status_code == 200


def test_wrong_password_is_refused_without_saying_which_field_was_wrong(app, auth):
    with app.app_context():
        factories.make_user(email="ana@example.com")
    response = auth.login("ana@example.com", "not the password")
    assert response.status_code == 422
    assert "Wrong email or password." in response.get_data(as_text=True)
    assert auth.client.get("/").status_code == 302


def test_unknown_email_gets_the_same_answer(auth):
    response = auth.login("nobody@example.com")
    assert response.status_code == 422
    assert "Wrong email or password." in response.get_data(as_text=True)


def test_deactivated_user_cannot_sign_in(app, auth):
    with app.app_context():
        user = factories.make_user(email="gone@example.com")
        user.active = False
        db.session.commit()
    assert auth.login("gone@example.com").status_code == 422


@pytest.fixture
def password_checks(monkeypatch):
    """The password hashes checked against, wherever they are checked."""
    checked = []

    def spy(password_hash: str, password: str) -> bool:
        checked.append(password_hash)
        return check_password_hash(password_hash, password)

    monkeypatch.setattr("app.models.check_password_hash", spy)
    monkeypatch.setattr("app.domain.accounts.check_password_hash", spy, raising=False)
    return checked


@pytest.mark.parametrize("case", ["unknown-email", "wrong-password", "deactivated"])
def test_every_refused_sign_in_checks_one_password_hash_so_timing_does_not_tell_who_exists(
    app, auth, password_checks, case
):
    with app.app_context():
        user = factories.make_user(email="ana@example.com")
        user.active = case != "deactivated"
        db.session.commit()
        real_hash = user.password_hash
    email, password = {
        "unknown-email": ("nobody@example.com", TEST_PASSWORD),
        "wrong-password": ("ana@example.com", "not the password"),
        "deactivated": ("ana@example.com", TEST_PASSWORD),
    }[case]

    assert auth.login(email, password).status_code == 422

    assert len(password_checks) == 1, password_checks
    # A real user's hash, or one made the same way (same method, same cost) when there is no such user.
    assert password_checks[0].startswith(f"{models.PASSWORD_HASH_METHOD}$")
    assert (password_checks[0] == real_hash) == (case != "unknown-email")


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param(lambda user_id: str(user_id), id="bare-id-from-before-the-password-digest"),
        pytest.param(lambda user_id: f"{user_id}.0123456789abcdef", id="another-password-digest"),
        pytest.param(lambda user_id: "not-an-id", id="garbage"),
    ],
)
def test_a_session_that_does_not_match_the_current_password_is_signed_out(auth, stored):
    user_id = auth.login_as(Role.AGENT)
    assert auth.client.get("/").status_code == 200
    with auth.client.session_transaction() as session:
        session["_user_id"] = stored(user_id)

    response = auth.client.get("/")

    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert auth.client.get("/login").status_code == 200


def test_login_without_csrf_token_is_rejected(app, client):
    with app.app_context():
        factories.make_user(email="ana@example.com")
    response = client.post("/login", data={"email": "ana@example.com", "password": TEST_PASSWORD})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_next_is_followed_only_within_the_site(app, client):
    with app.app_context():
        factories.make_user(email="ana@example.com")
    for target, expected in [
        ("/conversations/1", "/conversations/1"),
        ("https://evil.example/", "/"),
        ("//evil.example", "/"),
    ]:
        token = csrf_token_from(client.get(f"/login?next={target}").get_data(as_text=True))
        response = client.post(
            "/login", data={"email": "ana@example.com", "password": TEST_PASSWORD, "csrf_token": token, "next": target}
        )
        assert response.headers["Location"] == expected
        client.post("/logout", data={"csrf_token": csrf_token_from(client.get("/").get_data(as_text=True))})


def test_logout_needs_a_post_with_csrf(auth):
    auth.login_as(Role.AGENT)
    assert auth.client.get("/logout").status_code == 405
    assert auth.client.post("/logout").status_code == 400
    assert auth.client.get("/").status_code == 200
    auth.client.post("/logout", data={"csrf_token": auth.csrf_token()})
    assert auth.client.get("/").status_code == 302


def test_anonymous_htmx_request_is_redirected_by_header_not_by_302(client):
    response = client.get("/", headers={"HX-Request": "true", "HX-Request-Type": "partial"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login")


def test_passwords_are_stored_hashed(app_ctx):
    user = factories.make_user(email="ana@example.com", password="s3cret-password")
    assert "s3cret-password" not in user.password_hash
    assert user.check_password("s3cret-password")


def test_cli_creates_a_user_from_stdin(app):
    result = app.test_cli_runner().invoke(
        args=["users", "create", "Lead@Example.com", "--role", "lead", "--password-stdin"], input="long-enough-pw\n"
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = find_user("lead@example.com")
        assert user.role == Role.LEAD
        assert user.check_password("long-enough-pw")


def test_cli_refuses_a_duplicate_or_weak_account(app):
    runner = app.test_cli_runner()
    runner.invoke(args=["users", "create", "a@example.com", "--password-stdin"], input="long-enough-pw\n")
    duplicate = runner.invoke(args=["users", "create", "A@example.com", "--password-stdin"], input="long-enough-pw\n")
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output
    weak = runner.invoke(args=["users", "create", "b@example.com", "--password-stdin"], input="short\n")
    assert weak.exit_code != 0 and "at least 8" in weak.output
