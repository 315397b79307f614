"""Delivery reconciliation: Vambe's history is the only word on what became of a message. States move forward
only; a send WhatsApp failed after Vambe accepted it reaches its agent; sends of unknown fate are settled; what the
webhooks never delivered is added and counted; one runner at a time; the health panel shows it all."""

import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.clock import utcnow
from app.domain import handoffs
from app.domain.health import health
from app.domain.ingesting import advance_outcome
from app.domain.jobs import single_runner
from app.domain.reconciling import NOT_IN_HISTORY, reconcile, reconcile_now, settings_from
from app.extensions import db
from app.models import AuditEvent, AuditKind, Author, Conversation, JobRun, Message, Outcome, Role, User
from app.sandbox.customers import customer_says, whatsapp_reports
from app.sandbox.state import SandboxMessage
from app.vambe import VambeUnauthorized, failure_reason
from tests import factories
from tests.conftest import Auth
from tests.test_assistant_truth import incidents, taken_over_in_the_sandbox

WARNING = timedelta(hours=1)

# (state held, state reported, state after, a late failure?) for an agent's send.
TRANSITIONS = [
    ("sending", "sent", "sent", False),
    ("sending", "failed", "failed", False),  # Vambe's answer, not news learnt later
    ("sent", "delivered", "delivered", False),
    ("sent", "read", "read", False),
    ("delivered", "read", "read", False),
    ("unknown", "sent", "sent", False),
    ("unknown", "delivered", "delivered", False),
    ("sent", "failed", "failed", True),
    ("unknown", "failed", "failed", True),
    ("delivered", "sent", "delivered", False),
    ("read", "delivered", "read", False),
    ("read", "sent", "read", False),
    ("delivered", "failed", "delivered", False),
    ("read", "failed", "read", False),
    ("failed", "sent", "failed", False),
    ("failed", "delivered", "failed", False),
    ("failed", "read", "failed", False),
    ("sent", "sending", "sent", False),
    ("read", "unknown", "read", False),
    ("sent", "received", "sent", False),
]


@pytest.mark.parametrize(("held", "reported", "after", "late"), TRANSITIONS)
def test_states_move_forward_only(held, reported, after, late):
    now = utcnow()
    message = Message(author=Author.AGENT, outcome=held, body="Hola", updated_at=now - timedelta(hours=1))
    moved = advance_outcome(message, Outcome(reported), now, "(#131026) Message undeliverable")
    assert (message.outcome, moved) == (after, after != held)
    assert (message.failed_late_at is not None) == late
    if after == "failed" and held != "failed":
        assert message.outcome_reason == "(#131026) Message undeliverable"


def test_only_a_persons_send_is_a_late_failure():
    message = Message(author=Author.ASSISTANT, outcome=Outcome.SENT, body="Hola")
    assert advance_outcome(message, Outcome.FAILED, utcnow())
    assert message.outcome == Outcome.FAILED and message.failed_late_at is None


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"error": "Message undeliverable"}, "Message undeliverable"),
        ({"error_message": "  Re-engagement\n message "}, "Re-engagement message"),
        ({"errors": [{"code": 131026, "message": "Undeliverable"}]}, "(131026) Undeliverable"),
        ({"error": {"title": "Rate limit hit"}}, "Rate limit hit"),
        ({"failure_reason": "x" * 400}, "x" * 300),
        ({"error": 5}, None),
        ({"errors": []}, None),
        ({}, None),
    ],
)
def test_whatsapps_reason_is_read_under_any_of_its_names(item, reason):
    assert failure_reason(item) == reason


def reconcile_once(app, *, now=None, **settings):
    return reconcile(
        app.extensions["vambe_client"], now=now or utcnow(), wait=None, **{**settings_from(app.config), **settings}
    )


def agents_send(conversation) -> Message:
    db.session.expire_all()
    return db.session.scalars(
        select(Message).where(Message.conversation_id == conversation.id, Message.author == Author.AGENT)
    ).one()


def sandbox_copy(message: Message) -> SandboxMessage:
    return db.session.get(SandboxMessage, message.provider_message_id)


