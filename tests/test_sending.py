"""Sending an agent's reply: validation, the one upstream call, outcomes, the 24h window, pausing.

Sends that succeed go through the real Vambe client to the in-process sandbox. Outcomes the
sandbox cannot produce (timeouts, 5xx, dropped connections, crashes) come from ``RaisingClient``.
"""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.clock import utcnow
from app.domain.sending import OutsideWindow, Reply, SendRefused, send_reply
from app.domain.window import WindowState
from app.extensions import db
from app.models import AuditEvent, AuditKind, Author, BusinessNumber, Direction, Message, Outcome
from app.sandbox.state import SandboxContact, SandboxMessage
from app.vambe import (
    Accepted,
    VambeError,
    VambeNoAnswer,
    VambeNotFound,
    VambeRateLimited,
    VambeRejected,
    VambeServerError,
    VambeUnauthorized,
    VambeUnreachable,
)
from tests import factories
from tests.test_webhooks import encode, shape_a, signed_headers

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
WARNING = timedelta(minutes=60)
TEXT = "Hola, soy Camila y te ayudo con tu pedido."
REENGAGEMENT = VambeRejected("Vambe refused the message: (#131047) Re-engagement message", 400)

FAILED_ERRORS = [
    VambeRejected("Vambe refused the message: message should not be empty", 400),
    VambeUnauthorized("Vambe rejected Handoff's API key.", 401),
    VambeNotFound("Vambe has no contact with this phone number or contact id.", 404),
    VambeRateLimited("Vambe is limiting how fast Handoff may send; nothing was sent.", 429, 30.0),
    VambeServerError("Vambe answered with an error (HTTP 502).", 502),
    VambeUnreachable("Handoff could not reach Vambe; nothing was sent."),
]


def error_id(error: Exception) -> str:
    return type(error).__name__


class RecordingClient:
    """The real (sandbox-backed) client, keeping every SessionMessage handed to it."""

    def __init__(self, real):
        self.real = real
        self.sent = []

    def send_session_message(self, message):
        self.sent.append(message)
        return self.real.send_session_message(message)


class RaisingClient:
    """A Vambe that fails every call with ``error``, keeping every SessionMessage handed to it."""

    def __init__(self, error: Exception):
        self.error = error
        self.sent = []

    def send_session_message(self, message):
        self.sent.append(message)
        raise self.error


class StoreProbingClient(RaisingClient):
    """Looks at the store through its own connection at the moment of the call, then fails."""

    def __init__(self, error: Exception, idempotency_key: str):
        super().__init__(error)
        self.key = idempotency_key
        self.rows_seen = None
        self.override_events_seen = None

    def send_session_message(self, message):
        with db.engine.connect() as connection:
            self.rows_seen = connection.execute(
                select(Message.outcome, Message.body).where(Message.idempotency_key == self.key)
            ).all()
            self.override_events_seen = connection.scalar(
                select(func.count(AuditEvent.id)).where(AuditEvent.kind == AuditKind.WINDOW_OVERRIDE)
            )
        return super().send_session_message(message)


@pytest.fixture
def agent(app_ctx):
    return factories.make_user(name="Camila")


@pytest.fixture
def vambe(app_ctx):
    """The app's own client, talking to the sandbox, with a record of what it was asked to send."""
    return RecordingClient(app_ctx.extensions["vambe_client"])


def new_key() -> str:
    return uuid.uuid4().hex


def send(conversation, agent, client, *, now=NOW, text=TEXT, idempotency_key="generate", **reply_fields) -> Message:
    key = new_key() if idempotency_key == "generate" else idempotency_key
    reply = Reply(text=text, idempotency_key=key, **reply_fields)
    return send_reply(conversation, agent, reply, client=client, now=now, warning=WARNING)


def send_live(conversation, agent, vambe, **reply_fields) -> Message:
    """Send through the sandbox, which judges the window by the real clock."""
    return send(conversation, agent, vambe, now=utcnow(), **reply_fields)


