"""The inbox tells the truth at a glance: who waits for a human and for how long, who wrote last, which reply
failed; and a keyboard user can skip straight to the content."""

import re
from datetime import timedelta

import pytest

from app.clock import utcnow
from app.extensions import db
from app.models import Author, Direction, Handoff, HandoffReason, Outcome, Role, User
from tests import factories
from tests.test_inbox_listing import NOW, all_pages, conversation, names, page


def waiting(conversation_, *, since: timedelta, reason=HandoffReason.PHRASE, detail="hablar con una persona", **fields):
    handoff = Handoff(
        conversation_id=conversation_.id, reason=reason, detail=detail, requested_at=NOW - since, **fields
    )
    db.session.add(handoff)
    db.session.commit()
    return handoff


@pytest.fixture
def viewer(app_ctx):
    return factories.make_user(name="Camila Agent")


class TestWaitingView:
    def test_it_lists_only_conversations_waiting_for_a_human_longest_wait_first(self, viewer):
        for name, minutes in (("Ana", 5), ("Bea", 30), ("Cata", 12)):
            waiting(conversation(name, inbound_ago=timedelta(minutes=1)), since=timedelta(minutes=minutes))
        taken = conversation("Taken", inbound_ago=timedelta(minutes=1))
        waiting(taken, since=timedelta(hours=2), taken_at=NOW, taken_by_id=viewer.id)
        answered = conversation("Answered", inbound_ago=timedelta(minutes=1))
        waiting(answered, since=timedelta(hours=3), answered_at=NOW, ended_at=NOW)
        conversation("Never asked", inbound_ago=timedelta(minutes=1))

        assert names(viewer, scope="waiting") == ["Bea", "Cata", "Ana"]
        assert names(viewer, scope="waiting", sort="closing_soon") == ["Bea", "Cata", "Ana"]  # the wait decides

    def test_it_pages_by_wait(self, viewer):
        for minutes in (50, 40, 30, 20, 10):
            waiting(conversation(f"W{minutes}", inbound_ago=timedelta(minutes=1)), since=timedelta(minutes=minutes))
        assert all_pages(viewer, limit=2, scope="waiting") == [["W50", "W40"], ["W30", "W20"], ["W10"]]

    def test_each_row_knows_its_wait_in_every_view(self, viewer):
        asked = conversation("Asked", inbound_ago=timedelta(minutes=1))
        handoff = waiting(asked, since=timedelta(minutes=14))
        conversation("Quiet", inbound_ago=timedelta(minutes=2))
        rows = {row.conversation.name: row for row in page(viewer).rows}
        assert rows["Asked"].waiting.id == handoff.id and rows["Quiet"].waiting is None


def test_the_waiting_view_over_http_shows_the_wait_and_why(app, client, auth):
    auth.login_as(Role.AGENT)
    with app.app_context():
        asked = factories.make_conversation(name="Ana Pide", last_inbound_at=NOW)
        db.session.add(
            Handoff(
                conversation_id=asked.id,
                reason=HandoffReason.VAMBE_STATUS,
                detail="unattended",
                requested_at=utcnow() - timedelta(hours=1, minutes=5),
            )
        )
        db.session.commit()
        factories.make_conversation(name="Otro Cliente", last_inbound_at=NOW)
    html = client.get("/?scope=waiting").get_data(as_text=True)
    assert "Ana Pide" in html and "Otro Cliente" not in html
    badge = re.search(r'<span class="fact waiting-badge" title="([^"]*)">([^<]*)</span>', html)
    assert badge.group(2) == "Waiting for a human · 1 h 5 m"
    assert "Vambe marks the contact as waiting for a human (unattended)" in badge.group(1)
    assert re.search(r'<option selected value="waiting">Waiting for a human</option>', html)


class TestCustomerWroteLast:
    def test_unanswered_means_no_human_reply_since_the_customer_wrote(self, viewer):
        after_human = conversation("Customer after human", inbound_ago=timedelta(minutes=5))
        after_human.last_human_reply_at = NOW - timedelta(minutes=10)
        human_after = conversation("Human after customer", inbound_ago=timedelta(minutes=10))
        human_after.last_human_reply_at = NOW - timedelta(minutes=5)
        ai_after = conversation("AI after customer", inbound_ago=timedelta(minutes=10))
        ai_after.last_message_at = NOW - timedelta(minutes=9)  # the AI answered; no person has
        conversation("Never wrote")
        conversation("Never answered", inbound_ago=timedelta(minutes=20))
        db.session.commit()

        assert names(viewer, unanswered_only=True) == ["Customer after human", "AI after customer", "Never answered"]

    def test_the_filter_over_http(self, app, client, auth):
        auth.login_as(Role.AGENT)
        with app.app_context():
            factories.make_conversation(name="Sin Respuesta", last_inbound_at=NOW)
            answered = factories.make_conversation(name="Respondida", last_inbound_at=NOW - timedelta(minutes=3))
            answered.last_human_reply_at = NOW
            db.session.commit()
        html = client.get("/?unanswered=y").get_data(as_text=True)
        assert "Sin Respuesta" in html and "Respondida" not in html
        assert re.search(r'<input checked id="unanswered"', html)


@pytest.mark.parametrize(
    ("outcome", "label"), [(Outcome.FAILED, "Reply failed"), (Outcome.UNKNOWN, "Reply: delivery unknown")]
)
def test_a_row_whose_last_reply_failed_says_so(app, client, auth, outcome, label):
    agent_id = auth.login_as(Role.AGENT)
    with app.app_context():
        chat = factories.make_conversation(name="Con Problema", last_inbound_at=NOW)
        reply = factories.make_agent_reply(chat, db.session.get(User, agent_id), NOW, outcome=outcome)
        chat.last_message_at = reply.occurred_at
        fine = factories.make_conversation(name="Sin Problema", last_inbound_at=NOW - timedelta(minutes=1))
        factories.make_agent_reply(fine, db.session.get(User, agent_id), NOW - timedelta(seconds=30))
        db.session.commit()
    html = client.get("/").get_data(as_text=True)
    rows = re.findall(r'<li>\s*<a href="/conversations/\d+".*?</li>', html, re.S)
    troubled = [row for row in rows if "Con Problema" in row]
    assert troubled and label in troubled[0]
    assert not [row for row in rows if "Sin Problema" in row and "reply-trouble" in row]


def test_every_page_starts_with_a_skip_link_to_its_content(client, auth):
    pages = [client.get("/login").get_data(as_text=True)]
    auth.login_as(Role.AGENT)
    pages.append(client.get("/").get_data(as_text=True))
    for html in pages:
        body = html[html.index("<body") :]
        first_link = re.search(r"<a [^>]*>", body).group(0)
        assert 'href="#main"' in first_link and "skip-link" in first_link
        assert re.search(r'<main [^>]*id="main"', html)


def test_a_message_outbound_from_the_ai_is_not_a_failed_reply(app, client, auth):
    auth.login_as(Role.AGENT)
    with app.app_context():
        chat = factories.make_conversation(name="Con IA", last_inbound_at=NOW)
        factories.make_message(chat, direction=Direction.OUTBOUND, author=Author.ASSISTANT, outcome=Outcome.FAILED)
    assert "reply-trouble" not in client.get("/").get_data(as_text=True)
