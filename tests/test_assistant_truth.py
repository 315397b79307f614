"""The AI assistant's state, honestly: Handoff knows who paused it and when, sees it (or another tool) write again
after the pause, through a webhook or a sync, and calls that an incident while a person has the conversation."""

import json
import uuid
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.clock import utcnow
from app.domain.assistant import assistant_state
from app.domain.deliveries import receive_delivery
from app.domain.reporting import incidents_between, incidents_per_day
from app.domain.sending import Reply, send_reply
from app.extensions import db
from app.models import AuditEvent, AuditKind, Author, ConversationStatus, Role
from app.sandbox.customers import customer_says
from tests import factories


def paused_conversation(*, assigned: bool = True, minutes_ago: int = 10):
    agent = factories.make_user(name="Alex Agent")
    conversation = factories.make_conversation(last_inbound_at=utcnow() - timedelta(minutes=minutes_ago + 1))
    conversation.assistant_paused_at = utcnow() - timedelta(minutes=minutes_ago)
    conversation.assistant_paused_by_id = agent.id
    conversation.assignee_id = agent.id if assigned else None
    db.session.commit()
    return conversation, agent


def outbound_webhook(conversation, body: str, at=None):
    payload = {
        "event": "message.sent",
        "timestamp": (at or utcnow()).isoformat(),
        "data": {"contact_id": conversation.vambe_contact_id, "message_id": str(uuid.uuid4()), "message_body": body},
    }
    receive_delivery(json.dumps(payload).encode(), {}, "signature", now=utcnow())


def incidents() -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.kind == AuditKind.AI_AFTER_TAKEOVER)))


def test_a_message_after_the_pause_while_a_person_has_the_conversation_is_an_incident(app_ctx):
    conversation, agent = paused_conversation()
    assert assistant_state(conversation).paused
    outbound_webhook(conversation, "¡Hola! Soy el asistente virtual, ¿en qué te ayudo?")
    [incident] = incidents()
    assert incident.conversation_id == conversation.id and incident.message.author == Author.OTHER_TOOL
    state = assistant_state(conversation)
    assert not state.paused and state.active_again_at == incident.message.occurred_at
    assert state.paused_by.id == agent.id


@pytest.mark.parametrize("situation", ["unassigned", "resolved"])
def test_without_a_person_on_it_the_ai_is_simply_active_again(app_ctx, situation):
    conversation, _ = paused_conversation(assigned=situation != "unassigned")
    if situation == "resolved":
        conversation.status = ConversationStatus.RESOLVED
        db.session.commit()
    outbound_webhook(conversation, "Recordatorio automático")
    assert incidents() == []
    assert assistant_state(conversation).active_again_at is not None


def test_a_message_before_the_pause_is_no_incident_and_handoffs_own_send_neither(app_ctx):
    conversation, agent = paused_conversation()
    outbound_webhook(conversation, "Mensaje anterior del bot", at=utcnow() - timedelta(minutes=20))
    assert incidents() == []
    assert assistant_state(conversation).paused


def taken_over_in_the_sandbox(app):
    """A sandbox conversation assigned to an agent whose reply paused the AI (its echo comes back as a webhook)."""
    factories.make_sandbox_channels()
    conversation = factories.make_sandbox_conversation()
    agent = factories.make_user(name="Camila")
    conversation.assignee_id = agent.id
    db.session.commit()
    send_reply(
        conversation,
        agent,
        Reply(text="Hola, te atiendo yo", idempotency_key=uuid.uuid4().hex),
        client=app.extensions["vambe_client"],
        now=utcnow(),
        warning=app.config["WINDOW_WARNING"],
    )
    return conversation


def test_a_paused_reply_and_its_own_echo_raise_no_incident(app, app_ctx):
    conversation = taken_over_in_the_sandbox(app)
    assert incidents() == [] and assistant_state(conversation).paused


def test_the_sandbox_ai_told_to_misbehave_raises_the_incident_end_to_end(app, app_ctx):
    conversation = taken_over_in_the_sandbox(app)
    customer_says(conversation.phone, "Gracias", now=utcnow())  # a well-behaved AI stays quiet
    assert incidents() == []
    customer_says(conversation.phone, "¿Y el envío?", now=utcnow() + timedelta(seconds=1), ai_ignores_pause=True)
    [incident] = incidents()
    assert incident.conversation_id == conversation.id


def test_leads_see_incidents_per_day_and_mark_one_resumed_on_purpose_once(app, client, auth):
    lead_id = auth.login_as(Role.LEAD)
    with app.app_context():
        conversation, _ = paused_conversation()
        outbound_webhook(conversation, "El asistente volvió")
        [incident] = incidents()
        incident_id = incident.id
    html = client.get("/review/incidents").get_data(as_text=True)
    assert "El asistente volvió" in html and f'data-incident="{incident_id}"' in html
    report = client.get("/review/reports").get_data(as_text=True)
    assert "AI after takeover, per day" in report and "data-incidents-day=" in report
    token = auth.csrf_token("/review/incidents")
    for _ in range(2):
        assert client.post(f"/review/incidents/{incident_id}/resumed", data={"csrf_token": token}).status_code == 303
    with app.app_context():
        marks = db.session.scalars(select(AuditEvent).where(AuditEvent.kind == AuditKind.RESUMED_ON_PURPOSE)).all()
        assert [(mark.actor_id, mark.details["incident"]) for mark in marks] == [(lead_id, incident_id)]
    assert "Resumed on purpose (" in client.get("/review/incidents").get_data(as_text=True)


def test_agents_may_not_mark_incidents(app, client, auth):
    auth.login_as(Role.AGENT)
    with app.app_context():
        conversation, _ = paused_conversation()
        outbound_webhook(conversation, "El asistente volvió")
        incident_id = incidents()[0].id
    token = auth.csrf_token("/")
    assert client.post(f"/review/incidents/{incident_id}/resumed", data={"csrf_token": token}).status_code == 403
    assert client.get("/review/incidents").status_code == 403


def test_incidents_are_counted_per_local_day(app_ctx):
    conversation, _ = paused_conversation()
    outbound_webhook(conversation, "uno")
    outbound_webhook(conversation, "dos")
    now = utcnow()
    zone = ZoneInfo("UTC")
    days = incidents_per_day(now - timedelta(days=1), now + timedelta(days=1), zone)
    assert [count for _, count in days] == [2]
    assert len(incidents_between(now - timedelta(days=1), now + timedelta(days=1))) == 2


def test_the_conversation_says_how_the_assistant_state_is_known(app, client, auth):
    auth.login_as(Role.AGENT)
    with app.app_context():
        conversation, _ = paused_conversation()
        conversation_id = conversation.id
    html = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    assert "AI paused by Alex Agent" in html and "Turn the AI back on" in html and "Handoff cannot" in html
    with app.app_context():
        outbound_webhook(db.session.get(type(conversation), conversation_id), "Soy el bot")
    html = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    assert "AI active again since" in html and "Turn the AI back on" not in html
