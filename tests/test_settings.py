"""Every user's own settings: language, time zone, and changing their own password."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent, AuditKind, Role, User
from app.presenting import viewer_locale, viewer_zone_name
from tests import factories
from tests.conftest import TEST_PASSWORD, Auth


def test_settings_need_a_sign_in(client):
    assert client.get("/settings").status_code == 302


def test_a_user_chooses_language_and_time_zone(app, client, auth):
    me = auth.login_as(Role.AGENT)
    page = client.get("/settings").get_data(as_text=True)
    assert "Português (Brasil)" in page and "America/Santiago" in page
    token = auth.csrf_token("/settings")
    response = client.post(
        "/settings/preferences", data={"csrf_token": token, "language": "es", "time_zone": "America/Santiago"}
    )
    assert response.status_code == 303
    with app.app_context():
        user = db.session.get(User, me)
        assert (user.locale, user.time_zone) == ("es", "America/Santiago")
        [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.kind == AuditKind.PREFERENCES_CHANGED))
        assert event.details == {"user_id": me, "locale": "es", "time_zone": "America/Santiago"}
    response = client.post("/settings/preferences", data={"csrf_token": token, "language": "", "time_zone": ""})
    assert response.status_code == 303
    with app.app_context():
        user = db.session.get(User, me)
        assert (user.locale, user.time_zone) == (None, None)


@pytest.mark.parametrize(("language", "zone"), [("fr", ""), ("", "Mars/Olympus"), ("", "../etc")])
def test_an_unknown_language_or_zone_is_refused(app, client, auth, language, zone):
    auth.login_as(Role.AGENT)
    token = auth.csrf_token("/settings")
    response = client.post("/settings/preferences", data={"csrf_token": token, "language": language, "time_zone": zone})
    assert response.status_code == 422 and "Not a valid choice" in response.get_data(as_text=True)


def test_the_chosen_zone_wins_over_the_browsers_and_the_installations(app, client, auth):
    me = auth.login_as(Role.AGENT)
    with app.test_request_context(headers={"Cookie": "tz=Europe%2FMadrid"}):
        assert viewer_zone_name() == "Europe/Madrid"
    app.config["DEFAULT_TIMEZONE"] = "America/Sao_Paulo"
    with app.test_request_context(headers={"Cookie": "tz=Europe%2FMadrid"}):
        assert viewer_zone_name() == "America/Sao_Paulo"
    with app.app_context():
        db.session.get(User, me).time_zone = "America/Santiago"
        db.session.commit()
    client.set_cookie("tz", "Europe/Madrid")
    with app.app_context():
        conversation = factories.make_conversation(name="Rosa")
        factories.make_message(conversation, occurred_at=datetime(2026, 11, 10, 15, 0, tzinfo=UTC))
        conversation_id = conversation.id
    page = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    assert "10 Nov, 12:00" in page  # Santiago is UTC-3 in November


def test_the_language_follows_the_user_then_the_browser_then_the_installation(app):
    app.config["DEFAULT_LOCALE"] = "es"
    with app.test_request_context():
        assert viewer_locale() == "es"
    for asked, expected in (("pt-BR,pt;q=0.9", "pt_BR"), ("pt-PT", "pt_BR"), ("es-CL,es;q=0.9", "es"), ("de", "es")):
        with app.test_request_context(headers={"Accept-Language": asked}):
            assert viewer_locale() == expected, asked


def test_a_user_changes_their_own_password_and_their_other_sessions_end(app, client, auth):
    me = auth.login_as(Role.AGENT, email="own@example.com")
    elsewhere = Auth(app, app.test_client())
    assert elsewhere.login("own@example.com").status_code == 302
    token = auth.csrf_token("/settings")
    form = {"csrf_token": token, "current_password": TEST_PASSWORD, "new_password": "a brand new secret"}
    refused = client.post("/settings/password", data={**form, "confirm": "something else"})
    assert refused.status_code == 422 and "The two new passwords differ." in refused.get_data(as_text=True)
    wrong = client.post(
        "/settings/password",
        data={**form, "current_password": "not it", "confirm": "a brand new secret"},
    )
    assert wrong.status_code == 422 and "Your current password is not right." in wrong.get_data(as_text=True)
    short = client.post("/settings/password", data={**form, "new_password": "short", "confirm": "short"})
    assert short.status_code == 422 and "at least 8 characters" in short.get_data(as_text=True)
    assert client.post("/settings/password", data={**form, "confirm": "a brand new secret"}).status_code == 303
    assert client.get("/settings").status_code == 200  # this session goes on
    assert elsewhere.client.get("/settings").status_code == 302  # the other one ended
    assert elsewhere.login("own@example.com", "a brand new secret").status_code == 302
    with app.app_context():
        [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.kind == AuditKind.PASSWORD_CHANGED))
        assert (event.actor_id, event.details["user_id"]) == (me, me)
    assert client.post("/settings/password", data={**form, "csrf_token": ""}).status_code == 400


def test_exports_show_times_in_the_users_zone(app, client, auth):
    me = auth.login_as(Role.LEAD)
    with app.app_context():
        db.session.get(User, me).time_zone = "America/Sao_Paulo"
        conversation = factories.make_conversation(name="Rosa")
        factories.make_message(
            conversation, body="pedido atrasado", occurred_at=datetime(2026, 11, 10, 15, 0, tzinfo=UTC)
        )
        db.session.commit()
    rows = client.get("/review/search.csv?q=pedido").get_data(as_text=True).splitlines()
    assert rows[0].startswith("time,") and rows[1].startswith("2026-11-10T12:00:00-03:00,")


def test_spanish_pages_and_messages(app, client, auth):
    auth.login_as(Role.AGENT)
    page = client.get("/", headers={"Accept-Language": "es-CL,es;q=0.9"}).get_data(as_text=True)
    assert '<html lang="es">' in page and "Bandeja de entrada" in page and "Mi cuenta" in page
    missing = client.get("/conversations/999999", headers={"Accept-Language": "pt-BR"})
    assert missing.status_code == 404 and "Não existe a conversa nº 999999" in missing.get_data(as_text=True)
