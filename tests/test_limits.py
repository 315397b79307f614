"""Oversized requests are refused before anything is stored; the audit trail keeps bounded copies."""

from sqlalchemy import func, select

from app.extensions import db
from app.models import AUDIT_TEXT_LIMIT, AuditEvent, AuditKind, Message, QuickReply, Role, bounded
from tests import factories
from tests.conftest import csrf_token_from


def test_a_multi_megabyte_field_is_413_and_nothing_is_stored(app, auth):
    auth.login_as(Role.AGENT)
    with app.app_context():
        conversation_id = factories.make_conversation().id
    token = auth.csrf_token(f"/conversations/{conversation_id}")

    response = auth.client.post(
        f"/conversations/{conversation_id}/messages",
        data={"csrf_token": token, "idempotency_key": "k-big", "message": "x" * (3 * 1024 * 1024)},
    )

    assert response.status_code == 413
    assert "larger than any form" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(Message.id))) == 0


def test_a_field_over_the_form_limit_is_413_even_in_a_small_body(app, auth):
    auth.login_as(Role.LEAD)
    token = auth.csrf_token("/quick-replies")

    response = auth.client.post(
        "/quick-replies",
        data={"csrf_token": token, "shortcut": "big", "body": "y" * (200 * 1024)},
        content_type="multipart/form-data",
    )

    assert response.status_code == 413
    with app.app_context():
        assert db.session.scalar(select(func.count(QuickReply.id))) == 0


def test_a_long_value_reaches_the_audit_trail_cut_and_marked(app, client):
    with app.app_context():
        factories.make_user(email="ana@example.com")
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"csrf_token": token, "email": "a" * 100_000 + "@example.com", "password": "x"})

    with app.app_context():
        [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.kind == AuditKind.LOGIN_FAILED)).all()
    assert len(event.details["email"]) < AUDIT_TEXT_LIMIT + 20 and event.details["email"].endswith("[…cut]")


def test_bounded_cuts_at_any_depth():
    value = bounded({"a": ["z" * 10_000] * 500, "b": {"c": "z" * 10_000}})
    assert len(value["a"]) == 50 and len(value["a"][0]) <= AUDIT_TEXT_LIMIT + 10
    assert len(value["b"]["c"]) <= AUDIT_TEXT_LIMIT + 10