def test_a_send_whatsapp_failed_after_vambe_accepted_it_reaches_its_agent(app, app_ctx):
    conversation = taken_over_in_the_sandbox(app)
    send = agents_send(conversation)
    assert send.outcome == Outcome.SENT and send.provider_message_id  # the webhook echo named it
    whatsapp_reports(send.provider_message_id, "failed")

    report = reconcile_once(app)

    send = agents_send(conversation)
    assert send.outcome == Outcome.FAILED and send.failed_late_at is not None
    assert "131026" in send.outcome_reason and "after Vambe accepted it" in send.outcome_reason
    assert (report.late_failures, report.advanced, report.missed) == (1, 1, 0)
    agent = db.session.get(User, send.author_user_id)
    assert handoffs.alerts_for(agent, now=utcnow(), warning=WARNING, lead=False).my_late_failures == 1
    again = reconcile_once(app)
    assert (again.late_failures, again.advanced) == (0, 0)


def test_delivered_then_read_and_never_back(app, app_ctx):
    conversation = taken_over_in_the_sandbox(app)
    send = agents_send(conversation)
    whatsapp_reports(send.provider_message_id, "delivered")
    reconcile_once(app)
    assert agents_send(conversation).outcome == Outcome.DELIVERED
    customer_says(conversation.phone, "Gracias, lo leí", now=utcnow())  # answering, the customer read it
    reconcile_once(app)
    assert agents_send(conversation).outcome == Outcome.READ
    whatsapp_reports(send.provider_message_id, "delivered")
    reconcile_once(app)
    assert agents_send(conversation).outcome == Outcome.READ


def test_messages_the_webhooks_never_delivered_are_added_and_counted_once(app, app_ctx):
    conversation = factories.make_sandbox_conversation(last_inbound_ago=timedelta(hours=30))
    customer_says(conversation.phone, "¿Siguen ahí?", now=utcnow(), lose_webhooks=True)  # the AI answers, also lost
    customer_says("+56 9 7777 1234", "Soy nuevo", name="Nueva", now=utcnow(), lose_webhooks=True)
    db.session.expire_all()
    assert db.session.get(Conversation, conversation.id).last_inbound_at < utcnow() - timedelta(hours=29)

    report = reconcile_once(app)

    assert report.missed == 4
    missed = db.session.scalars(select(Message).where(Message.missed_by_webhook)).all()
    assert sorted(m.body for m in missed if m.author == Author.CUSTOMER) == ["Soy nuevo", "¿Siguen ahí?"]
    assert {m.author for m in missed} == {Author.CUSTOMER, Author.ASSISTANT}
    db.session.expire_all()
    assert db.session.get(Conversation, conversation.id).last_inbound_at > utcnow() - timedelta(minutes=1)
    newcomer = db.session.scalar(select(Conversation).where(Conversation.phone == "+56977771234"))
    assert newcomer is not None and newcomer.name == "Nueva"
    assert health(now=utcnow()).missed_deliveries == 4
    assert reconcile_once(app).missed == 0


def test_what_the_webhooks_delivered_is_not_called_missed(app, app_ctx):
    conversation = factories.make_sandbox_conversation()
    customer_says(conversation.phone, "Hola de nuevo", now=utcnow())
    report = reconcile_once(app)
    assert report.missed == 0 and report.added == 0
    assert db.session.scalar(select(Message).where(Message.missed_by_webhook)) is None


def test_a_message_too_recent_for_its_webhook_to_have_arrived_waits_for_the_next_pass(app, app_ctx):
    conversation = factories.make_sandbox_conversation()
    customer_says(conversation.phone, "Recién escrito", now=utcnow(), lose_webhooks=True)
    settle = timedelta(minutes=2)
    assert reconcile_once(app, settle_after=settle).missed == 0
    assert reconcile_once(app, now=utcnow() + timedelta(minutes=3), settle_after=settle).missed == 2


def unknown_send(conversation, agent, body: str, *, minutes_ago: int) -> Message:
    """An agent's send whose answer was lost (and whose webhook never came)."""
    at = utcnow() - timedelta(minutes=minutes_ago)
    message = factories.make_agent_reply(conversation, agent, at, outcome=Outcome.UNKNOWN)
    message.body = body
    db.session.commit()
    return message


