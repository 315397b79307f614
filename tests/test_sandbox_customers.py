"""The sandbox's customers and AI assistant, through the real webhook path into Handoff's store.

``customer_says`` stores the customer's message on the sandbox ("Vambe") side and posts a signed
webhook through the app in-process; the sandbox AI answers, with a second webhook, unless an agent's
accepted send paused it.
"""

import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.clock import utcnow
from app.domain.sending import Reply, send_reply
from app.extensions import db
from app.models import Author, Conversation, DeliveryState, Direction, Message, Outcome, Role, WebhookDelivery
from app.sandbox.customers import CANNED_ANSWERS, UnknownSandboxPhone, customer_says, recent_messages
from app.sandbox.state import SandboxContact, SandboxMessage
from tests import factories

PARTIAL = {"HX-Request": "true", "HX-Request-Type": "partial"}


def new_phone() -> str:
    return f"569{uuid.uuid4().int % 10**8:08d}"


def handoff_messages(conversation_id: int | None = None) -> list[Message]:
    db.session.expire_all()
    query = select(Message).order_by(Message.id)
    if conversation_id is not None:
        query = query.where(Message.conversation_id == conversation_id)
    return list(db.session.scalars(query))


def conversation_for(contact_id: str) -> Conversation | None:
    db.session.expire_all()
    return db.session.scalar(select(Conversation).where(Conversation.vambe_contact_id == contact_id))


def sandbox_contact(phone_digits: str) -> SandboxContact | None:
    db.session.expire_all()
    return db.session.scalar(select(SandboxContact).where(SandboxContact.phone == phone_digits))


def assistant_messages(conversation_id: int) -> list[str]:
    return [m.body for m in handoff_messages(conversation_id) if m.author == Author.ASSISTANT]


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def agent_sends(app, conversation: Conversation, text: str, *, pause: bool) -> Message:
    """An agent's send through the app's own (sandbox) Vambe client."""
    return send_reply(
        conversation,
        factories.make_user(name="Camila"),
        Reply(text=text, idempotency_key=uuid.uuid4().hex, pause_assistant=pause),
        client=app.extensions["vambe_client"],
        now=utcnow(),
        warning=app.config["WINDOW_WARNING"],
    )


@pytest.fixture
def channels(app_ctx):
    return factories.make_sandbox_channels()


