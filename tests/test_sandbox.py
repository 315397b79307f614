"""The sandbox twin of Vambe holds callers to the same contract as the real API (24h rule included).

Requests the real client can build go through it (``app.extensions["vambe_client"]``, whose
transport hands them to the sandbox blueprint); malformed ones go straight to the blueprint
through the Flask test client."""

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.clock import utcnow
from app.config import SANDBOX_API_BASE_URL
from app.extensions import db
from app.sandbox.state import SANDBOX_CLIENT_ID, SandboxContact, SandboxMessage
from app.sandbox.transport import SandboxTransport
from app.vambe import (
    Accepted,
    Channel,
    SessionMessage,
    VambeClient,
    VambeNotFound,
    VambeRejected,
    VambeUnauthorized,
)
from tests import factories
from tests.conftest import build_app

API = "/sandbox/api/public"
SEND_URL = f"{API}/whatsapp/message/session"
HISTORY_FIELDS = {
    "id",
    "body",
    "created_at",
    "direction",
    "from",
    "to",
    "type",
    "status",
    "media_url",
    "client_id",
    "ai_contact_id",
}
CONTACT_FIELDS = {
    "id",
    "name",
    "phone",
    "email",
    "platform",
    "last_message_at",
    "chat_status",
    "created_at",
    "is_chat_read",
    "blocked",
}
TWO_CHANNELS = ((1951, "56211111111", "Ventas"), (1952, "56222222222", "Soporte"))


@pytest.fixture
def vambe(app_ctx) -> VambeClient:
    return app_ctx.extensions["vambe_client"]


def key_header(app) -> dict[str, str]:
    return {"x-api-key": app.config["VAMBE_API_KEY"]}


def raw_send(client, app, payload):
    return client.post(SEND_URL, json=payload, headers=key_header(app))


def outbound_messages(contact_id: str | None = None) -> list[SandboxMessage]:
    db.session.expire_all()  # the sandbox commits in its own session
    query = select(SandboxMessage).where(SandboxMessage.direction == "OUTBOUND")
    if contact_id is not None:
        query = query.where(SandboxMessage.contact_id == contact_id)
    return list(db.session.scalars(query.order_by(SandboxMessage.created_at)))


def is_paused(contact_id: str) -> bool:
    db.session.expire_all()
    return db.session.get(SandboxContact, contact_id).assistant_paused


def inbound_id_of(contact_id: str) -> str:
    return db.session.scalar(
        select(SandboxMessage.id).where(SandboxMessage.contact_id == contact_id, SandboxMessage.direction == "INBOUND")
    )


def add_sandbox_message(
    contact_id: str, created_at: datetime, *, direction: str = "INBOUND", body: str = "hola"
) -> SandboxMessage:
    message = SandboxMessage(
        id=str(uuid.uuid4()),
        contact_id=contact_id,
        direction=direction,
        sender="customer" if direction == "INBOUND" else "assistant",
        body=body,
        status="read" if direction == "INBOUND" else "delivered",
        created_at=created_at,
    )
    db.session.add(message)
    db.session.commit()
    return message


def assert_nestjs_400(response) -> dict:
    assert response.status_code == 400, response.get_data(as_text=True)
    body = response.get_json()
    assert body["statusCode"] == 400
    assert body["error"] == "Bad Request"
    return body


def reasons(body: dict) -> str:
    message = body["message"]
    return " | ".join(message) if isinstance(message, list) else message


# --- malformed requests (straight to the blueprint) ---------------------------------------------


