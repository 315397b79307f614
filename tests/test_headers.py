"""Every answer carries the security headers; signed-in pages are never cached."""

import pytest

from app.models import Role
from tests import factories

SIGNED_IN_PAGES = [
    "/",
    "/conversations/{id}",
    "/conversations/{id}/live",
    "/quick-replies",
    "/review/",
    "/review/reports",
    "/review/conversations/{id}",
    "/admin/users",
    "/admin/settings",
    "/admin/audit",
    "/sandbox/",
]


@pytest.fixture
def conversation_id(app):
    with app.app_context():
        return factories.make_conversation().id


def assert_security_headers(response) -> None:
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_every_signed_in_page_carries_the_headers_and_is_not_stored(auth, conversation_id):
    auth.login_as(Role.ADMIN)
    for path in SIGNED_IN_PAGES:
        response = auth.client.get(path.format(id=conversation_id))
        assert response.status_code == 200, path
        assert_security_headers(response)
        assert response.headers["Cache-Control"] == "no-store", path


def test_error_pages_and_the_login_page_carry_them_too(client):
    for path in ("/login", "/no-such-page", "/conversations/1"):
        assert_security_headers(client.get(path))


def test_static_files_may_be_cached(client):
    response = client.get("/static/app.css")
    response.close()
    assert response.status_code == 200
    assert response.headers.get("Cache-Control") != "no-store"
    assert_security_headers(response)