class TestCustomerSays:
    def test_the_message_reaches_handoff_once_as_the_customers_and_the_ai_answers(self, app_ctx, channels):
        phone = new_phone()

        said = customer_says("+" + phone, "Hola, ¿tienen la talla 42?", name="Ana Pérez", now=utcnow())

        conversation = conversation_for(said.contact_id)
        assert conversation is not None, "no conversation for the new customer"
        assert (conversation.name, conversation.phone) == ("Ana Pérez", "+" + phone)  # asked of Vambe's contact record
        messages = handoff_messages(conversation.id)
        assert [(m.direction, m.author, m.body) for m in messages] == [
            (Direction.INBOUND, Author.CUSTOMER, "Hola, ¿tienen la talla 42?"),
            (Direction.OUTBOUND, Author.ASSISTANT, CANNED_ANSWERS[0]),
        ]
        assert messages[0].provider_message_id == said.id
        assert messages[0].outcome == Outcome.RECEIVED
        assert db.session.scalar(select(func.count(Message.id)).where(Message.provider_message_id == said.id)) == 1
        deliveries = db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
        assert [(d.event, d.state, d.authenticated_by) for d in deliveries] == [
            ("message.received", DeliveryState.PROCESSED, "signature"),
            ("message.sent", DeliveryState.PROCESSED, "signature"),
        ]
        assert conversation.last_inbound_at is not None
        assert utcnow() - conversation.last_inbound_at < timedelta(minutes=1)

    def test_a_new_phone_creates_a_new_conversation_and_a_known_one_reuses_it(self, app_ctx, channels):
        first = customer_says(new_phone(), "Hola", now=utcnow())
        second = customer_says(new_phone(), "Buenas", now=utcnow())
        again = customer_says(second.contact.phone, "¿Hay alguien?", now=utcnow())

        assert first.contact_id != second.contact_id
        assert again.contact_id == second.contact_id
        assert count(Conversation) == 2
        conversation = conversation_for(second.contact_id)
        assert [m.body for m in handoff_messages(conversation.id) if m.author == Author.CUSTOMER] == [
            "Buenas",
            "¿Hay alguien?",
        ]
        # The AI's answers rotate through its canned lines.
        assert assistant_messages(conversation.id) == CANNED_ANSWERS[:2]

    def test_an_existing_handoff_conversation_gets_the_message(self, app_ctx):
        conversation = factories.make_sandbox_conversation(last_inbound_ago=timedelta(hours=30))
        phone = conversation.phone.lstrip("+")

        customer_says(phone, "Vuelvo a escribir", now=utcnow())

        assert count(Conversation) == 1
        assert [m.body for m in handoff_messages(conversation.id)][-2:] == [
            "Vuelvo a escribir",
            CANNED_ANSWERS[0],
        ]
        db.session.refresh(conversation)
        assert utcnow() - conversation.last_inbound_at < timedelta(minutes=1)  # the window reopened

    def test_after_an_accepted_send_that_pauses_the_ai_stays_silent(self, app_ctx, channels):
        said = customer_says(new_phone(), "Necesito hablar con alguien", now=utcnow())
        conversation = conversation_for(said.contact_id)

        sent = agent_sends(app_ctx, conversation, "Hola, soy Camila. Te ayudo yo.", pause=True)
        assert sent.outcome == Outcome.SENT
        customer_says(said.contact.phone, "¡Gracias!", now=utcnow())

        messages = handoff_messages(conversation.id)
        assert [(m.author, m.body) for m in messages] == [
            (Author.CUSTOMER, "Necesito hablar con alguien"),
            (Author.ASSISTANT, CANNED_ANSWERS[0]),
            (Author.AGENT, "Hola, soy Camila. Te ayudo yo."),
            (Author.CUSTOMER, "¡Gracias!"),
        ]
        # The sandbox's echo of the agent's send was matched to it, not stored twice.
        assert messages[2].provider_message_id is not None
        assert sandbox_contact(said.contact.phone).assistant_paused is True
        assert conversation_for(said.contact_id).assistant_paused_at is not None
        ai_lines = db.session.scalar(
            select(func.count(SandboxMessage.id)).where(
                SandboxMessage.contact_id == said.contact_id, SandboxMessage.sender == "assistant"
            )
        )
        assert ai_lines == 1

    def test_after_a_send_that_does_not_pause_the_ai_keeps_answering(self, app_ctx, channels):
        said = customer_says(new_phone(), "Hola", now=utcnow())
        conversation = conversation_for(said.contact_id)

        agent_sends(app_ctx, conversation, "Te dejo con el asistente.", pause=False)
        customer_says(said.contact.phone, "Ok, ¿y el horario?", now=utcnow())

        assert sandbox_contact(said.contact.phone).assistant_paused is False
        assert conversation_for(said.contact_id).assistant_paused_at is None
        assert [(m.author, m.body) for m in handoff_messages(conversation.id)][-2:] == [
            (Author.CUSTOMER, "Ok, ¿y el horario?"),
            (Author.ASSISTANT, CANNED_ANSWERS[1]),
        ]

    def test_a_send_that_vambe_refuses_does_not_pause_the_ai(self, app_ctx):
        # The window closed 30 hours ago: the sandbox refuses free-form text, as WhatsApp does.
        conversation = factories.make_sandbox_conversation(last_inbound_ago=timedelta(hours=30))
        refused = send_reply(
            conversation,
            factories.make_user(),
            Reply(
                text="¿Sigues interesado?",
                idempotency_key=uuid.uuid4().hex,
                confirmed_outside_window=True,
                override_reason="Seguimiento acordado",
            ),
            client=app_ctx.extensions["vambe_client"],
            now=utcnow(),
            warning=app_ctx.config["WINDOW_WARNING"],
        )
        assert refused.outcome == Outcome.FAILED

        customer_says(conversation.phone, "Sí, sigo interesado", now=utcnow())

        assert assistant_messages(conversation.id) == [CANNED_ANSWERS[0]]

    @pytest.mark.parametrize("phone", ["123", "", "not a phone", "+1 234 567 890 123 456"])
    def test_a_phone_that_is_not_one_is_refused_and_nothing_is_stored(self, app_ctx, channels, phone):
        with pytest.raises(UnknownSandboxPhone):
            customer_says(phone, "Hola", now=utcnow())

        assert (count(SandboxContact), count(WebhookDelivery), count(Message)) == (0, 0, 0)

    def test_the_ai_answers_after_the_question_on_every_list(self, app_ctx, channels):
        said = customer_says(new_phone(), "¿Abren el domingo?", now=utcnow())

        on_the_phone = [m.sender for m in recent_messages(said.contact_id)]
        in_handoff = [m.author for m in handoff_messages(conversation_for(said.contact_id).id)]

        assert on_the_phone == ["customer", "assistant"]
        assert in_handoff == [Author.CUSTOMER, Author.ASSISTANT]
        question, answer = (m.created_at for m in recent_messages(said.contact_id))
        assert answer > question  # not a tie that a random id breaks

    def test_without_a_sandbox_number_a_new_customer_is_refused_with_advice(self, app_ctx):
        with pytest.raises(UnknownSandboxPhone, match="flask sandbox seed"):
            customer_says(new_phone(), "Hola", now=utcnow())