MALFORMED = [
    pytest.param(lambda cid: {"contact_id": cid}, "message must be a string", id="missing-message"),
    pytest.param(lambda cid: {"message": "", "contact_id": cid}, "message should not be empty", id="empty-message"),
    pytest.param(lambda cid: {"message": 42, "contact_id": cid}, "message must be a string", id="message-not-a-string"),
    pytest.param(lambda cid: {"message": "x" * 4097, "contact_id": cid}, "4096", id="message-too-long"),
    pytest.param(
        lambda cid: {"message": "Hola", "contact_id": "12345"},
        "contact_id must be a UUID",
        id="contact-id-not-uuid",
    ),
    pytest.param(
        lambda cid: {"message": "Hola", "contact_id": "7c9e6679-7425-00de-944b-e07fc1f90ae7"},
        "contact_id must be a UUID",
        id="contact-id-version-0",
    ),
    pytest.param(
        lambda cid: {"message": "Hola", "contact_id": cid + "0"},
        "contact_id must be a UUID",
        id="contact-id-too-long",
    ),
    pytest.param(lambda cid: {"message": "Hola"}, "contact_id or phone must be provided", id="no-target"),
    pytest.param(
        lambda cid: {"message": "Hola", "contact_id": "", "phone": ""},
        "contact_id or phone must be provided",
        id="empty-targets",
    ),
    pytest.param(
        lambda cid: {"message": "Hola", "contact_id": cid, "type": "image"},
        "type must be one of",
        id="type-image",
    ),
    pytest.param(
        lambda cid: {"message": "Hola", "contact_id": cid, "pause_assistant": "true"},
        "pause_assistant must be a boolean",
        id="pause-string",
    ),
    pytest.param(
        lambda cid: {"message": "Hola", "contact_id": cid, "pause_assistant": 1},
        "pause_assistant must be a boolean",
        id="pause-number",
    ),
    pytest.param(
        lambda cid: {"message": "Hola", "contact_id": cid, "template_id": "x"},
        "property template_id should not exist",
        id="extra-property",
    ),
    pytest.param(
        lambda cid: {"message": "Hola", "contact_id": cid, "reply_message_id": 7},
        "reply_message_id must be a string",
        id="reply-id-number",
    ),
]


@pytest.mark.parametrize(("build", "reason"), MALFORMED)
def test_a_body_breaking_the_contract_is_a_400_and_sends_nothing(app_ctx, client, build, reason):
    conversation = factories.make_sandbox_conversation()
    contact_id = conversation.vambe_contact_id

    body = assert_nestjs_400(raw_send(client, app_ctx, build(contact_id)))

    assert reason in reasons(body)
    assert outbound_messages() == []
    assert is_paused(contact_id) is False


def test_a_body_that_is_not_a_json_object_is_a_400(app_ctx, client):
    factories.make_sandbox_conversation()

    assert_nestjs_400(client.post(SEND_URL, json=["Hola"], headers=key_header(app_ctx)))
    assert_nestjs_400(client.post(SEND_URL, data="message=Hola", headers=key_header(app_ctx)))
    assert outbound_messages() == []


def test_every_violation_is_reported_at_once(app_ctx, client):
    body = assert_nestjs_400(raw_send(client, app_ctx, {"message": "", "type": "audio", "foo": 1}))

    assert isinstance(body["message"], list)
    text = reasons(body)
    for reason in (
        "property foo should not exist",
        "message should not be empty",
        "contact_id or phone",
        "type must be",
    ):
        assert reason in text


def test_a_well_formed_raw_body_is_accepted(app_ctx, client):
    """The control for the 400s above: the same contact, a body that keeps the contract."""
    conversation = factories.make_sandbox_conversation()
    contact_id = conversation.vambe_contact_id

    response = raw_send(
        client,
        app_ctx,
        {"message": "Hola", "contact_id": contact_id, "type": "text", "pause_assistant": False},
    )

    assert response.status_code == 201, response.get_data(as_text=True)
    assert [m.body for m in outbound_messages(contact_id)] == ["Hola"]


def test_pause_assistant_omitted_defaults_to_pausing(app_ctx, client):
    conversation = factories.make_sandbox_conversation()
    contact_id = conversation.vambe_contact_id

    response = raw_send(client, app_ctx, {"message": "Te atiendo yo", "contact_id": contact_id})

    assert response.status_code == 201
    assert is_paused(contact_id) is True


