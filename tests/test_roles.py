"""The role matrix: every route of the URL map, tried as anonymous, agent, lead and admin."""

import pytest

from app.clock import utcnow
from app.domain.quick_replies import save_quick_reply
from app.extensions import db
from app.models import Role, WebhookDelivery
from tests import factories

# The least role each area needs; None: no session at all (public, or authenticated another way).
LEAD_ENDPOINTS = {"inbox.list_replies", "inbox.create_reply", "inbox.edit_reply", "inbox.delete_reply"}
PUBLIC_ENDPOINTS = {"static", "auth.login", "health.healthz", "health.readyz"}
OTHER_AUTHENTICATION = {"webhooks.receive_vambe"}  # signature or URL token
API_KEY_ENDPOINTS_PREFIX = "/sandbox/api/"


def required_role(endpoint: str) -> Role | None:
    if endpoint in PUBLIC_ENDPOINTS or endpoint in OTHER_AUTHENTICATION:
        return None
    if endpoint.startswith("admin."):
        return Role.ADMIN
    if endpoint in LEAD_ENDPOINTS or endpoint.startswith("review."):
        return Role.LEAD
    return Role.AGENT


RANK = {None: 0, Role.AGENT: 1, Role.LEAD: 2, Role.ADMIN: 3}


def routes(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(API_KEY_ENDPOINTS_PREFIX):
            continue  # the sandbox's fake Vambe API: tested with its key in test_sandbox.py
        path = rule.build(
            {name: 1 for name in rule.arguments} | ({"filename": "app.css"} if "filename" in rule.arguments else {})
        )[1]
        for method in sorted(rule.methods & {"GET", "POST"}):
            yield rule.endpoint, method, path


@pytest.fixture
def world(app):
    """Rows with id 1 for every kind of route argument."""
    with app.app_context():
        admin = factories.make_user(email="owner@example.com", role=Role.ADMIN)
        conversation = factories.make_sandbox_conversation()
        save_quick_reply("hello", "Hola", actor=admin, now=utcnow())
        db.session.add(
            WebhookDelivery(received_at=utcnow(), authenticated_by="url_token", headers={}, body="{}", state="failed")
        )
        db.session.commit()
        return conversation.id


@pytest.mark.parametrize("role", [None, Role.AGENT, Role.LEAD, Role.ADMIN], ids=["anonymous", "agent", "lead", "admin"])
def test_every_route_answers_each_role_as_the_matrix_says(app, auth, world, role):
    if role is not None:
        auth.login_as(role)
    token = auth.csrf_token("/login") if role is None else auth.csrf_token()
    checked = 0
    for endpoint, method, path in routes(app):
        needed = required_role(endpoint)
        if endpoint == "auth.logout" or endpoint == "auth.login" and method == "POST":
            continue  # would end or change this very session; covered in test_auth.py
        if method == "GET":
            response = auth.client.get(path)
        else:
            response = auth.client.post(path, data={"csrf_token": token})
        where = f"{method} {path} ({endpoint}) as {role or 'anonymous'}"
        if endpoint in OTHER_AUTHENTICATION:
            assert response.status_code == 401, where  # a session, even an admin's, is not a signature
        elif RANK[role] < RANK[needed]:
            response.close()
            if role is None:
                assert response.status_code == 302 and "/login" in response.headers["Location"], where
            else:
                assert response.status_code == 403, where
        else:
            assert response.status_code not in (401, 403) and not (
                response.status_code == 302 and "/login" in response.headers.get("Location", "")
            ), where
            assert response.status_code < 500, where
        response.close()
        checked += 1
    assert checked >= 25  # every route and method of the URL map but the two that end the session