def open_conversation(**fields):
    """A conversation (in Handoff only) whose customer wrote five minutes before NOW."""
    fields.setdefault("last_inbound_at", NOW - timedelta(minutes=5))
    return factories.make_conversation(now=NOW, **fields)


def outbound(conversation) -> list[Message]:
    return list(
        db.session.scalars(
            select(Message).where(Message.conversation_id == conversation.id, Message.direction == Direction.OUTBOUND)
        )
    )


def audit_events(kind: AuditKind | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id)
    return list(db.session.scalars(query.where(AuditEvent.kind == kind) if kind else query))


def committed(message: Message) -> tuple[str, str | None, str]:
    """The message's outcome, reason and body as another connection sees them."""
    with db.engine.connect() as connection:
        row = connection.execute(
            select(Message.outcome, Message.outcome_reason, Message.body).where(Message.id == message.id)
        ).one()
    return tuple(row)


def links(event: AuditEvent) -> tuple[int | None, int | None, int | None]:
    return event.actor_id, event.conversation_id, event.message_id


def assert_nothing_sent_or_stored(conversation, client) -> None:
    assert outbound(conversation) == []
    assert audit_events() == []
    assert client.sent == []


class TestValidation:
    """A refused reply stores nothing and never reaches Vambe."""

    @pytest.fixture
    def never_called(self):
        return RaisingClient(AssertionError("Vambe must not be called"))

    @pytest.mark.parametrize(
        "text", ["", "   ", " \n\t \r\n", "x" * 4097], ids=["empty", "spaces", "whitespace", "4097"]
    )
    def test_empty_whitespace_or_too_long_text_is_refused(self, agent, never_called, text):
        conversation = open_conversation()

        with pytest.raises(SendRefused):
            send(conversation, agent, never_called, text=text)

        assert_nothing_sent_or_stored(conversation, never_called)

    @pytest.mark.parametrize(
        "key",
        [None, "", "short", "has spaces in it", "slash/and/more", "k" * 65],
        ids=["missing", "empty", "short", "spaces", "slash", "65"],
    )
    def test_a_missing_or_malformed_idempotency_key_is_refused(self, agent, never_called, key):
        conversation = open_conversation()

        with pytest.raises(SendRefused):
            send(conversation, agent, never_called, idempotency_key=key)

        assert_nothing_sent_or_stored(conversation, never_called)

    def test_quoting_a_message_of_another_conversation_is_refused(self, agent, never_called):
        conversation, other = open_conversation(), open_conversation()
        foreign = factories.make_message(other, occurred_at=NOW - timedelta(minutes=1))

        with pytest.raises(SendRefused):
            send(conversation, agent, never_called, quoted_message_id=foreign.id)

        assert_nothing_sent_or_stored(conversation, never_called)

    def test_quoting_a_message_without_a_provider_id_is_refused(self, agent, never_called):
        conversation = open_conversation()
        unquotable = factories.make_message(
            conversation, provider_message_id=None, occurred_at=NOW - timedelta(minutes=1)
        )

        with pytest.raises(SendRefused):
            send(conversation, agent, never_called, quoted_message_id=unquotable.id)

        assert_nothing_sent_or_stored(conversation, never_called)

    def test_quoting_a_message_that_does_not_exist_is_refused(self, agent, never_called):
        conversation = open_conversation()

        with pytest.raises(SendRefused):
            send(conversation, agent, never_called, quoted_message_id=999_999)

        assert_nothing_sent_or_stored(conversation, never_called)

    def test_a_business_number_that_does_not_exist_is_refused(self, agent, never_called):
        conversation = open_conversation()

        with pytest.raises(SendRefused):
            send(conversation, agent, never_called, business_number_id=999_999)

        assert_nothing_sent_or_stored(conversation, never_called)

    def test_4096_characters_are_accepted_and_sent(self, agent, vambe):
        conversation = factories.make_sandbox_conversation()

        message = send_live(conversation, agent, vambe, text="x" * 4096)

        assert message.outcome == Outcome.SENT
        assert len(message.body) == 4096
        assert [len(m.message) for m in vambe.sent] == [4096]


