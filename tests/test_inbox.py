"""The console over HTTP: full pages, htmx fragments, and the send form's answers."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent, Message, Role
from tests import factories

PARTIAL = {"HX-Request": "true", "HX-Request-Type": "partial"}


@pytest.fixture
def agent(auth):
    return auth.login_as(Role.AGENT)


def make_conversation(app, **kwargs):
    with app.app_context():
        return factories.make_sandbox_conversation(**kwargs).id


def send_form(auth, conversation_id, **fields):
    html = auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    data = {
        "csrf_token": re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1),
        "idempotency_key": re.search(r'name="idempotency_key" type="hidden" value="([^"]+)"', html).group(1),
        "message": "Hola, te ayudo yo",
        "pause_assistant": "y",
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def messages_of(app, conversation_id):
    with app.app_context():
        return db.session.scalars(select(Message).where(Message.conversation_id == conversation_id)).all()


def test_inbox_requires_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_inbox_lists_conversations_with_their_window(app, client, agent):
    make_conversation(app, name="Valentina Rojas", last_inbound_ago=timedelta(minutes=10))
    make_conversation(app, name="Camila Soto", last_inbound_ago=timedelta(hours=30))
    make_conversation(app, name="Joaquín Pérez", last_inbound_ago=None)
    html = client.get("/").get_data(as_text=True)
    assert "Valentina Rojas" in html and re.search(r"Window open · 23 h (49|50) m left", html)
    assert "Camila Soto" in html and "Window closed" in html
    assert "Joaquín Pérez" in html and "No inbound message yet" in html


def test_every_page_says_it_is_the_sandbox(app, client, agent):
    conversation_id = make_conversation(app)
    for path in ("/", f"/conversations/{conversation_id}", "/missing-page"):
        assert "Sandbox mode." in client.get(path).get_data(as_text=True)


def test_conversation_page_is_full_and_partial_request_gets_the_panel(app, client, agent):
    conversation_id = make_conversation(app, name="Valentina Rojas")
    page = client.get(f"/conversations/{conversation_id}")
    fragment = client.get(f"/conversations/{conversation_id}", headers=PARTIAL)
    boosted = client.get(f"/conversations/{conversation_id}", headers={"HX-Request": "true", "HX-Request-Type": "full"})
    assert "<html" in page.get_data(as_text=True)
    assert "<html" in boosted.get_data(as_text=True)
    assert fragment.get_data(as_text=True).lstrip().startswith('<section id="conversation-panel"')
    assert {"HX-Request", "HX-Request-Type"} <= set(page.vary)


def test_unknown_conversation_is_404(client, agent):
    assert client.get("/conversations/999").status_code == 404


def test_composer_has_its_accessible_controls(app, client, agent):
    html = client.get(f"/conversations/{make_conversation(app)}").get_data(as_text=True)
    assert re.search(r'<label for="message">Message</label>', html)
    assert re.search(
        r'<input checked id="pause_assistant" name="pause_assistant" type="checkbox" value="y"> Pause assistant', html
    )
    assert ">Send</button>" in html


def test_send_without_htmx_redirects_to_the_thread(app, auth, agent):
    conversation_id = make_conversation(app)
    response = auth.client.post(f"/conversations/{conversation_id}/messages", data=send_form(auth, conversation_id))
    assert response.status_code == 303
    [message] = [m for m in messages_of(app, conversation_id) if m.direction == "outbound"]
    assert response.headers["Location"] == f"/conversations/{conversation_id}#message-{message.id}"
    assert message.outcome == "sent"
    assert "Hola, te ayudo yo" in auth.client.get(response.headers["Location"]).get_data(as_text=True)


def test_send_with_htmx_returns_the_updated_panel_with_an_empty_composer(app, auth, agent):
    conversation_id = make_conversation(app)
    form = send_form(auth, conversation_id)
    response = auth.client.post(f"/conversations/{conversation_id}/messages", data=form, headers=PARTIAL)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Sent: Vambe accepted the message." in html
    assert re.search(r'<textarea[^>]*name="message"[^>]*>\s*</textarea>', html)
    assert form["idempotency_key"] not in html  # the next message gets a new key


def test_double_submit_with_the_same_key_sends_once(app, auth, agent):
    conversation_id = make_conversation(app)
    form = send_form(auth, conversation_id)
    for _ in range(3):
        auth.client.post(f"/conversations/{conversation_id}/messages", data=form, headers=PARTIAL)
    assert len([m for m in messages_of(app, conversation_id) if m.direction == "outbound"]) == 1


def test_empty_message_is_422_and_keeps_the_form_state(app, auth, agent):
    conversation_id = make_conversation(app)
    form = send_form(auth, conversation_id, message="   ")
    response = auth.client.post(f"/conversations/{conversation_id}/messages", data=form, headers=PARTIAL)
    assert response.status_code == 422
    assert "Type a message before sending." in response.get_data(as_text=True)
    assert form["idempotency_key"] in response.get_data(as_text=True)
    assert [m for m in messages_of(app, conversation_id) if m.direction == "outbound"] == []


def test_closed_window_is_announced_before_typing(app, client, agent):
    html = client.get(f"/conversations/{make_conversation(app, last_inbound_ago=timedelta(hours=30))}").get_data(
        as_text=True
    )
    assert "The 24-hour window closed" in html
    # Free text needs a reason and "Send anyway"; there is no plain Send to press by mistake.
    assert 'name="override_reason"' in html and ">Send anyway</button>" in html
    assert ">Send</button>" not in html


def test_send_outside_the_window_asks_for_confirmation_then_records_the_override(app, auth, agent):
    conversation_id = make_conversation(app, last_inbound_ago=timedelta(hours=30))
    form = send_form(auth, conversation_id, message="Hola Camila, ¿sigues ahí?")
    refused = auth.client.post(f"/conversations/{conversation_id}/messages", data=form, headers=PARTIAL)
    assert refused.status_code == 409
    html = refused.get_data(as_text=True)
    assert "Outside the 24-hour window." in html and ">Send anyway</button>" in html
    assert "Hola Camila, ¿sigues ahí?" in html  # the text survives the warning
    assert messages_of(app, conversation_id)[-1].direction == "inbound"

    no_reason = auth.client.post(
        f"/conversations/{conversation_id}/messages", data={**form, "confirm_outside_window": "yes"}, headers=PARTIAL
    )
    assert no_reason.status_code == 409 and "Say why (a few words)" in no_reason.get_data(as_text=True)
    assert messages_of(app, conversation_id)[-1].direction == "inbound"

    confirmed = auth.client.post(
        f"/conversations/{conversation_id}/messages",
        data={**form, "confirm_outside_window": "yes", "override_reason": "Lo pidió por teléfono"},
        headers=PARTIAL,
    )
    assert confirmed.status_code == 200
    message = messages_of(app, conversation_id)[-1]
    assert message.window_override and message.outcome == "failed"  # the sandbox enforces WhatsApp's rule
    assert "#131047" in message.outcome_reason
    assert "Hola Camila, ¿sigues ahí?" in confirmed.get_data(as_text=True)  # kept for a retry
    with app.app_context():
        [override] = db.session.scalars(select(AuditEvent).where(AuditEvent.kind == "window_override")).all()
        assert override.details["reason"] == "Lo pidió por teléfono"


def test_failed_send_without_htmx_renders_the_page_with_the_text_kept(app, auth, agent):
    conversation_id = make_conversation(app, last_inbound_ago=timedelta(hours=30))
    form = send_form(
        auth, conversation_id, message="Texto que no se pierde", confirm_outside_window="yes", override_reason="Urgente"
    )
    response = auth.client.post(f"/conversations/{conversation_id}/messages", data=form)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Not sent" in html
    assert re.search(r"<textarea[^>]*>\s*Texto que no se pierde</textarea>", html)


def test_quote_link_puts_a_chip_in_the_composer_and_the_quote_is_sent(app, auth, agent):
    conversation_id = make_conversation(app)
    [inbound] = messages_of(app, conversation_id)
    html = auth.client.get(f"/conversations/{conversation_id}?quote={inbound.id}").get_data(as_text=True)
    assert "Replying to" in html and f'name="reply_to" type="hidden" value="{inbound.id}"' in html
    form = send_form(auth, conversation_id, reply_to=str(inbound.id))
    auth.client.post(f"/conversations/{conversation_id}/messages", data=form)
    sent = messages_of(app, conversation_id)[-1]
    assert sent.quoted_message_id == inbound.id and sent.outcome == "sent"


def test_quote_of_a_message_from_another_conversation_is_ignored_on_the_page_and_refused_on_send(app, auth, agent):
    conversation_id = make_conversation(app)
    other_id = make_conversation(app)
    [foreign] = messages_of(app, other_id)
    html = auth.client.get(f"/conversations/{conversation_id}?quote={foreign.id}").get_data(as_text=True)
    assert "Replying to" not in html
    response = auth.client.post(
        f"/conversations/{conversation_id}/messages",
        data=send_form(auth, conversation_id, reply_to=str(foreign.id)),
        headers=PARTIAL,
    )
    assert response.status_code == 422


def test_unchecked_pause_is_sent_as_false_and_does_not_pause(app, auth, agent):
    conversation_id = make_conversation(app)
    auth.client.post(
        f"/conversations/{conversation_id}/messages", data=send_form(auth, conversation_id, pause_assistant=None)
    )
    sent = messages_of(app, conversation_id)[-1]
    assert sent.pause_assistant is False
    html = auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    assert "The AI assistant is active for this contact." in html


def test_paused_assistant_shows_who_paused_it(app, auth, agent):
    conversation_id = make_conversation(app)
    auth.client.post(f"/conversations/{conversation_id}/messages", data=send_form(auth, conversation_id))
    html = auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    assert re.search(r"Paused by agent-\w+", html)


def test_business_number_choice_appears_only_with_several_numbers(app, client, agent):
    one = make_conversation(app)
    assert "Send from" not in client.get(f"/conversations/{one}").get_data(as_text=True)
    with app.app_context():
        factories.make_sandbox_channels((1951, "56211111111", "Ventas"), (1952, "56222222222", "Soporte"))
    html = client.get(f"/conversations/{one}").get_data(as_text=True)
    assert "Send from" in html and "Soporte (+56222222222)" in html


def test_the_api_key_never_reaches_a_page(app, auth, agent):
    conversation_id = make_conversation(app)
    key = app.config["VAMBE_API_KEY"]
    pages = [
        auth.client.get(path).get_data(as_text=True) for path in ("/", f"/conversations/{conversation_id}", "/nope")
    ]
    pages.append(
        auth.client.post(
            f"/conversations/{conversation_id}/messages", data=send_form(auth, conversation_id), headers=PARTIAL
        ).get_data(as_text=True)
    )
    assert all(key not in page for page in pages)


def test_times_render_in_the_viewers_time_zone(app, client, agent):
    conversation_id = make_conversation(app, last_inbound_ago=timedelta(minutes=5))
    [message] = messages_of(app, conversation_id)
    client.set_cookie("tz", "America%2FSantiago")  # as static/localtime.js writes it
    html = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    from zoneinfo import ZoneInfo

    local = message.occurred_at.astimezone(ZoneInfo("America/Santiago")).strftime("%d %b, %H:%M")
    assert local in html
    client.set_cookie("tz", "Not/AZone")
    assert client.get(f"/conversations/{conversation_id}").status_code == 200


def test_a_reply_moves_its_conversation_to_the_top_of_the_inbox(app, auth, agent):
    older = make_conversation(app, name="Older Customer", last_inbound_ago=timedelta(hours=2))
    make_conversation(app, name="Newer Customer", last_inbound_ago=timedelta(minutes=1))
    html = auth.client.get("/").get_data(as_text=True)
    assert html.index("Newer Customer") < html.index("Older Customer")
    auth.client.post(f"/conversations/{older}/messages", data=send_form(auth, older))
    html = auth.client.get("/").get_data(as_text=True)
    assert html.index("Older Customer") < html.index("Newer Customer")
