"""The Vambe client (app/vambe.py) against a real HTTP server on the loopback interface."""

import json
import logging
import socket
from datetime import UTC, datetime

import pytest
import requests

from app.vambe import (
    SEND_SESSION_MESSAGE_PATH,
    Accepted,
    Channel,
    SessionMessage,
    VambeClient,
    VambeError,
    VambeNoAnswer,
    VambeNotFound,
    VambeRateLimited,
    VambeRejected,
    VambeServerError,
    VambeUnauthorized,
    VambeUnreachable,
)
from tests.fake_vambe import DROP, Hang, Reply, routes, running_fake_vambe

API_KEY = "sk-live-9f8e7d6c5b4a-very-secret"
CONTACT_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
SEND = ("POST", SEND_SESSION_MESSAGE_PATH)


class RecordingSession(requests.Session):
    """A real session that remembers the ``timeout`` every request was made with."""

    def __init__(self):
        super().__init__()
        self.timeouts: list = []

    def request(self, method, url, *args, **kwargs):
        self.timeouts.append(kwargs.get("timeout", "<not passed>"))
        return super().request(method, url, *args, **kwargs)


@pytest.fixture
def fake():
    with running_fake_vambe() as server:
        yield server


@pytest.fixture
def make_client(fake):
    """Build clients pointed at the fake; their sessions are closed before the server stops."""
    built: list[VambeClient] = []

    def make(base_url: str | None = None, api_key: str = API_KEY, **kwargs) -> VambeClient:
        client = VambeClient(base_url or fake.url, api_key, **kwargs)
        built.append(client)
        return client

    yield make
    for client in built:
        client.session.close()


@pytest.fixture
def vambe(make_client):
    return make_client()


def free_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def send(vambe: VambeClient, **fields) -> Accepted:
    fields.setdefault("message", "Hola")
    fields.setdefault("pause_assistant", True)
    return vambe.send_session_message(SessionMessage(**fields))


def answer(fake, reply) -> None:
    fake.responder = lambda request: reply


# --- request shape ------------------------------------------------------------------------------


PAYLOAD_CASES = [
    pytest.param(
        {"message": "Hola", "contact_id": CONTACT_ID, "pause_assistant": True},
        {"message": "Hola", "contact_id": CONTACT_ID, "type": "text", "pause_assistant": True},
        id="contact_id-paused",
    ),
    pytest.param(
        {"message": "Hola", "phone": "+56987654321", "pause_assistant": False},
        {"message": "Hola", "phone": "+56987654321", "type": "text", "pause_assistant": False},
        id="phone-not-paused",
    ),
    pytest.param(
        {"message": "Hola", "contact_id": CONTACT_ID, "phone": "+56987654321", "pause_assistant": True},
        {"message": "Hola", "contact_id": CONTACT_ID, "type": "text", "pause_assistant": True},
        id="contact_id-wins-over-phone",
    ),
    pytest.param(
        {
            "message": "Sí, claro ✅",
            "contact_id": CONTACT_ID,
            "reply_message_id": "wamid.HBgL",
            "pause_assistant": False,
        },
        {
            "message": "Sí, claro ✅",
            "contact_id": CONTACT_ID,
            "reply_message_id": "wamid.HBgL",
            "type": "text",
            "pause_assistant": False,
        },
        id="quote",
    ),
    pytest.param(
        {
            "message": "Hola",
            "phone": "+56987654321",
            "from_phone_number": "56211111111",
            "pause_assistant": True,
        },
        {
            "message": "Hola",
            "phone": "+56987654321",
            "from_phone_number": "56211111111",
            "type": "text",
            "pause_assistant": True,
        },
        id="from-number",
    ),
    pytest.param(
        {
            "message": "línea 1\nlínea 2",
            "phone": "+56987654321",
            "reply_message_id": "wamid.X",
            "from_phone_number": "56222222222",
            "pause_assistant": False,
        },
        {
            "message": "línea 1\nlínea 2",
            "phone": "+56987654321",
            "reply_message_id": "wamid.X",
            "from_phone_number": "56222222222",
            "type": "text",
            "pause_assistant": False,
        },
        id="everything",
    ),
    pytest.param(
        {
            "message": "Hola",
            "contact_id": CONTACT_ID,
            "reply_message_id": "",
            "from_phone_number": "",
            "pause_assistant": True,
        },
        {"message": "Hola", "contact_id": CONTACT_ID, "type": "text", "pause_assistant": True},
        id="empty-optionals-omitted",
    ),
]


