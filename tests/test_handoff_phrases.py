"""Admins keep the phrases with which customers ask for a person: listed by language, added and removed with an
audit trail, refused clearly when they would be duplicates or match nothing."""

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEvent, AuditKind, HandoffPhrase, Role
from tests.conftest import Auth

PHRASES = "/admin/handoff-phrases"


def post(auth: Auth, path: str, **data: str):
    return auth.client.post(path, data={"csrf_token": auth.csrf_token(PHRASES), **data})


def phrases(app) -> dict[str, list[str]]:
    with app.app_context():
        listed = {}
        for phrase in db.session.scalars(select(HandoffPhrase).order_by(HandoffPhrase.id)):
            listed.setdefault(phrase.language, []).append(phrase.phrase)
        return listed


def test_the_defaults_cover_spanish_portuguese_and_english(app, client, auth):
    auth.login_as(Role.ADMIN)
    listed = phrases(app)
    assert "hablar con una persona" in listed["es"]
    assert "falar com um atendente" in listed["pt"]
    assert "human please" in listed["en"]
    html = client.get(PHRASES).get_data(as_text=True)
    assert "“hablar con una persona”" in html and "“falar com um atendente”" in html


def test_an_admin_adds_and_removes_a_phrase_and_both_are_audited(app, client, auth):
    admin_id = auth.login_as(Role.ADMIN)
    response = post(auth, PHRASES, language="es", phrase="  Atención   humana ")
    assert response.status_code == 303
    assert "Atención humana" in phrases(app)["es"]
    with app.app_context():
        added = db.session.scalar(select(HandoffPhrase).where(HandoffPhrase.phrase == "Atención humana"))
        assert added.folded == "atencion humana"
        phrase_id = added.id
    assert post(auth, f"{PHRASES}/{phrase_id}/delete").status_code == 303
    assert "Atención humana" not in phrases(app)["es"]
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        kinds = [(e.kind, e.actor_id, e.details) for e in events if e.kind.startswith("handoff_phrase")]
    details = {"language": "es", "phrase": "Atención humana"}
    assert kinds == [
        (AuditKind.HANDOFF_PHRASE_ADDED, admin_id, details),
        (AuditKind.HANDOFF_PHRASE_REMOVED, admin_id, details),
    ]


@pytest.mark.parametrize(
    ("language", "phrase", "reason"),
    [
        ("es", "Hablar  con UNA persona", "already in the Spanish list"),
        ("es", "¡hablar con una persona!", "already in the Spanish list"),
        ("pt", "FALAR COM UM ATENDENTE", "already in the Portuguese list"),
        ("fr", "parler à quelqu'un", "Choose a language"),
        ("", "hola humano", "Choose a language"),
        ("es", "", "2 to 100 characters"),
        ("es", "   ", "2 to 100 characters"),
        ("es", "x" * 101, "2 to 100 characters"),
        ("es", "?!", "needs words"),
        ("es", "123 456", "needs words"),
        ("es", "hola\x07humano", "control characters"),
    ],
)
def test_a_refused_phrase_says_why_and_stores_nothing(app, client, auth, language, phrase, reason):
    auth.login_as(Role.ADMIN)
    with app.app_context():
        before = db.session.scalar(select(func.count(HandoffPhrase.id)))
    response = post(auth, PHRASES, language=language, phrase=phrase)
    assert response.status_code == 422
    assert reason in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(HandoffPhrase.id))) == before


@pytest.mark.parametrize("role", [Role.AGENT, Role.LEAD])
def test_only_admins_manage_phrases(app, client, auth, role):
    auth.login_as(role)
    assert client.get(PHRASES).status_code == 403
    token = auth.csrf_token("/")
    assert (
        client.post(PHRASES, data={"csrf_token": token, "language": "es", "phrase": "hola humano"}).status_code == 403
    )
    with app.app_context():
        phrase_id = db.session.scalar(select(HandoffPhrase.id).limit(1))
    assert client.post(f"{PHRASES}/{phrase_id}/delete", data={"csrf_token": token}).status_code == 403
    assert "hola humano" not in phrases(app)["es"]


def test_changes_need_the_csrf_token(app, client, auth):
    auth.login_as(Role.ADMIN)
    assert client.post(PHRASES, data={"language": "es", "phrase": "hola humano"}).status_code == 400
    assert "hola humano" not in phrases(app)["es"]


def test_removing_a_phrase_that_is_gone_is_a_404(app, client, auth):
    auth.login_as(Role.ADMIN)
    assert post(auth, f"{PHRASES}/999999/delete").status_code == 404