class TestRecordedBeforeTheCall:
    def test_the_message_is_committed_as_sending_before_vambe_is_called(self, agent):
        conversation, key = open_conversation(), new_key()
        probe = StoreProbingClient(VambeServerError("Vambe answered with an error (HTTP 500).", 500), key)

        send(conversation, agent, probe, idempotency_key=key)

        assert probe.rows_seen == [(Outcome.SENDING, TEXT)]

    def test_the_window_override_is_committed_before_vambe_is_called(self, agent):
        conversation, key = open_conversation(last_inbound_at=NOW - timedelta(hours=30)), new_key()
        probe = StoreProbingClient(REENGAGEMENT, key)

        send(
            conversation,
            agent,
            probe,
            idempotency_key=key,
            confirmed_outside_window=True,
            override_reason="El cliente lo pidió",
        )

        assert probe.rows_seen == [(Outcome.SENDING, TEXT)]
        assert probe.override_events_seen == 1


class TestOutcomes:
    def test_an_accepted_send_is_recorded_as_sent(self, agent, vambe):
        conversation = factories.make_sandbox_conversation()
        now = utcnow()

        message = send(conversation, agent, vambe, now=now)

        assert committed(message) == (Outcome.SENT, None, TEXT)
        assert (message.direction, message.author) == (Direction.OUTBOUND, Author.AGENT)
        assert message.author_user_id == agent.id
        assert message.occurred_at == now
        assert len(vambe.sent) == 1
        delivered = db.session.scalars(
            select(SandboxMessage.body).where(
                SandboxMessage.contact_id == conversation.vambe_contact_id,
                SandboxMessage.direction == "OUTBOUND",
            )
        ).all()
        assert delivered == [TEXT]

    @pytest.mark.parametrize("error", FAILED_ERRORS, ids=error_id)
    def test_a_refusal_or_a_request_that_never_arrived_is_failed_with_its_reason(self, agent, error):
        conversation, client = open_conversation(), RaisingClient(error)

        message = send(conversation, agent, client)

        assert committed(message) == (Outcome.FAILED, error.agent_message, TEXT)
        assert len(client.sent) == 1

    def test_no_answer_is_unknown_with_its_reason(self, agent):
        error = VambeNoAnswer("Vambe did not answer within 10 seconds. The message may not have been delivered.")
        conversation, client = open_conversation(), RaisingClient(error)

        message = send(conversation, agent, client)

        assert committed(message) == (Outcome.UNKNOWN, error.agent_message, TEXT)

    def test_an_unexpected_exception_is_unknown_with_a_reason_safe_for_agents(self, agent):
        conversation, client = open_conversation(), RaisingClient(RuntimeError("pool exhausted at 0xbeef"))

        message = send(conversation, agent, client)

        outcome, reason, body = committed(message)
        assert (outcome, body) == (Outcome.UNKNOWN, TEXT)
        assert "may or may not have been delivered" in reason
        assert "0xbeef" not in reason

    def test_a_failed_send_keeps_its_body_for_the_agent(self, agent):
        conversation = open_conversation()

        message = send(conversation, agent, RaisingClient(FAILED_ERRORS[0]), text="Tu pedido llega mañana")

        db.session.expire_all()
        assert outbound(conversation)[0].body == "Tu pedido llega mañana"
        assert message.outcome == Outcome.FAILED


