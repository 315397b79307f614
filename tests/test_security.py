"""Every state-changing route: anonymous users are turned away, and CSRF is enforced."""

import pytest

from app.models import Role

# Routes that authenticate their caller another way: the sandbox's fake Vambe API by API key,
# Vambe's webhooks by signature or URL token.
NOT_SESSION_ROUTES = {"sandbox.send_session_message", "sandbox.send_template_message", "webhooks.receive_vambe"}


def state_changing_rules(app):
    return [
        rule
        for rule in app.url_map.iter_rules()
        if rule.methods & {"POST", "PUT", "PATCH", "DELETE"}
        and rule.endpoint not in NOT_SESSION_ROUTES
        and rule.endpoint != "auth.login"
    ]


def concrete_path(rule) -> str:
    return rule.build({name: 1 for name in rule.arguments})[1]


def test_there_are_state_changing_routes_to_check(app):
    assert {rule.endpoint for rule in state_changing_rules(app)} >= {
        "auth.logout",
        "inbox.send",
        "inbox.refresh",
        "sandbox.send_as_customer",
    }


def test_routes_outside_the_session_refuse_anonymous_callers(client):
    assert client.post("/sandbox/api/public/whatsapp/message/session", json={}).status_code == 401
    assert client.post("/webhooks/vambe", json={}).status_code == 401


def test_anonymous_requests_to_state_changing_routes_go_to_login(app, client):
    for rule in state_changing_rules(app):
        response = client.post(concrete_path(rule))
        assert response.status_code in (302, 400), rule.endpoint
        if response.status_code == 302:
            assert response.headers["Location"].startswith("/login"), rule.endpoint


def test_state_changing_routes_reject_a_missing_csrf_token(app, auth):
    auth.login_as(Role.ADMIN)
    for rule in state_changing_rules(app):
        response = auth.client.post(concrete_path(rule), data={})
        assert response.status_code == 400, rule.endpoint
        assert "Reload the page" in response.get_data(as_text=True)


@pytest.mark.parametrize("header", ["X-CSRFToken"])
def test_htmx_requests_may_carry_the_token_in_a_header(app, auth, header):
    auth.login_as(Role.AGENT)
    token = auth.csrf_token()
    response = auth.client.post("/logout", headers={header: token})
    assert response.status_code == 302
    assert auth.client.get("/").status_code == 302


def test_sandbox_api_refuses_a_caller_without_its_key(client):
    response = client.get("/sandbox/api/public/channels/whatsapp")
    assert response.status_code == 401
    assert response.get_json()["statusCode"] == 401


def test_error_pages_never_show_the_api_key_or_a_traceback(app, auth):
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/boom")
    def boom():
        raise RuntimeError(f"exploded with {app.config['VAMBE_API_KEY']}")

    auth.login_as(Role.AGENT)
    response = auth.client.get("/boom")
    body = response.get_data(as_text=True)
    assert response.status_code == 500
    assert app.config["VAMBE_API_KEY"] not in body and "Traceback" not in body