@pytest.mark.parametrize(("fields", "expected"), PAYLOAD_CASES)
def test_to_payload_is_exactly_the_contract_body(fields, expected):
    payload = SessionMessage(**fields).to_payload()

    assert payload == expected
    assert type(payload["pause_assistant"]) is bool


@pytest.mark.parametrize(("fields", "expected"), PAYLOAD_CASES)
def test_send_session_message_request_shape(fake, vambe, fields, expected):
    vambe.send_session_message(SessionMessage(**fields))

    [request] = fake.wait_for_requests(1)
    assert request.method == "POST"
    assert request.path == "/api/public/whatsapp/message/session"
    assert request.query == {}
    assert request.headers["x-api-key"] == API_KEY
    assert request.headers["content-type"].split(";")[0].strip() == "application/json"
    body = json.loads(request.body)
    assert body == expected
    assert type(body["pause_assistant"]) is bool
    assert set(body) <= {
        "message",
        "contact_id",
        "phone",
        "reply_message_id",
        "from_phone_number",
        "type",
        "pause_assistant",
    }


def test_pause_assistant_is_always_an_explicit_json_boolean(fake, vambe):
    send(vambe, contact_id=CONTACT_ID, pause_assistant=0)
    send(vambe, contact_id=CONTACT_ID, pause_assistant=1)

    first, second = fake.wait_for_requests(2)
    assert b'"pause_assistant": false' in first.body
    assert b'"pause_assistant": true' in second.body


@pytest.mark.parametrize("target", [{}, {"contact_id": None, "phone": None}, {"contact_id": "", "phone": ""}])
def test_a_message_without_contact_id_or_phone_is_refused_before_any_request(fake, vambe, target):
    message = SessionMessage(message="Hola", pause_assistant=True, **target)

    with pytest.raises(ValueError, match="contact_id or a phone"):
        message.to_payload()
    with pytest.raises(ValueError):
        vambe.send_session_message(message)
    assert fake.requests == []


# --- 201 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "provider_id"),
    [
        (Reply(201, {"message_id": "wamid.HBgLNTY5"}), "wamid.HBgLNTY5"),
        (
            Reply(201, {"messageId": "3f0c1a2e-1111-4222-8333-444455556666"}),
            "3f0c1a2e-1111-4222-8333-444455556666",
        ),
        (Reply(201, {"id": 46964423}), "46964423"),
        (Reply(201, {"message_id": "a", "messageId": "b", "id": "c"}), "a"),
        (Reply(201), None),
        (Reply(201, {"status": "queued"}), None),
        (Reply(201, [{"id": "x"}]), None),
        (Reply(201, "Created"), None),
    ],
    ids=["message_id", "messageId", "id", "message_id-first", "empty", "no-id", "list", "not-json"],
)
def test_201_is_accepted_with_the_provider_id_when_present(fake, vambe, reply, provider_id):
    answer(fake, reply)

    accepted = send(vambe, contact_id=CONTACT_ID)

    assert accepted == Accepted(provider_message_id=provider_id)


# --- error statuses -----------------------------------------------------------------------------


def test_400_with_a_nestjs_string_message_shows_vambes_text(fake, vambe):
    answer(fake, Reply(400, {"statusCode": 400, "message": "contact_id must be a UUID", "error": "Bad Request"}))

    with pytest.raises(VambeRejected) as caught:
        send(vambe, contact_id=CONTACT_ID)

    assert "contact_id must be a UUID" in caught.value.agent_message
    assert caught.value.status == 400
    assert caught.value.delivery_unknown is False