class VambeReportsFirst:
    """Vambe sends the message and its message.sent webhook reaches Handoff, then the HTTP answer arrives."""

    def __init__(self, app, contact_id: str, answer: Accepted | Exception):
        self.app, self.contact_id, self.answer = app, contact_id, answer

    def send_session_message(self, message):
        body = encode(shape_a("message.sent", contact_id=self.contact_id, body=message.message, message_id="wamid-1"))
        delivered = self.app.test_client().post(
            "/webhooks/vambe", data=body, headers=signed_headers(self.app.config["VAMBE_WEBHOOK_SECRET"], body)
        )
        assert delivered.get_json()["state"] == "processed"
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class TestAnAnswerAfterVambeReported:
    @pytest.mark.parametrize(
        "answer",
        [
            VambeNoAnswer("Vambe did not answer within 10 seconds."),
            VambeServerError("Vambe answered with an error (HTTP 500).", 500),
            Accepted(provider_message_id="another-id"),
        ],
        ids=["lost", "error", "accepted"],
    )
    def test_what_vambe_reported_stands_whatever_the_answer_says(self, app_ctx, agent, answer):
        conversation = factories.make_sandbox_conversation()

        message = send_live(conversation, agent, VambeReportsFirst(app_ctx, conversation.vambe_contact_id, answer))

        assert committed(message) == (Outcome.SENT, None, TEXT)  # not "failed": that would invite a second send
        [stored] = outbound(conversation)
        assert stored.id == message.id and stored.provider_message_id == "wamid-1"


class TestIdempotency:
    def test_the_same_key_twice_gives_the_same_message_and_one_call(self, agent, vambe):
        conversation, key = factories.make_sandbox_conversation(), new_key()

        first = send_live(conversation, agent, vambe, idempotency_key=key)
        second = send_live(conversation, agent, vambe, idempotency_key=key)

        assert second.id == first.id
        assert second.outcome == Outcome.SENT
        assert len(vambe.sent) == 1
        assert len(outbound(conversation)) == 1

    @pytest.mark.parametrize("error", [FAILED_ERRORS[4], VambeNoAnswer("no answer"), RuntimeError()], ids=error_id)
    def test_a_send_that_did_not_succeed_is_not_resent_under_the_same_key(self, agent, error):
        conversation, key, client = open_conversation(), new_key(), RaisingClient(error)

        first = send(conversation, agent, client, idempotency_key=key)
        second = send(conversation, agent, client, idempotency_key=key, now=NOW + timedelta(seconds=5))

        assert second.id == first.id
        assert second.outcome == first.outcome
        assert len(client.sent) == 1
        assert len(outbound(conversation)) == 1

    def test_a_key_already_used_in_another_conversation_is_refused(self, agent):
        first_conversation, other, key = open_conversation(), open_conversation(), new_key()
        client = RaisingClient(FAILED_ERRORS[4])
        send(first_conversation, agent, client, idempotency_key=key)

        with pytest.raises(SendRefused):
            send(other, agent, client, idempotency_key=key)

        assert outbound(other) == []
        assert len(client.sent) == 1