# --- the Simulate customer page ------------------------------------------------------------------------


def page_token(client) -> str:
    html = client.get("/sandbox/").get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


class TestSimulateCustomerPage:
    @pytest.fixture
    def agent(self, auth):
        return auth.login_as(Role.AGENT)

    def test_the_page_offers_every_sandbox_customer_and_a_new_one(self, app, client, agent):
        with app.app_context():
            conversation = factories.make_sandbox_conversation(name="Daniela Reyes")
            phone = conversation.phone

        response = client.get("/sandbox/")

        html = response.get_data(as_text=True)
        assert response.status_code == 200
        assert "Simulate customer" in html
        assert f"Daniela Reyes ({phone})" in html
        assert "A new customer…" in html
        for label in (">Customer</label>", ">Customer message</label>", "Send as customer"):
            assert label in html

    def test_the_page_needs_a_signed_in_user(self, client):
        assert client.get("/sandbox/").status_code == 302

    def test_an_existing_customer_writes_and_handoff_has_it(self, app, client, agent):
        with app.app_context():
            conversation = factories.make_sandbox_conversation()
            conversation_id, contact_id = conversation.id, conversation.vambe_contact_id

        response = client.post(
            "/sandbox/customer-messages",
            data={
                "csrf_token": page_token(client),
                "contact": contact_id,
                "message": "Quiero cambiar mi pedido",
            },
        )

        assert response.status_code == 303
        assert response.headers["Location"].endswith(f"/sandbox/?contact={contact_id}")
        with app.app_context():
            bodies = [(m.author, m.body) for m in handoff_messages(conversation_id)]
            db.session.remove()
        assert bodies[-2:] == [
            (Author.CUSTOMER, "Quiero cambiar mi pedido"),
            (Author.ASSISTANT, CANNED_ANSWERS[0]),
        ]
        # The redirect lands on the same customer, ready for the next line.
        follow = client.get(response.headers["Location"]).get_data(as_text=True)
        assert re.search(rf'<option selected value="{contact_id}"|<option value="{contact_id}" selected', follow)

    def test_a_new_customer_writes_and_gets_a_conversation(self, app, client, agent):
        with app.app_context():
            factories.make_sandbox_channels()

        response = client.post(
            "/sandbox/customer-messages",
            data={
                "csrf_token": page_token(client),
                "contact": "new",
                "new_phone": "+56 9 5555 0123",
                "new_name": "Nicolás Fuentes",
                "message": "Hola, primera vez que escribo",
            },
            headers=PARTIAL,
        )

        assert response.status_code == 200
        assert "Delivered to Handoff." in response.get_data(as_text=True)
        with app.app_context():
            contact = sandbox_contact("56955550123")
            assert contact is not None and contact.name == "Nicolás Fuentes"
            conversation = conversation_for(contact.id)
            assert conversation.name == "Nicolás Fuentes"
            assert [m.body for m in handoff_messages(conversation.id)] == [
                "Hola, primera vez que escribo",
                CANNED_ANSWERS[0],
            ]
            db.session.remove()
        # The new customer is now offered, and selected, on the form that came back.
        assert "Nicolás Fuentes (+56955550123)" in response.get_data(as_text=True)

    @pytest.mark.parametrize(
        ("phone", "error"),
        [
            ("12", "“12” is not a phone number: give 8 to 15 digits"),
            ("", "Give the customer&#39;s phone number"),
            ("abc", "“abc” is not a phone number"),
        ],
    )
    def test_a_bad_phone_is_422_with_the_error_and_nothing_is_stored(self, app, client, agent, phone, error):
        with app.app_context():
            factories.make_sandbox_channels()

        response = client.post(
            "/sandbox/customer-messages",
            data={"csrf_token": page_token(client), "contact": "new", "new_phone": phone, "message": "Hola"},
            headers=PARTIAL,
        )

        assert response.status_code == 422
        html = response.get_data(as_text=True)
        assert error in html
        assert "'" + phone + "'" not in html  # no Python repr
        assert "Delivered to Handoff." not in html
        assert re.search(r"<textarea[^>]*>\s*Hola</textarea>", html)  # the customer's text is kept for a retry
        with app.app_context():
            assert (count(SandboxContact), count(WebhookDelivery), count(Message)) == (0, 0, 0)
            db.session.remove()

    def test_an_empty_message_is_422(self, app, client, agent):
        with app.app_context():
            contact_id = factories.make_sandbox_conversation(last_inbound_ago=None).vambe_contact_id

        response = client.post(
            "/sandbox/customer-messages",
            data={"csrf_token": page_token(client), "contact": contact_id, "message": ""},
        )

        assert response.status_code == 422
        with app.app_context():
            assert count(WebhookDelivery) == 0
            db.session.remove()