def test_400_with_a_nestjs_list_message_shows_every_reason(fake, vambe):
    answer(
        fake,
        Reply(
            400,
            {
                "statusCode": 400,
                "message": ["message should not be empty", "property foo should not exist"],
                "error": "Bad Request",
            },
        ),
    )

    with pytest.raises(VambeRejected) as caught:
        send(vambe, contact_id=CONTACT_ID)

    assert "message should not be empty" in caught.value.agent_message
    assert "property foo should not exist" in caught.value.agent_message


def test_400_with_a_whatsapp_error_in_the_body(fake, vambe):
    text = "(#131047) Re-engagement message: more than 24 hours have passed"
    answer(fake, Reply(400, {"statusCode": 400, "message": text, "error": "Bad Request"}))

    with pytest.raises(VambeRejected) as caught:
        send(vambe, contact_id=CONTACT_ID)

    assert "#131047" in caught.value.agent_message


def test_400_with_a_non_json_body(fake, vambe):
    answer(fake, Reply(400, "Bad gateway config: upstream said no", content_type="text/plain"))

    with pytest.raises(VambeRejected) as caught:
        send(vambe, contact_id=CONTACT_ID)

    assert "upstream said no" in caught.value.agent_message
    assert caught.value.status == 400


def test_400_with_an_empty_body_is_still_a_rejection(fake, vambe):
    answer(fake, Reply(400))

    with pytest.raises(VambeRejected) as caught:
        send(vambe, contact_id=CONTACT_ID)

    assert caught.value.agent_message.strip()


def test_400_detail_is_shortened(fake, vambe):
    answer(fake, Reply(400, {"statusCode": 400, "message": "x" * 5000, "error": "Bad Request"}))

    with pytest.raises(VambeRejected) as caught:
        send(vambe, contact_id=CONTACT_ID)

    assert "xxxx" in caught.value.agent_message
    assert len(caught.value.agent_message) < 500


@pytest.mark.parametrize("status", [401, 403])
def test_401_says_to_alert_an_administrator_and_never_shows_the_key(fake, vambe, status):
    # Even a body that echoes the key must not leak into what an agent sees.
    answer(
        fake,
        Reply(status, {"statusCode": status, "message": f"Invalid API key {API_KEY}", "error": "Unauthorized"}),
    )

    with pytest.raises(VambeUnauthorized) as caught:
        send(vambe, contact_id=CONTACT_ID)

    error = caught.value
    assert "administrator" in error.agent_message.lower()
    assert error.status == status
    for text in (error.agent_message, str(error), repr(error)):
        assert API_KEY not in text


def test_404_is_not_found(fake, vambe):
    answer(fake, Reply(404, {"statusCode": 404, "message": "Contact not found", "error": "Not Found"}))

    with pytest.raises(VambeNotFound) as caught:
        send(vambe, phone="+56987654321")

    assert caught.value.status == 404
    assert caught.value.agent_message


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [({"Retry-After": "7"}, 7.0), ({"Retry-After": "0.5"}, 0.5), ({}, None), ({"Retry-After": "soon"}, None)],
    ids=["seconds", "fraction", "absent", "garbage"],
)
def test_429_is_rate_limited_with_retry_after(fake, vambe, headers, retry_after):
    answer(fake, Reply(429, {"statusCode": 429, "message": "Too Many Requests"}, headers=headers))

    with pytest.raises(VambeRateLimited) as caught:
        send(vambe, contact_id=CONTACT_ID)

    assert caught.value.status == 429
    assert caught.value.retry_after == retry_after
    assert caught.value.delivery_unknown is False


