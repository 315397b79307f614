"""The whole app, outside sandbox mode, sending through the real form to a strict fake of Vambe
listening on the loopback interface: what reaches "Vambe" must be exactly the contract's body."""

import re
import uuid

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Conversation, Message, Outcome
from app.vambe import SEND_SESSION_MESSAGE_PATH
from tests import factories
from tests.conftest import Auth, build_app
from tests.fake_vambe import RecordedRequest, Reply, running_fake_vambe

API_KEY = "test-key"
PHONE_ONLY_CUSTOMER = "+56987654321"
OWN_NUMBER = "56211111111"
OTHER_NUMBER = "56222222222"

# SendSessionMessageDto, from /work/shared/reference/vambe-session-message-openapi.md.
DOCUMENTED_FIELDS = {
    "message",
    "contact_id",
    "phone",
    "reply_message_id",
    "from_phone_number",
    "type",
    "pause_assistant",
}
CONTACT_ID_PATTERN = re.compile(
    r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}"
    r"|00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-ffffffffffff)$"
)


def contract_problems(body) -> list[str]:
    """Every way ``body`` breaks the contract. Stricter than Vambe where Handoff promises more:
    ``type`` and ``pause_assistant`` must be sent explicitly, and exactly one target is given."""
    if not isinstance(body, dict):
        return ["the body must be a JSON object"]
    problems = [f"property {name} should not exist" for name in sorted(set(body) - DOCUMENTED_FIELDS)]
    if not isinstance(body.get("message"), str) or not body["message"]:
        problems.append("message must be a non-empty string")
    if "contact_id" in body and not (
        isinstance(body["contact_id"], str) and CONTACT_ID_PATTERN.match(body["contact_id"])
    ):
        problems.append("contact_id must match the UUID pattern")
    for name in ("phone", "reply_message_id", "from_phone_number"):
        if name in body and not (isinstance(body[name], str) and body[name]):
            problems.append(f"{name} must be a non-empty string")
    if ("contact_id" in body) == ("phone" in body):
        problems.append("exactly one of contact_id or phone must be given")
    if body.get("type") != "text":
        problems.append('type must be "text"')
    if not isinstance(body.get("pause_assistant"), bool):
        problems.append("pause_assistant must be a boolean")
    return problems


def strict_vambe(request: RecordedRequest):
    if (request.method, request.path) != ("POST", SEND_SESSION_MESSAGE_PATH):
        return Reply(
            404,
            {"statusCode": 404, "message": f"Cannot {request.method} {request.path}", "error": "Not Found"},
        )
    if request.headers.get("x-api-key") != API_KEY:
        return Reply(401, {"statusCode": 401, "message": "Unauthorized"})
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return Reply(400, {"statusCode": 400, "message": "the body must be JSON", "error": "Bad Request"})
    try:
        body = request.json
    except ValueError:
        return Reply(400, {"statusCode": 400, "message": "the body is not valid JSON", "error": "Bad Request"})
    problems = contract_problems(body)
    if problems:
        return Reply(400, {"statusCode": 400, "message": problems, "error": "Bad Request"})
    return Reply(201)


@pytest.fixture
def vambe_fake():
    with running_fake_vambe(strict_vambe) as fake:
        yield fake


@pytest.fixture
def external_app(database_url, vambe_fake):
    app = build_app(database_url, VAMBE_API_KEY=API_KEY, VAMBE_API_BASE_URL=f"http://127.0.0.1:{vambe_fake.port}")
    yield app
    app.extensions["vambe_client"].session.close()
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def agent(external_app):
    auth = Auth(external_app, external_app.test_client())
    auth.login_as()
    return auth


def setup_conversation(app, *, target: str = "contact_id", numbers: int = 1) -> dict:
    """A conversation with an open window (one inbound message with a provider id) and the
    account's business numbers; returns the ids and values a test needs."""
    with app.app_context():
        own = factories.make_business_number(phone_number=OWN_NUMBER, name="Ventas", channel_id="1951")
        other = (
            factories.make_business_number(phone_number=OTHER_NUMBER, name="Soporte", channel_id="1952")
            if numbers > 1
            else None
        )
        if target == "phone":
            conversation = factories.make_conversation(
                vambe_contact_id=None, phone=PHONE_ONLY_CUSTOMER, business_number=own
            )
        else:
            conversation = factories.make_conversation(business_number=own)
        inbound = factories.make_message(conversation, body="¿Tienen stock de la talla M?")
        db.session.refresh(conversation)
        assert conversation.last_inbound_at is not None
        return {
            "conversation_id": conversation.id,
            "contact_id": conversation.vambe_contact_id,
            "inbound_id": inbound.id,
            "inbound_provider_id": inbound.provider_message_id,
            "own_number_id": own.id,
            "other_number_id": other.id if other else None,
        }