# --- through the real client --------------------------------------------------------------------


def test_a_send_inside_the_window_is_stored_and_pauses_the_assistant(app_ctx, vambe):
    conversation = factories.make_sandbox_conversation(last_inbound_ago=timedelta(hours=23, minutes=59))
    contact_id = conversation.vambe_contact_id
    before = utcnow()

    accepted = vambe.send_session_message(
        SessionMessage(message="Hola, soy Ana 👋", pause_assistant=True, contact_id=contact_id)
    )

    assert accepted == Accepted(provider_message_id=None)
    [stored] = outbound_messages()
    assert stored.contact_id == contact_id
    assert stored.body == "Hola, soy Ana 👋"
    assert stored.sender == "api"
    assert stored.status == "sent"
    assert stored.reply_message_id is None
    assert before <= stored.created_at <= utcnow()
    assert is_paused(contact_id) is True


def test_pause_assistant_false_leaves_the_assistant_running(app_ctx, vambe):
    conversation = factories.make_sandbox_conversation()
    contact_id = conversation.vambe_contact_id

    vambe.send_session_message(SessionMessage(message="Solo un dato", pause_assistant=False, contact_id=contact_id))

    assert [m.body for m in outbound_messages(contact_id)] == ["Solo un dato"]
    assert is_paused(contact_id) is False


def test_pause_assistant_false_does_not_resume_a_paused_assistant(app_ctx, vambe):
    conversation = factories.make_sandbox_conversation()
    contact_id = conversation.vambe_contact_id

    vambe.send_session_message(SessionMessage(message="Uno", pause_assistant=True, contact_id=contact_id))
    vambe.send_session_message(SessionMessage(message="Dos", pause_assistant=False, contact_id=contact_id))

    assert [m.body for m in outbound_messages(contact_id)] == ["Uno", "Dos"]
    assert is_paused(contact_id) is True


def test_a_send_by_phone_reaches_the_contact(app_ctx, vambe):
    conversation = factories.make_sandbox_conversation(known_to_handoff_by_id=False)
    contact_id = db.session.scalar(
        select(SandboxContact.id).where(SandboxContact.phone == conversation.phone.lstrip("+"))
    )

    vambe.send_session_message(SessionMessage(message="Por teléfono", pause_assistant=True, phone=conversation.phone))

    assert conversation.vambe_contact_id is None
    assert [m.body for m in outbound_messages(contact_id)] == ["Por teléfono"]


@pytest.mark.parametrize(
    "last_inbound_ago",
    [timedelta(hours=24), timedelta(hours=30), timedelta(days=10), None],
    ids=["24h", "30h", "10d", "never-wrote"],
)
def test_outside_the_window_whatsapp_refuses_with_re_engagement_error(app_ctx, vambe, last_inbound_ago):
    conversation = factories.make_sandbox_conversation(last_inbound_ago=last_inbound_ago)
    contact_id = conversation.vambe_contact_id

    with pytest.raises(VambeRejected) as caught:
        vambe.send_session_message(SessionMessage(message="¿Sigues ahí?", pause_assistant=True, contact_id=contact_id))

    assert "#131047" in caught.value.agent_message
    assert caught.value.status == 400
    assert outbound_messages() == []
    assert is_paused(contact_id) is False


def test_the_window_is_measured_from_the_last_inbound_message_only(app_ctx, vambe):
    conversation = factories.make_sandbox_conversation(last_inbound_ago=timedelta(hours=25))
    contact_id = conversation.vambe_contact_id
    add_sandbox_message(contact_id, utcnow() - timedelta(minutes=1), direction="OUTBOUND", body="Soy el asistente")

    with pytest.raises(VambeRejected, match="131047"):
        vambe.send_session_message(SessionMessage(message="Hola", pause_assistant=True, contact_id=contact_id))