def test_sends_of_unknown_fate_are_settled_by_the_history(app, app_ctx):
    agent = factories.make_user(name="Alex")
    conversation = factories.make_sandbox_conversation(last_inbound_ago=timedelta(minutes=30))
    taken = unknown_send(conversation, agent, "Te llamo en un rato", minutes_ago=10)
    lost = unknown_send(conversation, agent, "Este nunca salió", minutes_ago=9)
    db.session.add(
        SandboxMessage(
            id=str(uuid.uuid4()),
            contact_id=conversation.vambe_contact_id,
            direction="OUTBOUND",
            sender="api",
            body="Te llamo en un rato",
            status="delivered",
            created_at=taken.occurred_at + timedelta(seconds=1),
        )
    )
    db.session.commit()

    report = reconcile_once(app, settle_after=timedelta(minutes=2))

    db.session.expire_all()
    taken, lost = db.session.get(Message, taken.id), db.session.get(Message, lost.id)
    assert taken.outcome == Outcome.DELIVERED and taken.provider_message_id and taken.failed_late_at is None
    assert (lost.outcome, lost.outcome_reason) == (Outcome.FAILED, NOT_IN_HISTORY)
    assert lost.failed_late_at is not None
    assert (report.unknown_settled, report.late_failures) == (1, 1)


def test_an_unknown_send_is_not_called_lost_while_the_history_could_not_be_read(app, app_ctx):
    agent = factories.make_user(name="Alex")
    conversation = factories.make_sandbox_conversation()
    send = unknown_send(conversation, agent, "¿Llegó?", minutes_ago=10)
    conversation.vambe_contact_id = str(uuid.uuid4())  # Vambe answers 404 for it
    db.session.commit()
    report = reconcile_once(app)
    assert report.unknown_settled == 0 and db.session.get(Message, send.id).outcome == Outcome.UNKNOWN


def test_the_ai_writing_after_the_takeover_is_an_incident_when_only_the_history_shows_it(app, app_ctx):
    conversation = taken_over_in_the_sandbox(app)
    customer_says(conversation.phone, "¿Hola?", now=utcnow(), ai_ignores_pause=True, lose_webhooks=True)
    assert incidents() == []
    reconcile_once(app)
    [incident] = incidents()
    assert incident.conversation_id == conversation.id and incident.message.missed_by_webhook


def test_one_runner_at_a_time_across_workers(app):
    entered, release = threading.Event(), threading.Event()

    def scheduled_pass():
        with app.app_context(), single_runner("reconcile"):
            entered.set()
            release.wait(30)

    worker = threading.Thread(target=scheduled_pass)
    worker.start()
    try:
        assert entered.wait(30)
        result = app.test_cli_runner().invoke(args=["reconcile"])
        assert result.exit_code == 0 and "Another reconciliation runs; skipped this turn." in result.output
        with app.app_context():
            admin = factories.make_user(role=Role.ADMIN)
            now = utcnow()
            assert (
                reconcile_now(
                    app.extensions["vambe_client"], actor=admin, now=now, clock=utcnow, **settings_from(app.config)
                )
                is None
            )
    finally:
        release.set()
        worker.join(30)
    result = app.test_cli_runner().invoke(args=["reconcile"])
    assert result.exit_code == 0 and "contacts read" in result.output
    with app.app_context():
        run = db.session.get(JobRun, "reconcile")
        assert run.succeeded and run.finished_at >= run.started_at


def test_vambe_errors_make_the_error_rate_and_a_failed_run(app):
    client = app.extensions["vambe_client"]
    assert app.test_cli_runner().invoke(args=["reconcile"]).exit_code == 0
    client.session.headers["x-api-key"] = "revoked"
    try:
        result = app.test_cli_runner().invoke(args=["reconcile"])
    finally:
        client.session.headers["x-api-key"] = app.config["VAMBE_API_KEY"]
    assert result.exit_code == 1 and "Vambe rejected Handoff's API key" in result.output
    with app.app_context():
        figures = health(now=utcnow())
        assert figures.vambe_calls >= 2 and figures.vambe_errors == 1
        assert not figures.reconciliation.succeeded and "API key" in figures.reconciliation.error
    with app.app_context(), pytest.raises(VambeUnauthorized):
        client.session.headers["x-api-key"] = "revoked"
        try:
            client.list_contacts(1)
        finally:
            client.session.headers["x-api-key"] = app.config["VAMBE_API_KEY"]