def post_reply(
    agent: Auth,
    conversation_id: int,
    *,
    message: str,
    pause: bool = True,
    reply_to: int | None = None,
    business_number: int | None = None,
    idempotency_key: str | None = None,
):
    """Submit the composer as a browser would: an unchecked checkbox is simply absent."""
    path = f"/conversations/{conversation_id}"
    data = {
        "csrf_token": agent.csrf_token(path),
        "idempotency_key": idempotency_key or uuid.uuid4().hex,
        "message": message,
        "reply_to": str(reply_to) if reply_to else "",
    }
    if pause:
        data["pause_assistant"] = "y"
    if business_number is not None:
        data["business_number"] = str(business_number)
    return agent.client.post(f"{path}/messages", data=data)


def assert_key_never_shown(*responses) -> None:
    for response in responses:
        assert API_KEY not in response.get_data(as_text=True)
        assert all(API_KEY not in value for _, value in response.headers.items())


def test_the_app_is_not_in_sandbox_mode(external_app, vambe_fake):
    assert external_app.config["SANDBOX_MODE"] is False
    assert external_app.extensions["vambe_client"].base_url == vambe_fake.url
    assert "sandbox" not in external_app.blueprints


@pytest.mark.parametrize("numbers", ["one-number", "two-numbers-chosen"])
@pytest.mark.parametrize("pause", [True, False], ids=["pause", "no-pause"])
@pytest.mark.parametrize("quote", [False, True], ids=["no-quote", "quote"])
@pytest.mark.parametrize("target", ["contact_id", "phone"])
def test_the_form_sends_exactly_the_contract_body(external_app, vambe_fake, agent, target, quote, pause, numbers):
    ids = setup_conversation(external_app, target=target, numbers=2 if numbers == "two-numbers-chosen" else 1)
    text = "Hola María, sí tenemos la talla M ✅"

    response = post_reply(
        agent,
        ids["conversation_id"],
        message=text,
        pause=pause,
        reply_to=ids["inbound_id"] if quote else None,
        # With one number the select is not rendered, so a browser posts no business_number.
        business_number=ids["other_number_id"] if numbers == "two-numbers-chosen" else None,
    )

    assert response.status_code == 303, response.get_data(as_text=True)
    [request] = vambe_fake.wait_for_requests(1)
    expected = {"message": text}
    if target == "contact_id":
        expected["contact_id"] = ids["contact_id"]
    else:
        expected["phone"] = PHONE_ONLY_CUSTOMER
    if quote:
        expected["reply_message_id"] = ids["inbound_provider_id"]
    if numbers == "two-numbers-chosen":
        expected["from_phone_number"] = OTHER_NUMBER
    expected["type"] = "text"
    expected["pause_assistant"] = pause
    assert request.json == expected
    assert contract_problems(request.json) == []
    assert request.method == "POST"
    assert request.path == SEND_SESSION_MESSAGE_PATH
    assert request.headers["x-api-key"] == API_KEY
    assert len(vambe_fake.requests) == 1

    page = agent.client.get(response.headers["Location"])
    assert page.status_code == 200
    assert "Hola María, sí tenemos la talla M" in page.get_data(as_text=True)
    assert_key_never_shown(response, page)
    with external_app.app_context():
        sent = db.session.scalar(select(Message).where(Message.body == text))
        assert sent.outcome == Outcome.SENT
        assert sent.pause_assistant is pause
        conversation = db.session.get(Conversation, ids["conversation_id"])
        assert (conversation.assistant_paused_at is not None) is pause