def test_unknown_contact_id_is_404(app_ctx, vambe):
    factories.make_sandbox_conversation()

    with pytest.raises(VambeNotFound) as caught:
        vambe.send_session_message(SessionMessage(message="Hola", pause_assistant=True, contact_id=str(uuid.uuid4())))

    assert caught.value.status == 404
    assert outbound_messages() == []


def test_unknown_phone_is_404(app_ctx, vambe):
    factories.make_sandbox_conversation(phone="56987654321")

    with pytest.raises(VambeNotFound):
        vambe.send_session_message(SessionMessage(message="Hola", pause_assistant=True, phone="+56900000001"))

    assert outbound_messages() == []


def test_from_phone_number_must_be_a_number_of_the_account(app_ctx, vambe):
    conversation = factories.make_sandbox_conversation()
    contact_id = conversation.vambe_contact_id

    with pytest.raises(VambeRejected) as caught:
        vambe.send_session_message(
            SessionMessage(message="Hola", pause_assistant=True, contact_id=contact_id, from_phone_number="56999999999")
        )
    assert "from_phone_number" in caught.value.agent_message
    assert outbound_messages() == []

    vambe.send_session_message(
        SessionMessage(message="Hola", pause_assistant=True, contact_id=contact_id, from_phone_number="+56211111111")
    )
    assert len(outbound_messages(contact_id)) == 1


def test_phone_target_with_two_channels_needs_from_phone_number(app_ctx, vambe):
    factories.make_sandbox_channels(*TWO_CHANNELS)
    conversation = factories.make_sandbox_conversation(known_to_handoff_by_id=False)

    with pytest.raises(VambeRejected) as caught:
        vambe.send_session_message(SessionMessage(message="Hola", pause_assistant=True, phone=conversation.phone))
    assert "from_phone_number" in caught.value.agent_message
    assert outbound_messages() == []

    vambe.send_session_message(
        SessionMessage(message="Hola", pause_assistant=True, phone=conversation.phone, from_phone_number="56222222222")
    )
    assert len(outbound_messages()) == 1


def test_contact_id_target_with_two_channels_needs_no_from_phone_number(app_ctx, vambe):
    factories.make_sandbox_channels(*TWO_CHANNELS)
    conversation = factories.make_sandbox_conversation()

    vambe.send_session_message(
        SessionMessage(message="Hola", pause_assistant=True, contact_id=conversation.vambe_contact_id)
    )

    assert len(outbound_messages(conversation.vambe_contact_id)) == 1


def test_reply_message_id_must_belong_to_the_contact(app_ctx, vambe):
    mine = factories.make_sandbox_conversation(name="Mine")
    theirs = factories.make_sandbox_conversation(name="Theirs")
    contact_id = mine.vambe_contact_id

    for foreign in (inbound_id_of(theirs.vambe_contact_id), str(uuid.uuid4())):
        with pytest.raises(VambeRejected) as caught:
            vambe.send_session_message(
                SessionMessage(message="Citando", pause_assistant=True, contact_id=contact_id, reply_message_id=foreign)
            )
        assert "reply_message_id" in caught.value.agent_message
    assert outbound_messages() == []

    own = inbound_id_of(contact_id)
    vambe.send_session_message(
        SessionMessage(message="Citando", pause_assistant=True, contact_id=contact_id, reply_message_id=own)
    )
    [stored] = outbound_messages()
    assert stored.reply_message_id == own


# --- authentication -----------------------------------------------------------------------------


def endpoint_requests(contact_id: str):
    yield "POST", SEND_URL, {"message": "Hola", "contact_id": contact_id}
    yield "GET", f"{API}/contacts?days=7", None
    yield "GET", f"{API}/contact/{contact_id}/info", None
    yield "GET", f"{API}/contact/v2/{contact_id}/messages?page=1", None
    yield "GET", f"{API}/channels/whatsapp", None
    yield "GET", f"{API}/analytics/contacts/by-status?status=unattended&page=1", None