# --- the CLI -------------------------------------------------------------------------------------------


class TestCustomerSaysCommand:
    def test_it_delivers_through_the_webhook(self, app):
        with app.app_context():
            factories.make_sandbox_channels()
            db.session.remove()

        result = app.test_cli_runner().invoke(
            args=[
                "sandbox",
                "customer-says",
                "+56 9 7777 1234",
                "Hola desde la terminal",
                "--name",
                "Terminal",
            ]
        )

        assert result.exit_code == 0, result.output
        assert "Delivered." in result.output
        with app.app_context():
            contact = sandbox_contact("56977771234")
            conversation = conversation_for(contact.id)
            assert conversation.name == "Terminal"
            assert [(m.author, m.body) for m in handoff_messages(conversation.id)] == [
                (Author.CUSTOMER, "Hola desde la terminal"),
                (Author.ASSISTANT, CANNED_ANSWERS[0]),
            ]
            db.session.remove()

    def test_a_bad_phone_is_an_error_exit(self, app):
        with app.app_context():
            factories.make_sandbox_channels()
            db.session.remove()

        result = app.test_cli_runner().invoke(args=["sandbox", "customer-says", "12", "Hola"])

        assert result.exit_code == 1
        assert "is not a phone number" in result.output
        with app.app_context():
            assert count(WebhookDelivery) == 0
            db.session.remove()