def test_phone_target_with_two_numbers_and_no_choice_sends_from_the_conversations_number(
    external_app, vambe_fake, agent
):
    ids = setup_conversation(external_app, target="phone", numbers=2)

    response = post_reply(agent, ids["conversation_id"], message="Te escribo desde Ventas")

    assert response.status_code == 303, response.get_data(as_text=True)
    [request] = vambe_fake.wait_for_requests(1)
    assert request.json == {
        "message": "Te escribo desde Ventas",
        "phone": PHONE_ONLY_CUSTOMER,
        "from_phone_number": OWN_NUMBER,
        "type": "text",
        "pause_assistant": True,
    }


def test_contact_id_target_with_two_numbers_and_no_choice_sends_no_from_number(external_app, vambe_fake, agent):
    ids = setup_conversation(external_app, target="contact_id", numbers=2)

    response = post_reply(agent, ids["conversation_id"], message="Hola", pause=False)

    assert response.status_code == 303, response.get_data(as_text=True)
    [request] = vambe_fake.wait_for_requests(1)
    assert request.json == {
        "message": "Hola",
        "contact_id": ids["contact_id"],
        "type": "text",
        "pause_assistant": False,
    }


def test_browser_line_endings_reach_vambe_as_newlines(external_app, vambe_fake, agent):
    ids = setup_conversation(external_app)

    response = post_reply(agent, ids["conversation_id"], message="Línea uno\r\nLínea dos")

    assert response.status_code == 303
    [request] = vambe_fake.wait_for_requests(1)
    assert request.json["message"] == "Línea uno\nLínea dos"


def test_submitting_the_same_form_twice_sends_once(external_app, vambe_fake, agent):
    ids = setup_conversation(external_app)
    key = uuid.uuid4().hex

    first = post_reply(agent, ids["conversation_id"], message="Solo una vez", idempotency_key=key)
    second = post_reply(agent, ids["conversation_id"], message="Solo una vez", idempotency_key=key)

    assert first.status_code == 303
    assert second.status_code == 303
    assert len(vambe_fake.requests) == 1
    with external_app.app_context():
        assert len(db.session.scalars(select(Message).where(Message.body == "Solo una vez")).all()) == 1


def test_a_provider_id_in_the_201_body_is_stored(external_app, vambe_fake, agent):
    ids = setup_conversation(external_app)

    def accept_with_id(request):
        reply = strict_vambe(request)
        return Reply(201, {"message_id": "wamid.HBgLNTY5ODc2NTQzMjE"}) if reply.status == 201 else reply

    vambe_fake.responder = accept_with_id

    response = post_reply(agent, ids["conversation_id"], message="Con id")

    assert response.status_code == 303
    with external_app.app_context():
        sent = db.session.scalar(select(Message).where(Message.body == "Con id"))
        assert sent.provider_message_id == "wamid.HBgLNTY5ODc2NTQzMjE"
        assert sent.outcome == Outcome.SENT


def test_a_refused_key_is_shown_as_an_alert_without_the_key(external_app, vambe_fake, agent):
    ids = setup_conversation(external_app)
    vambe_fake.responder = lambda request: Reply(
        401,
        {
            "statusCode": 401,
            "message": f"Invalid API key {request.headers.get('x-api-key')}",
            "error": "Unauthorized",
        },
    )

    response = post_reply(agent, ids["conversation_id"], message="No va a salir")

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Not sent" in html
    assert "administrator" in html
    assert "No va a salir" in html  # the text is kept for a retry
    assert_key_never_shown(response)
    [request] = vambe_fake.wait_for_requests(1)
    assert request.headers["x-api-key"] == API_KEY
    with external_app.app_context():
        sent = db.session.scalar(select(Message).where(Message.body == "No va a salir"))
        assert sent.outcome == Outcome.FAILED
        assert API_KEY not in (sent.outcome_reason or "")
        conversation = db.session.get(Conversation, ids["conversation_id"])
        assert conversation.assistant_paused_at is None


def test_a_contract_rejection_shows_vambes_reasons(external_app, vambe_fake, agent):
    ids = setup_conversation(external_app)
    vambe_fake.responder = lambda request: Reply(
        400, {"statusCode": 400, "message": ["(#131047) Re-engagement message"], "error": "Bad Request"}
    )

    response = post_reply(agent, ids["conversation_id"], message="Fuera de ventana")

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Not sent" in html
    assert "#131047" in html
    assert_key_never_shown(response)
    assert len(vambe_fake.requests) == 1