class TestWindow:
    @pytest.mark.parametrize(
        ("last_inbound_at", "state"),
        [
            (NOW - timedelta(hours=24), WindowState.CLOSED),
            (NOW - timedelta(days=3), WindowState.CLOSED),
            (None, WindowState.UNKNOWN),
        ],
        ids=["exactly-24h", "3-days", "never-wrote"],
    )
    def test_outside_the_window_an_unconfirmed_send_is_refused(self, agent, last_inbound_at, state):
        conversation = open_conversation(last_inbound_at=last_inbound_at)
        client = RaisingClient(AssertionError("Vambe must not be called"))

        with pytest.raises(OutsideWindow) as refused:
            send(conversation, agent, client)

        assert refused.value.window.state == state
        assert_nothing_sent_or_stored(conversation, client)

    def test_a_closing_window_sends_without_confirmation(self, agent, vambe):
        conversation = factories.make_sandbox_conversation(last_inbound_ago=timedelta(hours=23, minutes=30))

        message = send_live(conversation, agent, vambe)

        assert message.outcome == Outcome.SENT
        assert message.window_override is False
        assert audit_events(AuditKind.WINDOW_OVERRIDE) == []

    def test_a_confirmed_send_after_the_window_closed_is_recorded_as_an_override(self, agent):
        expired_at = NOW - timedelta(hours=1, seconds=30)
        conversation = open_conversation(last_inbound_at=expired_at - timedelta(hours=24))

        message = send(
            conversation,
            agent,
            RaisingClient(REENGAGEMENT),
            confirmed_outside_window=True,
            override_reason="El cliente lo pidió",
        )

        assert message.window_override is True
        [event] = audit_events(AuditKind.WINDOW_OVERRIDE)
        assert links(event) == (agent.id, conversation.id, message.id)
        assert event.occurred_at == NOW
        assert event.details["window_state"] == "closed"
        assert event.details["late_by_seconds"] == 3630
        assert event.details["window_expired_at"] == expired_at.isoformat()

    def test_a_confirmed_send_to_a_contact_who_never_wrote_is_recorded_as_an_override(self, agent):
        conversation = open_conversation(last_inbound_at=None)

        message = send(
            conversation,
            agent,
            RaisingClient(REENGAGEMENT),
            confirmed_outside_window=True,
            override_reason="El cliente lo pidió",
        )

        assert message.window_override is True
        [event] = audit_events(AuditKind.WINDOW_OVERRIDE)
        assert event.details["window_state"] == "unknown"
        assert event.message_id == message.id

    def test_confirming_inside_the_window_is_not_an_override(self, agent, vambe):
        conversation = factories.make_sandbox_conversation()

        message = send_live(
            conversation, agent, vambe, confirmed_outside_window=True, override_reason="El cliente lo pidió"
        )

        assert message.outcome == Outcome.SENT
        assert message.window_override is False
        assert audit_events(AuditKind.WINDOW_OVERRIDE) == []

    @pytest.mark.parametrize("last_inbound_ago", [timedelta(hours=25), None], ids=["closed", "never-wrote"])
    def test_whatsapp_refuses_a_confirmed_send_outside_the_window(self, agent, vambe, last_inbound_ago):
        conversation = factories.make_sandbox_conversation(last_inbound_ago=last_inbound_ago)

        message = send_live(
            conversation, agent, vambe, confirmed_outside_window=True, override_reason="El cliente lo pidió"
        )

        assert message.outcome == Outcome.FAILED
        assert "#131047" in message.outcome_reason
        assert message.window_override is True
        assert len(vambe.sent) == 1


class TestPausingTheAssistant:
    def test_an_accepted_send_with_pause_records_the_pause(self, agent, vambe):
        conversation = factories.make_sandbox_conversation()
        now = utcnow()

        message = send(conversation, agent, vambe, now=now, pause_assistant=True)

        assert message.outcome == Outcome.SENT
        assert vambe.sent[0].pause_assistant is True
        assert conversation.assistant_paused_at == now
        assert conversation.assistant_paused_by_id == agent.id
        [event] = audit_events(AuditKind.ASSISTANT_PAUSED)
        assert links(event) == (agent.id, conversation.id, message.id)
        assert db.session.get(SandboxContact, conversation.vambe_contact_id).assistant_paused is True

    def test_an_accepted_send_without_pause_leaves_the_assistant_alone(self, agent, vambe):
        conversation = factories.make_sandbox_conversation()

        message = send_live(conversation, agent, vambe, pause_assistant=False)

        assert message.outcome == Outcome.SENT
        assert vambe.sent[0].pause_assistant is False
        assert conversation.assistant_paused_at is None
        assert conversation.assistant_paused_by_id is None
        assert audit_events(AuditKind.ASSISTANT_PAUSED) == []
        assert db.session.get(SandboxContact, conversation.vambe_contact_id).assistant_paused is False

    def test_a_failed_send_with_pause_does_not_pause(self, agent):
        conversation = open_conversation()

        message = send(conversation, agent, RaisingClient(FAILED_ERRORS[0]), pause_assistant=True)

        assert message.outcome == Outcome.FAILED
        assert conversation.assistant_paused_at is None
        assert conversation.assistant_paused_by_id is None
        assert audit_events(AuditKind.ASSISTANT_PAUSED) == []