@pytest.mark.parametrize(
    "headers",
    [{}, {"x-api-key": "wrong-key"}, {"x-api-key": ""}, {"x-api-key": "SANDBOX-API-KEY"}],
    ids=["missing", "wrong", "empty", "wrong-case"],
)
def test_every_endpoint_refuses_a_missing_or_wrong_key(app_ctx, client, headers):
    conversation = factories.make_sandbox_conversation()

    for method, url, payload in endpoint_requests(conversation.vambe_contact_id):
        response = client.open(url, method=method, json=payload, headers=headers)
        assert response.status_code == 401, (method, url)
        assert response.get_json() == {"statusCode": 401, "message": "Unauthorized", "error": "Unauthorized"}
    assert outbound_messages() == []


def test_every_endpoint_answers_the_right_key(app_ctx, client):
    conversation = factories.make_sandbox_conversation()

    statuses = [
        client.open(url, method=method, json=payload, headers=key_header(app_ctx)).status_code
        for method, url, payload in endpoint_requests(conversation.vambe_contact_id)
    ]

    assert statuses == [201, 200, 200, 200, 200, 200]


def test_the_real_client_with_a_wrong_key_is_unauthorized(app_ctx):
    conversation = factories.make_sandbox_conversation()
    wrong = VambeClient(SANDBOX_API_BASE_URL, "not-the-sandbox-key")
    wrong.session.mount(wrong.base_url, SandboxTransport(app_ctx, "/sandbox"))
    try:
        with pytest.raises(VambeUnauthorized):
            wrong.send_session_message(
                SessionMessage(message="Hola", pause_assistant=True, contact_id=conversation.vambe_contact_id)
            )
        with pytest.raises(VambeUnauthorized):
            wrong.list_whatsapp_channels()
    finally:
        wrong.session.close()
    assert outbound_messages() == []


# --- history ------------------------------------------------------------------------------------


def test_history_pages_by_20_in_chronological_order(app_ctx, vambe):
    conversation = factories.make_sandbox_conversation()  # one inbound message, 5 minutes ago
    contact_id = conversation.vambe_contact_id
    start = utcnow() - timedelta(days=2)
    moments = [start + timedelta(minutes=i) for i in range(44)]
    random.Random(7).shuffle(moments)  # inserted out of order
    for i, moment in enumerate(moments):
        add_sandbox_message(contact_id, moment, direction="OUTBOUND" if i % 3 == 0 else "INBOUND", body=f"m{i}")
    expected = list(
        db.session.scalars(
            select(SandboxMessage.id).where(SandboxMessage.contact_id == contact_id).order_by(SandboxMessage.created_at)
        )
    )
    assert len(expected) == 45

    pages = [vambe.list_messages(contact_id, page) for page in (1, 2, 3, 4)]

    assert [len(p.messages) for p in pages] == [20, 20, 5, 0]
    assert [p.has_more for p in pages] == [True, True, False, False]
    assert [p.page for p in pages] == [1, 2, 3, 4]
    received = [m for p in pages for m in p.messages]
    assert [m.id for m in received] == expected
    assert all(a.created_at <= b.created_at for a, b in zip(received, received[1:], strict=False))
    assert received[-1].body == "Hola, ¿me ayudan?"