@pytest.mark.parametrize("status", [500, 502, 503, 504, 200, 202, 204])
def test_a_5xx_or_an_undocumented_success_leaves_delivery_unknown(fake, vambe, status):
    """A gateway that gave up on Vambe, or a 2xx the contract does not define: Vambe may have sent it."""
    answer(fake, Reply(status, {"statusCode": status, "message": "Gateway Timeout"} if status >= 500 else None))

    with pytest.raises(VambeNoAnswer) as caught:
        send(vambe, contact_id=CONTACT_ID)

    assert caught.value.status == status
    assert caught.value.delivery_unknown is True
    assert "may or may not" in caught.value.agent_message


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed_so_the_key_stays_with_vambe(fake, vambe, status):
    with running_fake_vambe(lambda request: Reply(201)) as elsewhere:
        answer(fake, Reply(status, headers={"Location": f"http://127.0.0.1:{elsewhere.port}/collect"}))

        with pytest.raises(VambeServerError) as caught:
            send(vambe, contact_id=CONTACT_ID)

        assert elsewhere.requests == []
    assert caught.value.delivery_unknown is False
    assert "VAMBE_API_BASE_URL" in caught.value.agent_message
    assert API_KEY not in caught.value.agent_message


# --- transport failures -------------------------------------------------------------------------


def test_a_read_timeout_is_no_answer_with_delivery_unknown(fake, make_client):
    fake.responder = lambda request: Hang(then=Reply(201))
    vambe = make_client(timeout=(1, 0.2))

    with pytest.raises(VambeNoAnswer) as caught:
        send(vambe, contact_id=CONTACT_ID)
    fake.release.set()

    assert caught.value.delivery_unknown is True
    assert "may or may not" in caught.value.agent_message
    # The request did reach "Vambe": that is exactly why delivery is unknown.
    [request] = fake.wait_for_requests(1)
    assert request.json["contact_id"] == CONTACT_ID


def test_a_connection_dropped_after_the_request_is_no_answer(fake, vambe):
    fake.responder = lambda request: DROP

    with pytest.raises(VambeNoAnswer) as caught:
        send(vambe, contact_id=CONTACT_ID, message="¿Sigue ahí?")

    assert caught.value.delivery_unknown is True
    [request] = fake.wait_for_requests(1)
    assert request.json["message"] == "¿Sigue ahí?"


def test_nothing_listening_is_unreachable_and_nothing_was_sent(make_client):
    vambe = make_client(base_url=f"http://127.0.0.1:{free_port()}")

    with pytest.raises(VambeUnreachable) as caught:
        send(vambe, contact_id=CONTACT_ID)

    assert caught.value.delivery_unknown is False
    assert caught.value.agent_message
    with pytest.raises(VambeUnreachable):
        vambe.list_contacts(days=7)


def every_call_responder():
    return routes(
        {
            SEND: Reply(201),
            ("GET", "/api/public/channels/whatsapp"): Reply(200, []),
            ("GET", "/api/public/contacts"): Reply(200, []),
            ("GET", f"/api/public/contact/v2/{CONTACT_ID}/messages"): Reply(
                200, {"messages": [], "page": 1, "hasMore": False}
            ),
        }
    )


def call_everything(vambe: VambeClient) -> None:
    send(vambe, contact_id=CONTACT_ID)
    vambe.list_whatsapp_channels()
    vambe.list_contacts(days=7)
    vambe.list_messages(CONTACT_ID, page=1)


def test_every_call_passes_the_configured_connect_and_read_timeout(fake, make_client):
    fake.responder = every_call_responder()
    session = RecordingSession()
    vambe = make_client(timeout=(2.5, 7.5), session=session)

    call_everything(vambe)

    assert session.timeouts == [(2.5, 7.5)] * 4
    assert len(fake.wait_for_requests(4)) == 4


def test_every_call_passes_an_explicit_timeout_by_default(fake, make_client):
    fake.responder = every_call_responder()
    session = RecordingSession()
    vambe = make_client(session=session)

    call_everything(vambe)

    assert len(session.timeouts) == 4
    for timeout in session.timeouts:
        assert isinstance(timeout, tuple) and len(timeout) == 2
        connect, read = timeout
        assert isinstance(connect, int | float) and connect > 0
        assert isinstance(read, int | float) and read > 0