TWO_NUMBERS = ((1951, "56211111111", "Ventas"), (1952, "56222222222", "Soporte"))


def number(phone_number: str) -> BusinessNumber:
    return db.session.scalar(select(BusinessNumber).where(BusinessNumber.phone_number == phone_number))


class TestWhatVambeIsAskedToSend:
    def test_a_contact_known_by_id_is_addressed_by_contact_id_only(self, agent, vambe):
        conversation = factories.make_sandbox_conversation()

        message = send_live(conversation, agent, vambe)

        [outgoing] = vambe.sent
        assert outgoing.message == TEXT
        assert outgoing.contact_id == conversation.vambe_contact_id
        assert outgoing.phone is None
        assert outgoing.reply_message_id is None
        assert outgoing.from_phone_number is None
        assert message.outcome == Outcome.SENT

    def test_a_contact_known_only_by_phone_is_addressed_by_e164_phone(self, agent, vambe):
        conversation = factories.make_sandbox_conversation(phone="56998389641", known_to_handoff_by_id=False)

        message = send_live(conversation, agent, vambe)

        [outgoing] = vambe.sent
        assert (outgoing.contact_id, outgoing.phone) == (None, "+56998389641")
        assert outgoing.from_phone_number is None
        assert message.outcome == Outcome.SENT

    def test_a_quote_passes_the_quoted_provider_id(self, agent, vambe):
        conversation = factories.make_sandbox_conversation()
        [quoted] = db.session.scalars(select(Message).where(Message.conversation_id == conversation.id)).all()

        message = send_live(conversation, agent, vambe, quoted_message_id=quoted.id)

        assert vambe.sent[0].reply_message_id == quoted.provider_message_id
        assert message.quoted_message_id == quoted.id
        assert message.outcome == Outcome.SENT

    def test_a_chosen_business_number_is_sent_from(self, agent, vambe):
        factories.make_sandbox_channels(*TWO_NUMBERS)
        conversation = factories.make_sandbox_conversation()
        soporte = number("56222222222")

        message = send_live(conversation, agent, vambe, business_number_id=soporte.id)

        assert vambe.sent[0].from_phone_number == "56222222222"
        assert message.business_number_id == soporte.id
        assert message.outcome == Outcome.SENT

    def test_by_contact_id_with_several_numbers_no_number_is_sent(self, agent, vambe):
        factories.make_sandbox_channels(*TWO_NUMBERS)
        conversation = factories.make_sandbox_conversation()

        message = send_live(conversation, agent, vambe)

        assert vambe.sent[0].from_phone_number is None
        assert message.outcome == Outcome.SENT

    def test_by_phone_with_several_numbers_the_conversations_own_number_is_sent(self, agent, vambe):
        factories.make_sandbox_channels(*TWO_NUMBERS)
        conversation = factories.make_sandbox_conversation(known_to_handoff_by_id=False)

        message = send_live(conversation, agent, vambe)

        assert vambe.sent[0].phone == conversation.phone
        assert vambe.sent[0].from_phone_number == "56211111111"
        assert message.business_number_id == conversation.business_number_id
        assert message.outcome == Outcome.SENT

    def test_by_phone_with_several_numbers_and_none_known_is_refused(self, agent):
        factories.make_business_number()
        factories.make_business_number()
        conversation = open_conversation(vambe_contact_id=None, business_number=None)
        client = RaisingClient(AssertionError("Vambe must not be called"))

        with pytest.raises(SendRefused):
            send(conversation, agent, client)

        assert_nothing_sent_or_stored(conversation, client)


def test_every_vambe_error_class_is_covered_as_failed_or_unknown():
    """Guards the parametrisations above: a new VambeError subclass must be placed in one of them."""
    covered = {type(error) for error in FAILED_ERRORS} | {VambeNoAnswer}

    assert covered == set(VambeError.__subclasses__())
