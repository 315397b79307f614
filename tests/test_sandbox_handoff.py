"""The sandbox's AI hands over to a person when the customer asks for one, and its by-status endpoint lists the
contacts waiting, as Vambe's analytics call does: the whole handoff flow without a Vambe account."""

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.clock import utcnow
from app.domain.polling import poll_waiting_contacts
from app.extensions import db
from app.models import Author, Conversation, Handoff, HandoffReason, Message, WebhookDelivery
from app.sandbox.customers import HANDOVERS, customer_says
from app.sandbox.state import SandboxContact, SandboxMessage
from tests import factories
from tests.test_sandbox import API, key_header
from tests.test_sandbox_customers import agent_sends, new_phone

BY_STATUS = f"{API}/analytics/contacts/by-status"


@pytest.fixture
def channels(app_ctx):
    return factories.make_sandbox_channels()


def contact_of(phone: str) -> SandboxContact:
    db.session.expire_all()
    return db.session.scalar(select(SandboxContact).where(SandboxContact.phone == phone))


def ai_said(phone: str) -> list[str]:
    contact = contact_of(phone)
    query = select(SandboxMessage.body).where(
        SandboxMessage.contact_id == contact.id, SandboxMessage.sender == "assistant"
    )
    return list(db.session.scalars(query.order_by(SandboxMessage.created_at)))


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("QUIERO hablar con una PERSONA", "es"),
        ("¿Puedo hablar con un humano?", "es"),
        ("Falar com um atendente, por favor", "pt"),
        ("Quero falar com alguém", "pt"),
        ("human please", "en"),
        ("Can I talk to a person?", "en"),
    ],
)
def test_the_ai_hands_over_in_the_customers_language(app_ctx, channels, text, language):
    phone = new_phone()
    customer_says(phone, "Hola", now=utcnow() - timedelta(seconds=5))
    customer_says(phone, text, now=utcnow())
    assert ai_said(phone)[-1] == HANDOVERS[language][1]
    assert contact_of(phone).chat_status == "unattended"


def test_after_handing_over_the_ai_stays_quiet(app_ctx, channels):
    phone = new_phone()
    customer_says(phone, "quiero hablar con una persona", now=utcnow() - timedelta(seconds=5))
    customer_says(phone, "¿hola? ¿hay alguien?", now=utcnow())
    assert len(ai_said(phone)) == 1


def test_an_ordinary_message_gets_an_ordinary_answer(app_ctx, channels):
    phone = new_phone()
    customer_says(phone, "¿Cuál es el horario de la tienda?", now=utcnow())
    assert contact_of(phone).chat_status == "ai-attended"
    assert ai_said(phone)[0] not in {answer for _, answer in HANDOVERS.values()}


def test_the_handover_reaches_handoff_as_a_queued_conversation(app_ctx, channels):
    phone = new_phone()
    customer_says(phone, "Falar com um atendente", now=utcnow())
    deliveries = db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
    assert '"chat_status": "UNATTENDED"' in deliveries[-1].body
    assert '"chat_status"' not in deliveries[0].body  # only the handover carries it
    conversation = db.session.scalar(select(Conversation).where(Conversation.vambe_contact_id == contact_of(phone).id))
    handoff = db.session.scalar(select(Handoff).where(Handoff.conversation_id == conversation.id))
    assert handoff.reason == HandoffReason.PHRASE  # the customer's words were noticed first
    ai = db.session.scalar(
        select(Message).where(Message.conversation_id == conversation.id, Message.author == Author.ASSISTANT)
    )
    assert ai.body == HANDOVERS["pt"][1]


def test_a_paused_send_marks_the_contact_attended(app, app_ctx, channels):
    phone = new_phone()
    customer_says(phone, "human please", now=utcnow())
    conversation = db.session.scalar(select(Conversation).where(Conversation.vambe_contact_id == contact_of(phone).id))
    agent_sends(app, conversation, "Hi, I'm Camila", pause=True)
    assert contact_of(phone).chat_status == "attended"


def waiting_contacts(count: int) -> list[SandboxContact]:
    contacts = []
    for index in range(count):
        contact = SandboxContact(
            id=str(uuid.uuid4()),
            name=f"Cliente {index}",
            phone=new_phone(),
            channel_id=1951,
            chat_status="unattended",
            created_at=utcnow(),
        )
        db.session.add(contact)
        db.session.add(
            SandboxMessage(
                id=str(uuid.uuid4()),
                contact=contact,
                direction="INBOUND",
                sender="customer",
                body="ayuda",
                status="read",
                created_at=utcnow() - timedelta(minutes=index + 1),
            )
        )
        contacts.append(contact)
    db.session.commit()
    return contacts


def test_by_status_pages_the_waiting_contacts_oldest_wait_first(app_ctx, client, channels):
    contacts = waiting_contacts(25)
    pages = [
        client.get(f"{BY_STATUS}?status=unattended&page={n}", headers=key_header(app_ctx)).get_json() for n in (1, 2, 3)
    ]
    assert [len(page["data"]) for page in pages] == [20, 5, 0]
    assert {page["total"] for page in pages} == {25}
    listed = [item["id"] for page in pages for item in page["data"]]
    assert listed == [contact.id for contact in reversed(contacts)]  # the longest wait first
    waits = [item["waiting_time"] for item in pages[0]["data"]]
    assert waits == sorted(waits, reverse=True) and 25 * 60 <= waits[0] < 25 * 60 + 60
    assert client.get(f"{BY_STATUS}?status=attended", headers=key_header(app_ctx)).get_json() == {
        "data": [],
        "total": 0,
    }


@pytest.mark.parametrize(
    "query", ["", "status=waiting", "status=UNATTENDED", "status=unattended&page=0", "status=unattended&page=x"]
)
def test_by_status_refuses_what_breaks_its_contract(app_ctx, client, query):
    response = client.get(f"{BY_STATUS}?{query}", headers=key_header(app_ctx))
    assert response.status_code == 400
    assert response.get_json()["statusCode"] == 400


def test_handoffs_poller_reads_the_sandbox(app, app_ctx, channels):
    waiting_contacts(3)
    report = poll_waiting_contacts(
        app.extensions["vambe_client"], now=utcnow(), warning=app.config["WINDOW_WARNING"], wait=None
    )
    assert report.contacts == 3 and report.queued == 3


def test_the_history_endpoint_refuses_a_page_that_is_not_a_number_too(app_ctx, client):
    conversation = factories.make_sandbox_conversation()
    url = f"{API}/contact/v2/{conversation.vambe_contact_id}/messages?page=x"
    assert client.get(url, headers=key_header(app_ctx)).status_code == 400