def test_the_agent_sees_the_late_failure_in_the_header_and_the_thread_until_they_open_it(app, client, auth):
    me = auth.login_as(Role.AGENT)
    with app.app_context():
        conversation = factories.make_sandbox_conversation()
        conversation.assignee_id = me
        db.session.commit()
        send = factories.make_agent_reply(conversation, db.session.get(User, me), utcnow() - timedelta(minutes=5))
        send.provider_message_id = str(uuid.uuid4())
        db.session.add(
            SandboxMessage(
                id=send.provider_message_id,
                contact_id=conversation.vambe_contact_id,
                direction="OUTBOUND",
                sender="api",
                body=send.body,
                status="sent",
                created_at=send.occurred_at,
            )
        )
        db.session.commit()
        whatsapp_reports(send.provider_message_id, "failed")
        reconcile_once(app)
        conversation_id, send_id = conversation.id, send.id
    header = client.get("/alerts", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "My messages that failed after sending" in header and 'data-late-failures="1"' in header
    mine = client.get("/late-failures").get_data(as_text=True)
    assert f'data-late-failure="{send_id}"' in mine and "131026" in mine
    thread = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    assert "Failed after Vambe accepted it" in thread
    header = client.get("/alerts", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'data-late-failures="0"' in header and "My messages that failed after sending" not in header


def test_someone_elses_look_does_not_clear_the_agents_count(app, client, auth):
    with app.app_context():
        sender = factories.make_user(name="Sender")
        conversation = factories.make_sandbox_conversation()
        send = factories.make_agent_reply(conversation, sender, utcnow() - timedelta(minutes=5))
        advance_outcome(send, Outcome.FAILED, utcnow(), "WhatsApp said no")
        db.session.commit()
        conversation_id, sender_id = conversation.id, sender.id
    auth.login_as(Role.LEAD)
    assert client.get(f"/conversations/{conversation_id}").status_code == 200
    listed = client.get("/review/late-failures").get_data(as_text=True)
    assert "WhatsApp said no" in listed and "Sender" in listed
    with app.app_context():
        sender = db.session.get(User, sender_id)
        assert handoffs.alerts_for(sender, now=utcnow(), warning=WARNING, lead=False).my_late_failures == 1


def test_the_health_panel_and_reconcile_now_are_for_admins(app, client, auth):
    lead = Auth(app, app.test_client())
    lead.login_as(Role.LEAD)
    assert lead.client.get("/admin/health").status_code == 403
    assert lead.client.post("/admin/reconcile", data={"csrf_token": lead.csrf_token()}).status_code == 403
    auth.login_as(Role.ADMIN)
    with app.app_context():
        conversation = factories.make_sandbox_conversation()
        customer_says(conversation.phone, "Perdido", now=utcnow(), lose_webhooks=True)
    page = client.get("/admin/health").get_data(as_text=True)
    assert 'data-health="missed"' in page and "Last reconciliation" in page and "never" in page
    token = auth.csrf_token("/admin/health")
    assert client.post("/admin/reconcile").status_code == 400  # no CSRF token
    response = client.post("/admin/reconcile", data={"csrf_token": token})
    assert response.status_code == 303
    page = client.get("/admin/health").get_data(as_text=True)
    assert "2 found that webhooks missed" in page
    with app.app_context():
        assert health(now=utcnow()).missed_deliveries == 2
        [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.kind == AuditKind.RECONCILED)).all()
        assert event.details["missed"] == 2
    assert client.get("/readyz").get_json() == {"ready": True, "database": "ok", "migrations": "at head"}


def test_the_sandbox_page_plays_whatsapps_statuses(app, client, auth):
    auth.login_as(Role.AGENT)
    with app.app_context():
        conversation = taken_over_in_the_sandbox(app)
        sandbox_id = agents_send(conversation).provider_message_id
        inbound_id = db.session.scalar(
            select(SandboxMessage.id).where(
                SandboxMessage.contact_id == conversation.vambe_contact_id, SandboxMessage.direction == "INBOUND"
            )
        )
    token = auth.csrf_token("/sandbox/")
    assert (
        client.post(f"/sandbox/messages/{sandbox_id}/status", data={"csrf_token": token, "status": "x"}).status_code
        == 400
    )
    assert (
        client.post(f"/sandbox/messages/{inbound_id}/status", data={"csrf_token": token, "status": "read"}).status_code
        == 404
    )
    response = client.post(f"/sandbox/messages/{sandbox_id}/status", data={"csrf_token": token, "status": "failed"})
    assert response.status_code == 303
    with app.app_context():
        assert db.session.get(SandboxMessage, sandbox_id).status == "failed"