def test_history_returns_the_documented_fields(app_ctx, client, vambe):
    conversation = factories.make_sandbox_conversation()
    contact_id = conversation.vambe_contact_id
    vambe.send_session_message(SessionMessage(message="Respuesta", pause_assistant=True, contact_id=contact_id))

    response = client.get(f"{API}/contact/v2/{contact_id}/messages?page=1", headers=key_header(app_ctx))

    assert response.status_code == 200
    data = response.get_json()
    assert set(data) == {"messages", "page", "hasMore", "total"}
    assert (data["page"], data["hasMore"], data["total"]) == (1, False, 2)
    inbound, outbound = data["messages"]
    for message in (inbound, outbound):
        assert set(message) == HISTORY_FIELDS
        assert message["ai_contact_id"] == contact_id
        assert message["client_id"] == SANDBOX_CLIENT_ID
        assert message["type"] == "text"
        assert message["media_url"] is None
        assert message["created_at"].endswith("Z")
        assert datetime.fromisoformat(message["created_at"].replace("Z", "+00:00")).tzinfo is not None
    customer, business = conversation.phone.lstrip("+"), "56211111111"
    assert (inbound["direction"], inbound["from"], inbound["to"], inbound["body"]) == (
        "INBOUND",
        customer,
        business,
        "Hola, ¿me ayudan?",
    )
    assert (outbound["direction"], outbound["from"], outbound["to"], outbound["body"]) == (
        "OUTBOUND",
        business,
        customer,
        "Respuesta",
    )
    assert outbound["status"] == "sent"


def test_history_of_an_unknown_contact_or_a_bad_page(app_ctx, client, vambe):
    conversation = factories.make_sandbox_conversation()

    with pytest.raises(VambeNotFound):
        vambe.list_messages(str(uuid.uuid4()), 1)
    response = client.get(
        f"{API}/contact/v2/{conversation.vambe_contact_id}/messages?page=0", headers=key_header(app_ctx)
    )
    assert_nestjs_400(response)


# --- contacts and channels ----------------------------------------------------------------------


@pytest.mark.parametrize("days", ["0", "366", "-1", "abc", "1.5", None])
def test_contacts_days_must_be_between_1_and_365(app_ctx, client, days):
    query = "" if days is None else f"?days={days}"

    assert_nestjs_400(client.get(f"{API}/contacts{query}", headers=key_header(app_ctx)))


@pytest.mark.parametrize("days", [1, 365])
def test_contacts_days_limits_are_accepted(app_ctx, client, days):
    response = client.get(f"{API}/contacts?days={days}", headers=key_header(app_ctx))

    assert response.status_code == 200
    assert response.get_json() == []


def test_contacts_are_filtered_by_last_message_newest_first(app_ctx, vambe):
    recent = factories.make_sandbox_conversation(name="Recent", last_inbound_ago=timedelta(hours=2))
    older = factories.make_sandbox_conversation(name="Older", last_inbound_ago=timedelta(days=3))
    ancient = factories.make_sandbox_conversation(name="Ancient", last_inbound_ago=timedelta(days=400))
    factories.make_sandbox_conversation(name="Silent", last_inbound_ago=None)

    assert [c["id"] for c in vambe.list_contacts(1)] == [recent.vambe_contact_id]
    assert [c["id"] for c in vambe.list_contacts(7)] == [recent.vambe_contact_id, older.vambe_contact_id]
    assert [c["id"] for c in vambe.list_contacts(365)] == [recent.vambe_contact_id, older.vambe_contact_id]
    assert ancient.vambe_contact_id not in {c["id"] for c in vambe.list_contacts(365)}
    [contact] = vambe.list_contacts(1)
    assert CONTACT_FIELDS <= set(contact)
    assert contact["name"] == "Recent"
    assert contact["phone"] == recent.phone.lstrip("+")
    assert contact["platform"] == "whatsapp"


def test_contacts_count_messages_in_both_directions(app_ctx, vambe):
    conversation = factories.make_sandbox_conversation(last_inbound_ago=timedelta(days=3))
    contact_id = conversation.vambe_contact_id
    reply_at = (utcnow() - timedelta(hours=1)).replace(microsecond=0)
    add_sandbox_message(contact_id, reply_at, direction="OUTBOUND", body="Seguimiento del asistente")

    [contact] = vambe.list_contacts(1)

    assert contact["id"] == contact_id
    assert datetime.fromisoformat(contact["last_message_at"].replace("Z", "+00:00")) == reply_at.astimezone(UTC)