def test_a_session_passed_in_carries_the_key(fake, make_client):
    fake.responder = every_call_responder()
    make_client(session=RecordingSession()).list_contacts(days=1)

    [request] = fake.wait_for_requests(1)
    assert request.headers["x-api-key"] == API_KEY


# --- the key stays secret -----------------------------------------------------------------------


def test_repr_hides_the_api_key(vambe):
    assert API_KEY not in repr(vambe)
    assert API_KEY not in str(vambe)
    assert "redacted" in repr(vambe)


def test_the_key_never_appears_in_errors_or_logs(fake, make_client, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="app")
    replies = iter(
        [
            Reply(201, {"message_id": "wamid.ok"}),
            Reply(400, {"statusCode": 400, "message": "bad", "error": "Bad Request"}),
            Reply(401, {"statusCode": 401, "message": "Unauthorized"}),
            Reply(404, {"statusCode": 404, "message": "Contact not found"}),
            Reply(429, {"statusCode": 429}, headers={"Retry-After": "3"}),
            Reply(500, "boom"),
            DROP,
            Hang(),
        ]
    )
    fake.responder = lambda request: next(replies)
    vambe = make_client(timeout=(1, 0.2))
    errors: list[VambeError] = []

    assert send(vambe, contact_id=CONTACT_ID).provider_message_id == "wamid.ok"
    for _ in range(7):
        with pytest.raises(VambeError) as caught:
            send(vambe, contact_id=CONTACT_ID)
        errors.append(caught.value)
    fake.release.set()
    unreachable = make_client(base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(VambeUnreachable) as caught:
        send(unreachable, contact_id=CONTACT_ID)
    errors.append(caught.value)

    assert [type(e) for e in errors] == [
        VambeRejected,
        VambeUnauthorized,
        VambeNotFound,
        VambeRateLimited,
        VambeNoAnswer,
        VambeNoAnswer,
        VambeNoAnswer,
        VambeUnreachable,
    ]
    for error in errors:
        for text in (str(error), repr(error), error.agent_message, repr(error.args)):
            assert API_KEY not in text
    assert any("vambe POST /api/public/whatsapp/message/session -> 201" in r.getMessage() for r in caplog.records)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in caplog.records:
        assert API_KEY not in formatter.format(record)
        assert API_KEY not in repr(record.args)
    assert API_KEY not in caplog.text


# --- reading ------------------------------------------------------------------------------------


CHANNEL = {"phone_number": "56211111111", "id": 1951, "name": "Test", "client_id": "c-1"}


def test_list_whatsapp_channels_accepts_a_single_object(fake, vambe):
    fake.responder = routes({("GET", "/api/public/channels/whatsapp"): Reply(200, CHANNEL)})

    assert vambe.list_whatsapp_channels() == [Channel(vambe_channel_id="1951", phone_number="56211111111", name="Test")]
    [request] = fake.wait_for_requests(1)
    assert request.method == "GET"
    assert request.headers["x-api-key"] == API_KEY


def test_list_whatsapp_channels_accepts_a_list(fake, vambe):
    fake.responder = routes(
        {
            ("GET", "/api/public/channels/whatsapp"): Reply(
                200,
                [CHANNEL, {"phone_number": "56222222222", "id": "1952", "name": None}, {"name": "no number"}],
            )
        }
    )

    assert vambe.list_whatsapp_channels() == [
        Channel(vambe_channel_id="1951", phone_number="56211111111", name="Test"),
        Channel(vambe_channel_id="1952", phone_number="56222222222", name=""),
    ]


def test_list_whatsapp_channels_error_status(fake, vambe):
    fake.responder = routes({("GET", "/api/public/channels/whatsapp"): Reply(401, {"statusCode": 401})})

    with pytest.raises(VambeUnauthorized):
        vambe.list_whatsapp_channels()


def history_item(message_id: str, created_at: str, direction: str = "INBOUND", **extra) -> dict:
    return {
        "id": message_id,
        "body": f"body {message_id}",
        "created_at": created_at,
        "direction": direction,
        "from": "56987654321",
        "to": "56211111111",
        "type": "text",
        "status": "read",
        "media_url": None,
        "client_id": "c-1",
        "ai_contact_id": CONTACT_ID,
        **extra,
    }


def test_list_messages_parses_a_page_with_has_more(fake, vambe):
    path = f"/api/public/contact/v2/{CONTACT_ID}/messages"
    page = {
        "messages": [
            history_item("m1", "2024-09-30T10:00:00.000Z"),
            history_item("m2", "2024-09-30T10:05:30.250Z", direction="outbound", status="delivered"),
        ],
        "page": 2,
        "hasMore": True,
        "total": 42,
    }
    fake.responder = routes({("GET", path): Reply(200, page)})

    result = vambe.list_messages(CONTACT_ID, page=2)

    assert result.page == 2
    assert result.has_more is True
    assert [m.id for m in result.messages] == ["m1", "m2"]
    first, second = result.messages
    assert first.created_at == datetime(2024, 9, 30, 10, 0, tzinfo=UTC)
    assert second.created_at == datetime(2024, 9, 30, 10, 5, 30, 250000, tzinfo=UTC)
    assert (first.direction, second.direction) == ("INBOUND", "OUTBOUND")
    assert (first.body, first.status, first.type) == ("body m1", "read", "text")
    assert second.status == "delivered"
    [request] = fake.wait_for_requests(1)
    assert request.query == {"page": ["2"]}


def test_list_messages_last_page(fake, vambe):
    path = f"/api/public/contact/v2/{CONTACT_ID}/messages"
    fake.responder = routes(
        {
            ("GET", path): Reply(
                200, {"messages": [history_item("m9", "2024-10-01T00:00:00Z")], "page": 3, "hasMore": False}
            )
        }
    )

    result = vambe.list_messages(CONTACT_ID, page=3)

    assert result.has_more is False
    assert [m.id for m in result.messages] == ["m9"]


def test_list_messages_empty_page_without_has_more_ends_the_history(fake, vambe):
    path = f"/api/public/contact/v2/{CONTACT_ID}/messages"
    fake.responder = routes({("GET", path): Reply(200, {"messages": [], "page": 5})})

    result = vambe.list_messages(CONTACT_ID, page=5)

    assert result.messages == []
    assert result.has_more is False


def test_list_messages_unknown_contact(fake, vambe):
    fake.responder = routes({})  # every path answers a NestJS 404

    with pytest.raises(VambeNotFound):
        vambe.list_messages(CONTACT_ID, page=1)


def test_list_contacts(fake, vambe):
    contacts = [
        {
            "id": CONTACT_ID,
            "name": "María",
            "phone": "56987654321",
            "platform": "whatsapp",
            "last_message_at": "2024-09-30T10:00:00.000Z",
        },
        {
            "id": "0b7f7a5e-3c2d-4e1f-9a8b-7c6d5e4f3a2b",
            "name": "Pedro",
            "phone": "56911111111",
            "platform": "whatsapp",
        },
        "not a contact",
    ]
    fake.responder = routes({("GET", "/api/public/contacts"): Reply(200, contacts)})

    result = vambe.list_contacts(days=7)

    assert result == contacts[:2]
    [request] = fake.wait_for_requests(1)
    assert request.method == "GET"
    assert request.query == {"days": ["7"]}
    assert request.headers["x-api-key"] == API_KEY


def test_list_contacts_with_a_body_that_is_not_json(fake, vambe):
    fake.responder = routes(
        {("GET", "/api/public/contacts"): Reply(200, "<html>maintenance</html>", content_type="text/html")}
    )

    with pytest.raises(VambeServerError):
        vambe.list_contacts(days=7)


def test_list_contacts_rejected(fake, vambe):
    fake.responder = routes(
        {("GET", "/api/public/contacts"): Reply(400, {"statusCode": 400, "message": "days must be between 1 and 365"})}
    )

    with pytest.raises(VambeRejected) as caught:
        vambe.list_contacts(days=0)

    assert "between 1 and 365" in caught.value.agent_message
