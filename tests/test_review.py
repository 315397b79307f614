"""Review: full-text search across conversations, the CSV export and the timeline (lead role)."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.searching import SearchFilters, search_messages
from app.models import Direction, Role
from tests import factories

T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def bodies(**filters) -> list[str]:
    return [hit.message.body for hit in search_messages(SearchFilters(**filters))]


@pytest.fixture
def corpus(app_ctx):
    ana = factories.make_conversation(name="Ana Pérez", phone="+56911112222")
    bruno = factories.make_conversation(name="Bruno Díaz", phone="+56933334444")
    factories.make_message(ana, body="Quiero escuchar la Canción del verano", occurred_at=T0)
    factories.make_message(ana, body="¿Dónde está mi PEDIDO?", occurred_at=T0 + timedelta(minutes=1))
    factories.make_message(
        bruno, body="El pedido 48213 salió hoy", direction=Direction.OUTBOUND, occurred_at=T0 + timedelta(days=1)
    )
    factories.make_message(bruno, body="100% de descuento_total", occurred_at=T0 + timedelta(days=2))
    return ana, bruno


@pytest.mark.parametrize("query", ["canción", "Cancion", "CANCION", "cancio"])
def test_search_ignores_accents_and_case_and_matches_prefixes(corpus, query):
    assert bodies(text=query) == ["Quiero escuchar la Canción del verano"]


def test_every_word_must_match(corpus):
    assert bodies(text="pedido 48213") == ["El pedido 48213 salió hoy"]
    assert bodies(text="pedido") == ["El pedido 48213 salió hoy", "¿Dónde está mi PEDIDO?"]
    assert bodies(text="pedido verano") == []


def test_query_syntax_characters_are_just_text(corpus):
    assert bodies(text='100% "descuento_total" AND OR NOT * ( ) :') == []
    assert bodies(text="descuento_total") == ["100% de descuento_total"]


def test_filters_combine_with_the_text(corpus):
    ana, _ = corpus
    assert bodies(text="pedido", direction="outbound") == ["El pedido 48213 salió hoy"]
    assert bodies(text="pedido", contact="Ana") == ["¿Dónde está mi PEDIDO?"]
    assert bodies(contact="3333 4444") == ["100% de descuento_total", "El pedido 48213 salió hoy"]
    assert bodies(since=T0 + timedelta(days=1), until=T0 + timedelta(days=2)) == ["El pedido 48213 salió hoy"]


def test_new_messages_are_searchable_at_once(corpus):
    ana, _ = corpus
    factories.make_message(ana, body="Una pregunta sobre la garantía", occurred_at=T0 + timedelta(days=3))
    assert bodies(text="garantia") == ["Una pregunta sobre la garantía"]


def test_review_needs_the_lead_role(app, auth):
    auth.login_as(Role.AGENT)
    assert auth.client.get("/review/?q=x").status_code == 403
    assert auth.client.get("/review/search.csv").status_code == 403


def test_search_page_shows_matches_in_context_with_links(app, auth):
    with app.app_context():
        conversation = factories.make_conversation(name="Camila Soto")
        first = factories.make_message(conversation, body="Hola, me cobraron dos veces", occurred_at=T0)
        match = factories.make_message(
            conversation, body="Sigo esperando la devolución", occurred_at=T0 + timedelta(hours=1)
        )
        ids = (conversation.id, first.id, match.id)
    auth.login_as(Role.LEAD)
    html = auth.client.get("/review/?q=devolucion").get_data(as_text=True)
    assert "Sigo esperando la devolución" in html
    assert "Hola, me cobraron dos veces" in html  # the message before it, for context
    assert f"/conversations/{ids[0]}#message-{ids[2]}" in html
    assert f"/review/conversations/{ids[0]}#message-{ids[2]}" in html


def test_csv_export_has_every_match_and_defuses_formulas(app, auth):
    with app.app_context():
        conversation = factories.make_conversation(name="=HYPERLINK(evil)", phone="+56955556666")
        factories.make_message(conversation, body="=1+1 reclamo", occurred_at=T0)
        factories.make_message(conversation, body="otro reclamo, con coma", occurred_at=T0 + timedelta(minutes=5))
    auth.login_as(Role.LEAD)
    response = auth.client.get("/review/search.csv?q=reclamo")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["body"] for row in rows] == ["'=1+1 reclamo", "otro reclamo, con coma"]
    assert {row["conversation"] for row in rows} == {"'=HYPERLINK(evil)"}
    assert {row["phone"] for row in rows} == {"+56955556666"}


def test_timeline_interleaves_messages_and_audit_events(app, auth):
    from app.clock import utcnow
    from app.domain.assigning import assign
    from app.extensions import db
    from app.models import User

    with app.app_context():
        conversation = factories.make_conversation(name="Diego")
        factories.make_message(conversation, body="Hola", occurred_at=utcnow() - timedelta(minutes=5))
        lead = factories.make_user(email="boss@example.com", role=Role.LEAD, name="Boss")
        assign(conversation, lead, db.session.get(User, lead.id), now=utcnow())
        conversation_id = conversation.id
    auth.login("boss@example.com")
    html = auth.client.get(f"/review/conversations/{conversation_id}").get_data(as_text=True)
    assert html.index("Hola") < html.index("assigned the conversation to Boss")