def test_contacts_with_invalid_days_through_the_client(app_ctx, vambe):
    with pytest.raises(VambeRejected) as caught:
        vambe.list_contacts(0)

    assert "between 1 and 365" in caught.value.agent_message


def test_contact_info_includes_the_last_message_content(app_ctx, client, vambe):
    conversation = factories.make_sandbox_conversation(name="Carla")
    contact_id = conversation.vambe_contact_id
    url = f"{API}/contact/{contact_id}/info"

    before = client.get(url, headers=key_header(app_ctx)).get_json()
    vambe.send_session_message(SessionMessage(message="Ya lo reviso", pause_assistant=True, contact_id=contact_id))
    after = client.get(url, headers=key_header(app_ctx)).get_json()

    assert CONTACT_FIELDS | {"last_message_content"} <= set(before)
    assert (before["id"], before["name"], before["phone"]) == (
        contact_id,
        "Carla",
        conversation.phone.lstrip("+"),
    )
    assert before["last_message_content"] == "Hola, ¿me ayudan?"
    assert before["chat_status"] == "UNATTENDED"
    assert after["last_message_content"] == "Ya lo reviso"
    assert after["chat_status"] == "ATTENDED"
    assert after["last_message_at"] >= before["last_message_at"]


def test_contact_info_of_an_unknown_contact_is_404(app_ctx, client):
    response = client.get(f"{API}/contact/{uuid.uuid4()}/info", headers=key_header(app_ctx))

    assert response.status_code == 404
    assert response.get_json()["statusCode"] == 404


def test_channels_lists_the_accounts_numbers(app_ctx, client, vambe):
    factories.make_sandbox_channels(*TWO_CHANNELS)

    assert vambe.list_whatsapp_channels() == [
        Channel(vambe_channel_id="1951", phone_number="56211111111", name="Ventas"),
        Channel(vambe_channel_id="1952", phone_number="56222222222", name="Soporte"),
    ]
    raw = client.get(f"{API}/channels/whatsapp", headers=key_header(app_ctx)).get_json()
    assert raw == [
        {"id": 1951, "phone_number": "56211111111", "name": "Ventas", "client_id": SANDBOX_CLIENT_ID},
        {"id": 1952, "phone_number": "56222222222", "name": "Soporte", "client_id": SANDBOX_CLIENT_ID},
    ]


def test_channels_with_a_single_number(app_ctx, vambe):
    factories.make_sandbox_channels()

    assert vambe.list_whatsapp_channels() == [
        Channel(vambe_channel_id="1951", phone_number="56211111111", name="Ventas")
    ]


# --- registration -------------------------------------------------------------------------------


def test_the_sandbox_is_not_registered_when_a_vambe_key_is_set(database_url):
    real = build_app(database_url, VAMBE_API_KEY="k")
    try:
        assert real.config["SANDBOX_MODE"] is False
        assert "sandbox" not in real.blueprints
        web = real.test_client()
        assert web.get(f"{API}/channels/whatsapp", headers={"x-api-key": "k"}).status_code == 404
        assert (
            web.post(
                SEND_URL, json={"message": "Hola", "phone": "+56987654321"}, headers={"x-api-key": "k"}
            ).status_code
            == 404
        )
        assert (
            real.extensions["vambe_client"].session.get_adapter(real.extensions["vambe_client"].base_url).__class__
            is not SandboxTransport
        )
    finally:
        real.extensions["vambe_client"].session.close()
        with real.app_context():
            db.engine.dispose()


def test_the_sandbox_is_registered_without_a_key(app, client):
    assert app.config["SANDBOX_MODE"] is True
    response = client.get(f"{API}/channels/whatsapp", headers=key_header(app))

    assert response.status_code == 200
