"""Vambe's webhooks over HTTP: authentication, verbatim storage, both payload shapes, idempotency,
attribution of outbound messages, replay, and simultaneous duplicate deliveries.

Signatures are computed here with ``hmac`` directly (never with the app's ``signature_for``), so a
bug in the app's signing code cannot cancel itself out.
"""

import hashlib
import hmac
import io
import json
import logging
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from app.clock import utcnow
from app.domain.deliveries import WebhookUnauthorized, authenticate
from app.domain.window import WindowState, window_status
from app.extensions import db
from app.models import (
    Author,
    Conversation,
    DeliveryState,
    Direction,
    Message,
    Outcome,
    Role,
    WebhookDelivery,
)
from tests import factories
from tests.conftest import Auth, build_app
from tests.fake_vambe import Reply as FakeReply
from tests.fake_vambe import running_fake_vambe

URL = "/webhooks/vambe"
MAX_BODY = 256 * 1024
CUSTOMER_PHONE = "56998389641"
BUSINESS_PHONE = "56211111111"
LIVE_API_KEY = "sk-live-4a7d1e9c-webhook-test-api-key"
LIVE_SECRET = "whsec-9b1f3c55e0a24d8e-test-secret"
WARNING = timedelta(minutes=60)


# --- building deliveries ---------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def at_ms(moment: datetime) -> datetime:
    """``moment`` as it survives a round trip through a millisecond ISO timestamp."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def now_timestamp() -> str:
    return str(int(utcnow().timestamp()))


def hmac_hex(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, timestamp: str | None = None) -> dict[str, str]:
    timestamp = now_timestamp() if timestamp is None else timestamp
    return {
        "content-type": "application/json",
        "x-vambe-timestamp": timestamp,
        "x-vambe-signature": hmac_hex(secret, timestamp, body),
    }


def encode(payload) -> bytes:
    return payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()


def shape_a(
    event: str,
    *,
    contact_id: str,
    body: str,
    message_id: str | None = None,
    at: datetime | None = None,
    name: str = "María R.",
) -> dict:
    return {
        "event": event,
        "timestamp": iso(at or utcnow()),
        "data": {
            "contact_id": contact_id,
            "message_id": message_id or str(uuid.uuid4().int % 10**8),
            "message_body": body,
            "platform": "whatsapp",
            "direction": "inbound" if event == "message.received" else "outbound",
            "contact_name": name,
        },
    }


def shape_b(
    *, contact_id: str, from_number: str, text: str, message_id: str | None = None, name: str = "Waita"
) -> dict:
    return {
        "aiContactId": contact_id,
        "data": {
            "fromNumber": from_number,
            "message": text,
            "messageId": message_id or str(uuid.uuid4()),
            "messageType": "text",
            "name": name,
            "stageId": str(uuid.uuid4()),
        },
    }


def post_signed(client, app, payload, *, timestamp: str | None = None):
    body = encode(payload)
    return client.post(URL, data=body, headers=signed_headers(app.config["VAMBE_WEBHOOK_SECRET"], body, timestamp))


def post_with_token(client, app, payload):
    return client.post(
        f"{URL}/{app.config['VAMBE_WEBHOOK_SECRET']}",
        data=encode(payload),
        headers={"content-type": "application/json"},
    )


# --- reading the store -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredDelivery:
    id: int
    state: str
    error: str | None
    event: str | None
    message_id: int | None
    authenticated_by: str
    body: str
    headers: dict
    received_at: datetime
    processed_at: datetime | None


@dataclass(frozen=True)
class StoredMessage:
    id: int
    conversation_id: int
    direction: str
    author: str
    body: str
    provider_message_id: str | None
    outcome: str
    occurred_at: datetime


def deliveries(app) -> list[StoredDelivery]:
    with app.app_context():
        rows = db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
        stored = [
            StoredDelivery(
                d.id,
                d.state,
                d.error,
                d.event,
                d.message_id,
                d.authenticated_by,
                d.body,
                dict(d.headers),
                d.received_at,
                d.processed_at,
            )
            for d in rows
        ]
        db.session.remove()
    return stored


def messages(app, *criteria) -> list[StoredMessage]:
    with app.app_context():
        rows = db.session.scalars(select(Message).where(*criteria).order_by(Message.id)).all()
        stored = [
            StoredMessage(
                m.id,
                m.conversation_id,
                m.direction,
                m.author,
                m.body,
                m.provider_message_id,
                m.outcome,
                m.occurred_at,
            )
            for m in rows
        ]
        db.session.remove()
    return stored


def delivery_count(app) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count(WebhookDelivery.id)))
        db.session.remove()
    return count


def conversation_of(app, vambe_contact_id: str) -> Conversation | None:
    """A detached snapshot of the conversation (its columns are loaded)."""
    with app.app_context():
        conversation = db.session.scalar(select(Conversation).where(Conversation.vambe_contact_id == vambe_contact_id))
        if conversation is not None:
            db.session.expunge(conversation)
        db.session.remove()
    return conversation


def new_contact_id() -> str:
    return str(uuid.uuid4())


# --- authentication --------------------------------------------------------------------------------


class TestAuthentication:
    def test_a_correctly_signed_delivery_is_stored_and_processed(self, app, client):
        contact = new_contact_id()
        response = post_signed(
            client, app, shape_a("message.received", contact_id=contact, body="Hola", message_id="m-1")
        )

        assert response.status_code == 200, response.get_data(as_text=True)
        [delivery] = deliveries(app)
        assert response.get_json() == {"delivery": delivery.id, "state": "processed"}
        assert delivery.authenticated_by == "signature"
        assert delivery.state == DeliveryState.PROCESSED
        assert delivery.headers["x-vambe-signature"] and delivery.headers["x-vambe-timestamp"]
        [message] = messages(app)
        assert delivery.message_id == message.id
        assert (message.body, message.provider_message_id) == ("Hola", "m-1")

    def test_the_secret_in_the_url_authenticates_without_a_signature(self, app, client):
        response = post_with_token(
            client,
            app,
            shape_a("message.received", contact_id=new_contact_id(), body="Hola", message_id="m-2"),
        )

        assert response.status_code == 200, response.get_data(as_text=True)
        [delivery] = deliveries(app)
        assert (delivery.authenticated_by, delivery.state) == ("url_token", DeliveryState.PROCESSED)
        assert [m.provider_message_id for m in messages(app)] == ["m-2"]

    def test_the_signature_covers_the_raw_bytes_not_a_reserialisation(self, app, client):
        # Odd spacing, key order and raw UTF-8: re-encoding the parsed JSON would change the bytes.
        body = (
            '{ "timestamp":"2024-09-30T10:00:00.000Z",  "event" : "message.received",\n'
            f' "data": {{"message_body": "¿Hola? ñandú 😀", "contact_id": "{new_contact_id()}",'
            ' "message_id": "raw-1"} }'
        ).encode()

        response = client.post(URL, data=body, headers=signed_headers(app.config["VAMBE_WEBHOOK_SECRET"], body))

        assert response.status_code == 200, response.get_data(as_text=True)
        [delivery] = deliveries(app)
        assert delivery.body.encode() == body  # stored verbatim
        assert [m.body for m in messages(app)] == ["¿Hola? ñandú 😀"]

    def test_a_millisecond_timestamp_is_accepted(self, app, client):
        timestamp = str(int(utcnow().timestamp() * 1000))
        response = post_signed(
            client,
            app,
            shape_a("message.received", contact_id=new_contact_id(), body="ms"),
            timestamp=timestamp,
        )

        assert response.status_code == 200
        assert [d.state for d in deliveries(app)] == [DeliveryState.PROCESSED]

    @pytest.mark.parametrize(
        "tamper",
        [
            pytest.param(
                lambda h, secret, body: {
                    **h,
                    "x-vambe-signature": hmac_hex("not-the-secret", h["x-vambe-timestamp"], body),
                },
                id="other-secret",
            ),
            pytest.param(
                lambda h, secret, body: {
                    **h,
                    "x-vambe-signature": hmac_hex(secret, h["x-vambe-timestamp"], body + b" "),
                },
                id="other-body",
            ),
            pytest.param(
                lambda h, secret, body: {**h, "x-vambe-timestamp": str(int(h["x-vambe-timestamp"]) + 1)},
                id="timestamp-not-signed",
            ),
            pytest.param(lambda h, secret, body: {**h, "x-vambe-signature": "0" * 64}, id="zeros"),
            pytest.param(lambda h, secret, body: {**h, "x-vambe-signature": "not hex at all"}, id="garbage"),
        ],
    )
    def test_a_wrong_signature_is_401_and_nothing_is_stored(self, app, client, tamper):
        secret = app.config["VAMBE_WEBHOOK_SECRET"]
        body = encode(shape_a("message.received", contact_id=new_contact_id(), body="Hola"))
        headers = tamper(signed_headers(secret, body), secret, body)

        response = client.post(URL, data=body, headers=headers)

        assert response.status_code == 401
        assert delivery_count(app) == 0
        assert messages(app) == []

    @pytest.mark.parametrize(
        "offset",
        [timedelta(minutes=-6), timedelta(hours=-2), timedelta(minutes=6), timedelta(days=1)],
        ids=["6-minutes-old", "2-hours-old", "6-minutes-ahead", "1-day-ahead"],
    )
    def test_a_timestamp_more_than_5_minutes_away_is_401_and_nothing_is_stored(self, app, client, offset):
        timestamp = str(int((utcnow() + offset).timestamp()))
        response = post_signed(
            client,
            app,
            shape_a("message.received", contact_id=new_contact_id(), body="Hola"),
            timestamp=timestamp,
        )

        assert response.status_code == 401
        assert delivery_count(app) == 0
        assert messages(app) == []

    def test_a_timestamp_4_minutes_old_is_still_accepted(self, app, client):
        timestamp = str(int((utcnow() - timedelta(minutes=4)).timestamp()))
        response = post_signed(
            client,
            app,
            shape_a("message.received", contact_id=new_contact_id(), body="Hola"),
            timestamp=timestamp,
        )

        assert response.status_code == 200
        assert delivery_count(app) == 1

    @pytest.mark.parametrize("timestamp", ["yesterday", "12:00", "1e400", "nan", "inf", "9" * 30, " "])
    def test_a_malformed_timestamp_is_401_and_nothing_is_stored(self, app, client, timestamp):
        response = post_signed(
            client,
            app,
            shape_a("message.received", contact_id=new_contact_id(), body="Hola"),
            timestamp=timestamp,
        )

        assert response.status_code == 401
        assert delivery_count(app) == 0

    @pytest.mark.parametrize(
        "kept",
        [(), ("x-vambe-timestamp",), ("x-vambe-signature",)],
        ids=["none", "timestamp-only", "signature-only"],
    )
    def test_missing_signature_headers_are_401_and_nothing_is_stored(self, app, client, kept):
        body = encode(shape_a("message.received", contact_id=new_contact_id(), body="Hola"))
        headers = signed_headers(app.config["VAMBE_WEBHOOK_SECRET"], body)

        response = client.post(
            URL, data=body, headers={k: v for k, v in headers.items() if k == "content-type" or k in kept}
        )

        assert response.status_code == 401
        assert delivery_count(app) == 0

    @pytest.mark.parametrize(
        "token",
        [lambda s: "wrong-token", lambda s: s + "x", lambda s: s[:-1], lambda s: s.upper()],
        ids=["unrelated", "longer", "prefix", "case"],
    )
    def test_a_wrong_url_token_is_401_and_nothing_is_stored(self, app, client, token):
        body = encode(shape_a("message.received", contact_id=new_contact_id(), body="Hola"))

        # A valid signature does not rescue a wrong URL token: the token, when given, decides.
        response = client.post(
            f"{URL}/{token(app.config['VAMBE_WEBHOOK_SECRET'])}",
            data=body,
            headers=signed_headers(app.config["VAMBE_WEBHOOK_SECRET"], body),
        )

        assert response.status_code == 401
        assert delivery_count(app) == 0

    @pytest.mark.parametrize(
        "tamper",
        [
            pytest.param(lambda h: {**h, "x-vambe-signature": "é" * 64}, id="non-ascii"),
            pytest.param(lambda h: {**h, "x-vambe-signature": h["x-vambe-signature"][:-1] + "ÿ"}, id="last-char"),
            pytest.param(lambda h: {**h, "x-vambe-signature": h["x-vambe-signature"] + "é"}, id="appended"),
            pytest.param(lambda h: {**h, "x-vambe-timestamp": h["x-vambe-timestamp"] + "é"}, id="timestamp"),
        ],
    )
    def test_a_non_ascii_signature_header_is_401_and_nothing_is_stored(self, app, client, caplog, tamper):
        # hmac.compare_digest raises TypeError on two str with a non-ASCII character: that was a 500.
        body = encode(shape_a("message.received", contact_id=new_contact_id(), body="Hola"))
        headers = tamper(signed_headers(app.config["VAMBE_WEBHOOK_SECRET"], body))

        response = client.post(URL, data=body, headers=headers)

        assert response.status_code == 401
        assert delivery_count(app) == 0
        assert messages(app) == []
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []

    @pytest.mark.parametrize(
        "token",
        [lambda s: "é", lambda s: s + "é", lambda s: "%FF%FE", lambda s: "ñandú-😀"],
        ids=["non-ascii", "secret-and-more", "not-utf-8", "emoji"],
    )
    def test_a_non_ascii_url_token_is_401_and_nothing_is_stored(self, app, client, caplog, token):
        body = encode(shape_a("message.received", contact_id=new_contact_id(), body="Hola"))

        response = client.post(f"{URL}/{token(app.config['VAMBE_WEBHOOK_SECRET'])}", data=body)

        assert response.status_code == 401
        assert delivery_count(app) == 0
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []

    @pytest.mark.parametrize(
        "proof",
        [
            {"url_token": "\udcff"},
            {"url_token": "whsec-\ud800"},
            {"signature": "\udcff" * 64},
            {"signature": "é" * 64},
        ],
        ids=["escaped-byte-token", "lone-surrogate-token", "escaped-byte-signature", "non-ascii-signature"],
    )
    def test_authentication_refuses_text_it_cannot_compare_as_ascii(self, proof):
        # What a server may hand on for bytes that are not UTF-8: refused, never an exception.
        arguments = {"url_token": None, "timestamp": now_timestamp(), "signature": None, **proof}

        with pytest.raises(WebhookUnauthorized):
            authenticate("whsec-test-secret", body=b"{}", now=utcnow(), **arguments)

    def test_without_a_configured_secret_every_delivery_is_refused(self, database_url):
        app = build_app(database_url, VAMBE_API_KEY=LIVE_API_KEY)  # a real install that forgot the secret
        try:
            assert app.config["VAMBE_WEBHOOK_SECRET"] is None
            client = app.test_client()
            body = encode(shape_a("message.received", contact_id=new_contact_id(), body="Hola"))
            signed_with_empty = signed_headers("", body)
            assert client.post(URL, data=body, headers=signed_with_empty).status_code == 401
            assert client.post(f"{URL}/None", data=body).status_code == 401
            assert delivery_count(app) == 0
        finally:
            with app.app_context():
                db.engine.dispose()


class TestBodySize:
    def test_a_body_over_256_kb_is_413_and_nothing_is_stored(self, app, client):
        payload = shape_a("message.received", contact_id=new_contact_id(), body="x" * MAX_BODY)
        body = encode(payload)
        assert len(body) > MAX_BODY

        signed = client.post(URL, data=body, headers=signed_headers(app.config["VAMBE_WEBHOOK_SECRET"], body))
        by_token = client.post(f"{URL}/{app.config['VAMBE_WEBHOOK_SECRET']}", data=body)

        assert (signed.status_code, by_token.status_code) == (413, 413)
        assert delivery_count(app) == 0
        assert messages(app) == []

    def test_a_body_of_exactly_256_kb_is_accepted(self, app, client):
        payload = shape_a("message.received", contact_id=new_contact_id(), body="", message_id="big-1")
        payload["data"]["message_body"] = "x" * (MAX_BODY - len(encode(payload)))
        body = encode(payload)
        assert len(body) == MAX_BODY

        response = client.post(URL, data=body, headers=signed_headers(app.config["VAMBE_WEBHOOK_SECRET"], body))

        assert response.status_code == 200
        assert [len(m.body) for m in messages(app)] == [len(payload["data"]["message_body"])]

    def test_a_body_one_byte_over_256_kb_is_413(self, app, client):
        body = exactly(MAX_BODY + 1)

        response = client.post(f"{URL}/{app.config['VAMBE_WEBHOOK_SECRET']}", data=body)

        assert response.request.environ["CONTENT_LENGTH"] == str(MAX_BODY + 1)
        assert response.status_code == 413
        assert delivery_count(app) == 0

    @pytest.mark.parametrize("size", [MAX_BODY + 1, 2 * MAX_BODY], ids=["one-byte-over", "twice"])
    @pytest.mark.parametrize("proof", ["url-token", "signature"])
    def test_a_chunked_body_over_256_kb_is_413_and_nothing_is_stored(self, app, client, size, proof):
        # Without a Content-Length, Werkzeug cuts the stream at the limit instead of refusing it: the first
        # 256 KB were stored and answered 200 (URL token), or failed the signature (401).
        secret = app.config["VAMBE_WEBHOOK_SECRET"]
        body = exactly(size)
        if proof == "url-token":
            response = post_chunked(client, f"{URL}/{secret}", body)
        else:
            response = post_chunked(client, URL, body, signed_headers(secret, body))

        assert response.status_code == 413
        assert delivery_count(app) == 0
        assert messages(app) == []

    def test_a_chunked_body_of_exactly_256_kb_is_accepted_whole(self, app, client):
        body = exactly(MAX_BODY)

        response = post_chunked(client, URL, body, signed_headers(app.config["VAMBE_WEBHOOK_SECRET"], body))

        assert response.status_code == 200, response.get_data(as_text=True)
        [delivery] = deliveries(app)
        assert delivery.body.encode() == body
        [message] = messages(app)
        assert len(message.body) == len(json.loads(body)["data"]["message_body"])


def exactly(size: int) -> bytes:
    """A valid message.received delivery of exactly ``size`` bytes."""
    payload = shape_a("message.received", contact_id=new_contact_id(), body="")
    payload["data"]["message_body"] = "x" * (size - len(encode(payload)))
    body = encode(payload)
    assert len(body) == size
    return body


def post_chunked(client, path: str, body: bytes, headers: dict[str, str] | None = None):
    """POST ``body`` as gunicorn hands on a chunked request: no Content-Length, the input marked as terminated."""
    environ = EnvironBuilder(path=path, method="POST", headers=headers, input_stream=io.BytesIO(body)).get_environ()
    del environ["CONTENT_LENGTH"]  # the builder measures a seekable stream; a chunked request has none
    environ["wsgi.input_terminated"] = True
    response = client.open(Request(environ))
    assert "CONTENT_LENGTH" not in response.request.environ
    return response


# --- payload shapes --------------------------------------------------------------------------------


class TestShapes:
    def test_shape_a_message_received_is_an_inbound_customer_message(self, app, client):
        contact = new_contact_id()
        sent_at = utcnow() - timedelta(seconds=30)

        post_signed(
            client,
            app,
            shape_a(
                "message.received",
                contact_id=contact,
                body="Hello, I need help",
                message_id="46964423",
                at=sent_at,
            ),
        )

        [message] = messages(app)
        assert (message.direction, message.author, message.outcome) == (
            Direction.INBOUND,
            Author.CUSTOMER,
            Outcome.RECEIVED,
        )
        assert (message.body, message.provider_message_id) == ("Hello, I need help", "46964423")
        assert message.occurred_at == at_ms(sent_at)
        conversation = conversation_of(app, contact)
        assert conversation.name == "María R."
        assert conversation.last_inbound_at == at_ms(sent_at)
        assert [d.event for d in deliveries(app)] == ["message.received"]

    def test_shape_a_message_sent_is_an_outbound_assistant_message(self, app, client):
        contact = new_contact_id()
        sent_at = utcnow() - timedelta(seconds=10)

        post_signed(
            client,
            app,
            shape_a(
                "message.sent",
                contact_id=contact,
                body="¡Hola! ¿En qué te ayudo?",
                message_id="s-1",
                at=sent_at,
            ),
        )

        [message] = messages(app)
        assert (message.direction, message.author, message.outcome) == (
            Direction.OUTBOUND,
            Author.ASSISTANT,
            Outcome.SENT,
        )
        assert message.provider_message_id == "s-1"
        conversation = conversation_of(app, contact)
        assert conversation.last_inbound_at is None  # an outbound message opens no window
        assert conversation.last_message_at == at_ms(sent_at)
        assert [d.event for d in deliveries(app)] == ["message.sent"]

    def test_shape_b_from_the_customer_is_inbound_and_records_the_phone(self, app, client):
        with app.app_context():
            factories.make_business_number(phone_number=BUSINESS_PHONE)
        contact = new_contact_id()

        response = post_signed(
            client, app, shape_b(contact_id=contact, from_number=CUSTOMER_PHONE, text="Ok", message_id="b-in")
        )

        assert response.get_json()["state"] == "processed"
        [message] = messages(app)
        assert (message.direction, message.author, message.body, message.provider_message_id) == (
            Direction.INBOUND,
            Author.CUSTOMER,
            "Ok",
            "b-in",
        )
        conversation = conversation_of(app, contact)
        assert (conversation.phone, conversation.name) == ("+" + CUSTOMER_PHONE, "Waita")
        assert conversation.last_inbound_at is not None
        assert [d.event for d in deliveries(app)] == ["message.received"]

    @pytest.mark.parametrize("from_number", [BUSINESS_PHONE, "+56 2 1111 1111"], ids=["digits", "formatted"])
    def test_shape_b_from_a_business_number_is_outbound(self, app, client, from_number):
        with app.app_context():
            factories.make_business_number(phone_number=BUSINESS_PHONE)
        contact = new_contact_id()

        post_signed(
            client,
            app,
            shape_b(
                contact_id=contact,
                from_number=from_number,
                text="Te ayudo",
                message_id="b-out",
                name="Ventas",
            ),
        )

        [message] = messages(app)
        assert (message.direction, message.author, message.outcome) == (
            Direction.OUTBOUND,
            Author.ASSISTANT,
            Outcome.SENT,
        )
        conversation = conversation_of(app, contact)
        # Neither the business's number nor its name may be taken for the customer's.
        assert conversation.phone is None
        assert conversation.name == ""
        assert conversation.last_inbound_at is None
        assert [d.event for d in deliveries(app)] == ["message.sent"]

    def test_shape_b_without_a_contact_id_does_not_invent_one(self, app, client):
        response = post_signed(
            client,
            app,
            {
                "aiContactId": None,
                "data": {"fromNumber": CUSTOMER_PHONE, "message": "Hola", "messageId": "b-null"},
            },
        )

        assert response.status_code == 200
        assert conversation_of(app, "None") is None, "a null aiContactId became the contact id 'None'"

    @pytest.mark.parametrize("to_number", [CUSTOMER_PHONE, None], ids=["with-toNumber", "without-toNumber"])
    def test_shape_b_message_sent_is_outbound_before_any_business_number_is_known(self, app, client, to_number):
        # A fresh install: nobody has fetched the business numbers yet. The event name says which way it went.
        contact = new_contact_id()
        payload = {
            "event": "message.sent",
            **shape_b(
                contact_id=contact,
                from_number=BUSINESS_PHONE,
                text="¡Hola! Soy el asistente virtual.",
                message_id="b-ai",
                name="Ventas",
            ),
        }
        if to_number:
            payload["data"]["toNumber"] = to_number

        response = post_signed(client, app, payload)

        assert response.get_json()["state"] == "processed"
        [message] = messages(app)
        assert (message.direction, message.author, message.outcome, message.provider_message_id) == (
            Direction.OUTBOUND,
            Author.ASSISTANT,
            Outcome.SENT,
            "b-ai",
        )
        conversation = conversation_of(app, contact)
        assert conversation.last_inbound_at is None  # the AI's reply opens no window
        assert window_status(conversation.last_inbound_at, utcnow(), WARNING).state == WindowState.UNKNOWN
        # The customer's phone is the one the message went to; the business's name is not the customer's.
        assert (conversation.phone, conversation.name) == ("+" + CUSTOMER_PHONE if to_number else None, "")
        assert [d.event for d in deliveries(app)] == ["message.sent"]

    def test_shape_b_message_received_is_inbound_before_any_business_number_is_known(self, app, client):
        contact = new_contact_id()
        payload = {
            "event": "message.received",
            **shape_b(contact_id=contact, from_number=CUSTOMER_PHONE, text="Ok", message_id="b-customer"),
        }
        payload["data"]["toNumber"] = BUSINESS_PHONE

        response = post_signed(client, app, payload)

        assert response.get_json()["state"] == "processed"
        [message] = messages(app)
        assert (message.direction, message.author) == (Direction.INBOUND, Author.CUSTOMER)
        conversation = conversation_of(app, contact)
        assert (conversation.phone, conversation.name) == ("+" + CUSTOMER_PHONE, "Waita")
        assert conversation.last_inbound_at == message.occurred_at == deliveries(app)[0].received_at
        assert [d.event for d in deliveries(app)] == ["message.received"]

    def test_shape_b_naming_no_event_fails_until_the_business_numbers_are_known_then_replays(self, app, client):
        # The documented shape B names no event: only the business's numbers tell an AI reply from a customer.
        contact = new_contact_id()
        payload = shape_b(
            contact_id=contact, from_number=BUSINESS_PHONE, text="¡Hola! Soy el asistente.", message_id="b-?"
        )

        response = post_signed(client, app, payload)

        assert response.get_json()["state"] == "failed"
        [delivery] = deliveries(app)
        assert "business numbers" in delivery.error
        assert messages(app) == []
        assert conversation_of(app, contact) is None

        with app.app_context():
            factories.make_business_number(phone_number=BUSINESS_PHONE)
        result = replay(app, "--failed")

        assert "Replayed 1 deliveries: 1 processed, 0 failed." in result.output
        [message] = messages(app)
        assert (message.direction, message.author, message.provider_message_id) == (
            Direction.OUTBOUND,
            Author.ASSISTANT,
            "b-?",
        )
        conversation = conversation_of(app, contact)
        assert (conversation.phone, conversation.name, conversation.last_inbound_at) == (None, "", None)


class TestUnprocessable:
    @pytest.mark.parametrize(
        "body, reason",
        [
            pytest.param(b'{"event": "message.received", "data": {', "", id="truncated-json"),
            pytest.param(b"\xff\xfe not even utf-8", "", id="binary"),
            pytest.param(b"[]", "unrecognised payload shape", id="a-list"),
            pytest.param(b'{"hello": "world"}', "unrecognised payload shape", id="no-data"),
            pytest.param(b'{"data": {"message": "hi"}}', "neither event nor aiContactId", id="unknown-shape"),
            pytest.param(
                b'{"event": "contact.updated", "data": {"contact_id": "c-1"}}',
                "contact.updated",
                id="unknown-event",
            ),
            pytest.param(
                b'{"event": "message.received", "data": {"message_body": "hi"}}',
                "contact_id",
                id="no-contact",
            ),
        ],
    )
    def test_is_answered_200_stored_verbatim_and_failed_with_a_reason(self, app, client, body, reason):
        response = client.post(URL, data=body, headers=signed_headers(app.config["VAMBE_WEBHOOK_SECRET"], body))

        assert response.status_code == 200
        [delivery] = deliveries(app)
        assert response.get_json() == {"delivery": delivery.id, "state": "failed"}
        assert delivery.state == DeliveryState.FAILED
        assert delivery.error, "a failed delivery must say why"
        assert reason in delivery.error
        assert delivery.body == body.decode("utf-8", errors="replace")
        assert delivery.processed_at is not None
        assert messages(app) == []


# --- idempotency and ordering ----------------------------------------------------------------------


class TestRepeatsAndOrder:
    def test_the_same_message_delivered_twice_is_stored_once(self, app, client):
        payload = shape_a("message.received", contact_id=new_contact_id(), body="Hola", message_id="dup-1")

        first = post_signed(client, app, payload)
        second = post_signed(client, app, payload)

        assert (first.status_code, second.status_code) == (200, 200)
        [message] = messages(app)
        stored = deliveries(app)
        assert [d.state for d in stored] == [DeliveryState.PROCESSED] * 2
        assert [d.message_id for d in stored] == [message.id] * 2

    def test_the_same_message_in_both_shapes_is_stored_once(self, app, client):
        contact = new_contact_id()
        post_signed(client, app, shape_a("message.received", contact_id=contact, body="Hola", message_id="same-id"))
        post_with_token(
            client,
            app,
            shape_b(contact_id=contact, from_number=CUSTOMER_PHONE, text="Hola", message_id="same-id"),
        )

        assert len(messages(app)) == 1
        assert [d.state for d in deliveries(app)] == [DeliveryState.PROCESSED] * 2

    def test_an_older_message_arriving_after_a_newer_one_does_not_move_the_window_back(self, app, client):
        contact = new_contact_id()
        newer, older = utcnow() - timedelta(minutes=1), utcnow() - timedelta(minutes=40)

        post_signed(
            client,
            app,
            shape_a("message.received", contact_id=contact, body="segundo", message_id="n", at=newer),
        )
        post_signed(
            client,
            app,
            shape_a("message.received", contact_id=contact, body="primero", message_id="o", at=older),
        )

        conversation = conversation_of(app, contact)
        assert conversation.last_inbound_at == at_ms(newer)
        assert conversation.last_message_at == at_ms(newer)
        assert sorted(m.body for m in messages(app)) == ["primero", "segundo"]

    def test_a_timestamp_ahead_of_the_clock_anchors_the_window_when_the_message_arrived(self, app, client):
        # The sender's clock runs 3 hours fast: the window must still close 24h after the message reached us.
        contact = new_contact_id()
        ahead = shape_a(
            "message.received", contact_id=contact, body="hola", message_id="ahead", at=utcnow() + timedelta(hours=3)
        )

        post_signed(client, app, ahead)

        [delivery] = deliveries(app)
        [message] = messages(app)
        conversation = conversation_of(app, contact)
        assert conversation.last_inbound_at == delivery.received_at
        assert conversation.last_message_at == delivery.received_at
        assert message.occurred_at == delivery.received_at
        just_after = delivery.received_at + timedelta(hours=24, minutes=1)
        status = window_status(conversation.last_inbound_at, just_after, WARNING)
        assert status.state == WindowState.CLOSED
        assert not status.allows_free_form

    def test_an_older_message_after_one_dated_ahead_does_not_move_the_window_back(self, app, client):
        contact = new_contact_id()
        post_signed(
            client,
            app,
            shape_a("message.received", contact_id=contact, body="b", message_id="b", at=utcnow() + timedelta(hours=3)),
        )
        older = utcnow() - timedelta(minutes=40)
        post_signed(client, app, shape_a("message.received", contact_id=contact, body="a", message_id="a", at=older))

        first, _ = deliveries(app)
        conversation = conversation_of(app, contact)
        assert conversation.last_inbound_at == first.received_at
        ordered = sorted(messages(app), key=lambda m: m.occurred_at)
        assert [(m.body, m.occurred_at) for m in ordered] == [("a", at_ms(older)), ("b", first.received_at)]

    def test_an_inbound_webhook_opens_the_window_on_the_conversation_page(self, app, client, auth):
        auth.login_as(Role.AGENT)
        with app.app_context():
            conversation = factories.make_conversation(last_inbound_at=utcnow() - timedelta(hours=30))
            conversation_id, contact = conversation.id, conversation.vambe_contact_id
        before = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
        assert "Window closed" in before

        post_signed(client, app, shape_a("message.received", contact_id=contact, body="¿Siguen ahí?"))

        page = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
        assert "Window open" in page
        assert "Window closed" not in page
        assert "¿Siguen ahí?" in page


# --- outbound attribution --------------------------------------------------------------------------


@pytest.fixture
def fake_vambe():
    """A loopback Vambe that accepts every send with an empty 201 (and sends no webhook itself)."""
    with running_fake_vambe(lambda request: FakeReply(201)) as server:
        yield server


@pytest.fixture
def live_app(database_url, fake_vambe):
    """A real (non-sandbox) installation pointed at the loopback Vambe."""
    app = build_app(
        database_url,
        VAMBE_API_KEY=LIVE_API_KEY,
        VAMBE_API_BASE_URL=fake_vambe.url,
        VAMBE_WEBHOOK_SECRET=LIVE_SECRET,
    )
    yield app
    app.extensions["vambe_client"].session.close()
    with app.app_context():
        db.engine.dispose()


def send_through_the_form(client, conversation_id: int, text: str, *, pause: bool):
    html = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    data = {
        "csrf_token": re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1),
        "idempotency_key": re.search(r'name="idempotency_key" type="hidden" value="([^"]+)"', html).group(1),
        "message": text,
    }
    if pause:
        data["pause_assistant"] = "y"
    response = client.post(f"/conversations/{conversation_id}/messages", data=data)
    assert response.status_code == 303, response.get_data(as_text=True)


class TestOutboundAttribution:
    @pytest.fixture
    def agent_page(self, live_app):
        client = live_app.test_client()
        Auth(live_app, client).login_as(Role.AGENT)
        with live_app.app_context():
            conversation = factories.make_conversation(last_inbound_at=utcnow() - timedelta(minutes=5))
            ids = (conversation.id, conversation.vambe_contact_id)
        return client, ids

    @pytest.mark.parametrize("pause", [True, False], ids=["pausing", "not-pausing"])
    def test_the_echo_of_handoffs_own_send_is_matched_to_it(self, live_app, agent_page, fake_vambe, pause):
        client, (conversation_id, contact) = agent_page
        text = "Hola, soy Camila del equipo. Reviso tu pedido ahora."
        send_through_the_form(client, conversation_id, text, pause=pause)
        assert [r.json["message"] for r in fake_vambe.requests] == [text]
        [sent] = messages(live_app, Message.body == text)
        assert (sent.author, sent.outcome, sent.provider_message_id) == (Author.AGENT, Outcome.SENT, None)

        echo = shape_a(
            "message.sent",
            contact_id=contact,
            body=text,
            message_id="wamid-own-1",
            at=utcnow() + timedelta(seconds=40),
        )
        response = post_signed(client, live_app, echo)

        assert response.get_json()["state"] == "processed"
        [matched] = messages(live_app, Message.body == text)
        assert matched.id == sent.id
        assert (matched.author, matched.provider_message_id) == (Author.AGENT, "wamid-own-1")
        assert [d.message_id for d in deliveries(live_app)] == [sent.id]

    def test_other_outbound_messages_are_the_assistants_while_it_is_active(self, live_app, agent_page):
        client, (conversation_id, contact) = agent_page
        send_through_the_form(client, conversation_id, "Te escribo yo, sin pausar al asistente.", pause=False)

        post_signed(
            client,
            live_app,
            shape_a("message.sent", contact_id=contact, body="Soy el asistente virtual 🤖", message_id="ai-1"),
        )

        [other] = messages(live_app, Message.provider_message_id == "ai-1")
        assert (other.direction, other.author) == (Direction.OUTBOUND, Author.ASSISTANT)

    def test_other_outbound_messages_after_a_pause_belong_to_another_tool(self, live_app, agent_page):
        client, (conversation_id, contact) = agent_page
        text = "Hola, te atiendo yo desde ahora."
        send_through_the_form(client, conversation_id, text, pause=True)
        assert conversation_of(live_app, contact).assistant_paused_at is not None

        post_signed(
            client,
            live_app,
            shape_a("message.sent", contact_id=contact, body="Encuesta de satisfacción", message_id="t-1"),
        )
        # The agent's own echo, arriving later, is still recognised as the agent's.
        post_signed(client, live_app, shape_a("message.sent", contact_id=contact, body=text, message_id="own-echo"))

        [other] = messages(live_app, Message.provider_message_id == "t-1")
        assert other.author == Author.OTHER_TOOL
        [own] = messages(live_app, Message.body == text)
        assert (own.author, own.provider_message_id) == (Author.AGENT, "own-echo")

    def test_an_echo_far_from_the_send_time_is_not_taken_for_it(self, live_app, agent_page):
        client, (conversation_id, contact) = agent_page
        text = "Gracias por esperar."
        send_through_the_form(client, conversation_id, text, pause=False)
        # The send was 10 minutes ago. (A timestamp 10 minutes ahead would not do: times ahead of the
        # moment a delivery arrives are taken as that moment.)
        with live_app.app_context():
            db.session.execute(
                update(Message).where(Message.body == text).values(occurred_at=utcnow() - timedelta(minutes=10))
            )
            db.session.commit()
            db.session.remove()

        post_signed(client, live_app, shape_a("message.sent", contact_id=contact, body=text, message_id="late"))

        sent = messages(live_app, Message.body == text)
        assert [(m.author, m.provider_message_id) for m in sent] == [
            (Author.AGENT, None),
            (Author.ASSISTANT, "late"),
        ]

    def test_the_sandboxs_own_echo_of_a_send_through_the_form_is_matched(self, app, client, auth):
        auth.login_as(Role.AGENT)
        with app.app_context():
            conversation_id = factories.make_sandbox_conversation().id
        text = "Hola, aquí una persona."

        send_through_the_form(client, conversation_id, text, pause=True)

        [sent] = messages(app, Message.body == text)
        assert (sent.author, sent.outcome) == (Author.AGENT, Outcome.SENT)
        assert sent.provider_message_id is not None, "the sandbox's message.sent webhook was not matched"
        [echo] = [d for d in deliveries(app) if d.event == "message.sent"]
        assert (echo.state, echo.message_id) == (DeliveryState.PROCESSED, sent.id)


class TestNoSecretsInAnswers:
    def test_neither_the_api_key_nor_the_secret_is_ever_in_an_answer(self, live_app):
        client = live_app.test_client()
        valid = encode(shape_a("message.received", contact_id=new_contact_id(), body="Hola"))
        answers = [
            client.post(URL, data=valid, headers=signed_headers(LIVE_SECRET, valid)),
            client.post(f"{URL}/{LIVE_SECRET}", data=valid),
            client.post(URL, data=b"{not json", headers=signed_headers(LIVE_SECRET, b"{not json")),
            client.post(URL, data=valid, headers=signed_headers("guess", valid)),
            client.post(f"{URL}/{LIVE_SECRET[:-1]}", data=valid),
            client.post(URL, data=valid),
            client.post(f"{URL}/{LIVE_SECRET}", data=b"x" * (MAX_BODY + 1)),
        ]

        assert [a.status_code for a in answers] == [200, 200, 200, 401, 401, 401, 413]
        for answer in answers:
            text = answer.get_data(as_text=True)
            assert LIVE_API_KEY not in text
            assert LIVE_SECRET not in text
            assert LIVE_SECRET[:12] not in text


# --- replay ----------------------------------------------------------------------------------------


def replay(app, *args: str):
    result = app.test_cli_runner().invoke(args=["webhooks", "replay", *args])
    return result


class TestReplay:
    def test_replaying_processed_deliveries_changes_nothing(self, app, client):
        contact = new_contact_id()
        post_signed(client, app, shape_a("message.received", contact_id=contact, body="uno", message_id="r-1"))
        post_signed(client, app, shape_a("message.sent", contact_id=contact, body="dos", message_id="r-2"))
        post_signed(client, app, shape_a("message.received", contact_id=contact, body="uno", message_id="r-1"))
        before = messages(app)
        window_before = conversation_of(app, contact).last_inbound_at

        first, second = replay(app), replay(app)

        for result in (first, second):
            assert result.exit_code == 0, result.output
            assert "Replayed 3 deliveries: 3 processed, 0 failed." in result.output
        assert messages(app) == before
        assert conversation_of(app, contact).last_inbound_at == window_before
        assert all(d.state == DeliveryState.PROCESSED for d in deliveries(app))

    def test_replay_failed_only_touches_failed_deliveries(self, app, client):
        post_signed(client, app, shape_a("message.received", contact_id=new_contact_id(), body="bien"))
        post_signed(client, app, {"event": "contact.updated", "data": {"contact_id": "c"}})
        processed_before, failed_before = deliveries(app)

        result = replay(app, "--failed")

        assert result.exit_code == 0, result.output
        assert "Replayed 1 deliveries: 0 processed, 1 failed." in result.output
        assert f"#{failed_before.id}" in result.output and "contact.updated" in result.output
        processed_after, failed_after = deliveries(app)
        assert processed_after.processed_at == processed_before.processed_at  # untouched
        assert failed_after.processed_at >= failed_before.processed_at
        assert failed_after.state == DeliveryState.FAILED

    def test_a_delivery_that_failed_for_a_passing_reason_is_recovered_by_replay_exactly_once(self, app):
        # As if the database had been unreachable when it arrived: stored, but failed.
        contact = new_contact_id()
        body = json.dumps(shape_a("message.received", contact_id=contact, body="¿Me ayudan?", message_id="recover-1"))
        with app.app_context():
            db.session.add(
                WebhookDelivery(
                    received_at=utcnow() - timedelta(minutes=3),
                    authenticated_by="signature",
                    headers={},
                    body=body,
                    state=DeliveryState.FAILED,
                    error="internal error: OperationalError",
                    processed_at=utcnow() - timedelta(minutes=3),
                )
            )
            db.session.commit()
            db.session.remove()

        first = replay(app, "--failed")
        second = replay(app, "--failed")
        everything = replay(app)

        assert "Replayed 1 deliveries: 1 processed, 0 failed." in first.output
        assert "Replayed 0 deliveries" in second.output
        assert "Replayed 1 deliveries: 1 processed, 0 failed." in everything.output
        [message] = messages(app)
        assert (message.body, message.provider_message_id, message.author) == (
            "¿Me ayudan?",
            "recover-1",
            Author.CUSTOMER,
        )
        [delivery] = deliveries(app)
        assert (delivery.state, delivery.error, delivery.message_id) == (
            DeliveryState.PROCESSED,
            None,
            message.id,
        )
        assert conversation_of(app, contact).last_inbound_at is not None

    def test_replay_takes_a_time_ahead_as_when_the_delivery_arrived_not_when_it_is_replayed(self, app):
        contact = new_contact_id()
        received = utcnow() - timedelta(hours=2)
        body = json.dumps(
            shape_a(
                "message.received", contact_id=contact, body="hola", message_id="m", at=received + timedelta(hours=3)
            )
        )
        with app.app_context():
            db.session.add(
                WebhookDelivery(
                    received_at=received,
                    authenticated_by="signature",
                    headers={},
                    body=body,
                    state=DeliveryState.FAILED,
                    error="internal error: OperationalError",
                    processed_at=received,
                )
            )
            db.session.commit()
            db.session.remove()

        result = replay(app, "--failed")

        assert "Replayed 1 deliveries: 1 processed, 0 failed." in result.output
        assert conversation_of(app, contact).last_inbound_at == received
        assert [m.occurred_at for m in messages(app)] == [received]

    def test_replay_since_skips_older_deliveries(self, app, client):
        post_signed(client, app, {"event": "contact.updated", "data": {"contact_id": "old"}})
        post_signed(client, app, {"event": "contact.updated", "data": {"contact_id": "new"}})
        old, new = deliveries(app)
        with app.app_context():
            db.session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == old.id)
                .values(received_at=utcnow() - timedelta(hours=5))
            )
            db.session.commit()
            db.session.remove()
        since = (utcnow() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")  # no zone: UTC

        result = replay(app, "--since", since)

        assert result.exit_code == 0, result.output
        assert "Replayed 1 deliveries" in result.output
        assert f"#{new.id}" in result.output and f"#{old.id}" not in result.output
        old_after, _ = deliveries(app)
        assert old_after.processed_at == old.processed_at

    def test_replay_since_refuses_a_time_it_cannot_read(self, app):
        result = replay(app, "--since", "last tuesday")

        assert result.exit_code == 2
        assert "--since" in result.output and "ISO 8601" in result.output


# --- concurrency -----------------------------------------------------------------------------------

THREADS = 8
ROUNDS = 5


def fire_simultaneously(app, body: bytes, headers: dict[str, str], copies: int) -> list[int]:
    """POST ``body`` from ``copies`` threads released together; the status codes they got."""
    barrier = threading.Barrier(copies)
    statuses: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def deliver():
        client = app.test_client()
        try:
            barrier.wait(timeout=10)
            response = client.post(URL, data=body, headers=headers)
            with lock:
                statuses.append(response.status_code)
        except BaseException as error:  # noqa: BLE001  (reported to the test below)
            with lock:
                errors.append(error)

    threads = [threading.Thread(target=deliver, name=f"webhook-{n}") for n in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a delivery thread hung"
    assert errors == [], f"delivery threads raised: {errors!r}"
    return statuses


def figures_for(app, message_id: str) -> tuple[int, int, list[str]]:
    with app.app_context():
        rows = db.session.scalar(select(func.count(Message.id)).where(Message.provider_message_id == message_id))
        states = [d.state for d in db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))]
        db.session.remove()
    return rows, len(states), states


class TestConcurrentDuplicates:
    def test_8_simultaneous_copies_of_one_delivery_store_1_message_and_8_processed_deliveries(
        self, app, database_url, request
    ):
        contact = new_contact_id()
        body = encode(shape_a("message.received", contact_id=contact, body="¿Hola?", message_id="race-1"))
        headers = signed_headers(app.config["VAMBE_WEBHOOK_SECRET"], body)

        statuses = fire_simultaneously(app, body, headers, THREADS)

        rows, stored, states = figures_for(app, "race-1")
        request.node.user_properties.append(("backend", database_url.split(":", 1)[0]))
        request.node.user_properties.append(("deliveries_fired", THREADS))
        request.node.user_properties.append(("message_rows", rows))
        request.node.user_properties.append(("deliveries_stored", stored))
        request.node.user_properties.append(("deliveries_processed", states.count(DeliveryState.PROCESSED)))
        figures = f"fired {THREADS}, answered {sorted(statuses)}, stored {states}, {rows} message rows"
        assert statuses == [200] * THREADS, figures
        assert rows == 1, figures
        assert states == [DeliveryState.PROCESSED] * THREADS, figures
        with app.app_context():
            conversations = db.session.scalar(
                select(func.count(Conversation.id)).where(Conversation.vambe_contact_id == contact)
            )
            [message] = db.session.scalars(select(Message)).all()
            linked = set(db.session.scalars(select(WebhookDelivery.message_id)))
            db.session.remove()
        assert conversations == 1, figures
        assert linked == {message.id}, figures

    def test_5_rounds_of_8_simultaneous_copies_store_5_messages_and_40_processed_deliveries(
        self, app, database_url, request
    ):
        contact = new_contact_id()
        all_statuses = []
        for round_number in range(ROUNDS):
            # Odd rounds write as a brand-new contact, so creating the conversation races too.
            if round_number % 2:
                contact = new_contact_id()
            body = encode(
                shape_a(
                    "message.received",
                    contact_id=contact,
                    body=f"mensaje {round_number}",
                    message_id=f"round-{round_number}",
                )
            )
            all_statuses += fire_simultaneously(
                app, body, signed_headers(app.config["VAMBE_WEBHOOK_SECRET"], body), THREADS
            )

        with app.app_context():
            per_id = dict(
                db.session.execute(
                    select(Message.provider_message_id, func.count(Message.id)).group_by(Message.provider_message_id)
                ).all()
            )
            states = [d.state for d in db.session.scalars(select(WebhookDelivery))]
            conversations = db.session.scalar(select(func.count(Conversation.id)))
            db.session.remove()
        request.node.user_properties.append(("backend", database_url.split(":", 1)[0]))
        request.node.user_properties.append(("deliveries_fired", ROUNDS * THREADS))
        request.node.user_properties.append(("message_rows", sum(per_id.values())))
        request.node.user_properties.append(("deliveries_processed", states.count(DeliveryState.PROCESSED)))
        figures = f"fired {ROUNDS * THREADS}, rows per message id {per_id}, delivery states {sorted(states)}"
        assert all_statuses == [200] * (ROUNDS * THREADS), figures
        assert per_id == {f"round-{n}": 1 for n in range(ROUNDS)}, figures
        assert states == [DeliveryState.PROCESSED] * (ROUNDS * THREADS), figures
        assert conversations == 3, figures  # rounds 0, 1-2, 3-4


# --- hostile payloads: stored and failed with a reason, never a 500 ----------------------------------


def conversation_count(app) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count(Conversation.id)))
        db.session.remove()
    return count


class TestHostilePayloads:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("contact_id", ["a", "b"]),
            ("contact_id", True),
            ("contact_id", {"id": 1}),
            ("contact_id", "x" * 37),
            ("contact_id", "bad\x00id"),
            ("message_id", ["m"]),
            ("message_id", False),
            ("message_id", "m" * 129),
            ("message_body", {"text": "hola"}),
            ("message_body", ["hola"]),
            ("contact_name", ["María"]),
        ],
    )
    def test_a_field_of_the_wrong_type_fails_the_delivery_and_creates_nothing(self, app, client, field, value):
        payload = shape_a("message.received", contact_id=new_contact_id(), body="Hola")
        payload["data"][field] = value

        response = post_signed(client, app, payload)

        assert response.status_code == 200
        [delivery] = deliveries(app)
        assert delivery.state == DeliveryState.FAILED and field in delivery.error
        assert (conversation_count(app), messages(app)) == (0, [])

    @pytest.mark.parametrize("depth", [40, 100_000])
    def test_deeply_nested_json_is_stored_and_failed(self, app, client, depth):
        body = b'{"event": "message.received", "data": ' + b"[" * depth + b"]" * depth + b"}"

        response = client.post(URL, data=body, headers=signed_headers(app.config["VAMBE_WEBHOOK_SECRET"], body))

        assert response.status_code == 200
        [delivery] = deliveries(app)
        assert delivery.state == DeliveryState.FAILED and "nest" in delivery.error

    def test_nul_and_lone_surrogates_in_the_text_are_stored_as_replacement_characters(self, app, client):
        contact = new_contact_id()
        payload = shape_a("message.received", contact_id=contact, body="Ho\x00la \ud800!", name="Ma\x00ría")
        body = json.dumps(payload).encode()  # ASCII escapes: \u0000 and \ud800 as JSON writes them

        response = client.post(URL, data=body, headers=signed_headers(app.config["VAMBE_WEBHOOK_SECRET"], body))

        assert response.status_code == 200 and response.get_json()["state"] == "processed"
        [message] = messages(app)
        assert message.body == "Ho\ufffdla \ufffd!"
        assert conversation_of(app, contact).name == "Ma\ufffdría"

    def test_a_raw_nul_byte_in_the_body_is_stored_and_failed(self, app, client):
        body = b'{"event": "message.received", "data": {"contact_id": "\x00"}}'

        response = client.post(URL, data=body, headers=signed_headers(app.config["VAMBE_WEBHOOK_SECRET"], body))

        assert response.status_code == 200
        [delivery] = deliveries(app)
        assert delivery.state == DeliveryState.FAILED and "\x00" not in delivery.body

    @pytest.mark.parametrize(
        "timestamp",
        ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z"],
    )
    def test_a_timestamp_out_of_range_or_before_whatsapp_is_taken_as_the_receive_time(self, app, client, timestamp):
        payload = shape_a("message.received", contact_id=new_contact_id(), body="Hola")
        payload["timestamp"] = timestamp
        before = utcnow()

        response = post_signed(client, app, payload)

        assert response.status_code == 200 and response.get_json()["state"] == "processed"
        [message] = messages(app)
        assert message.occurred_at >= before - timedelta(seconds=1)

    @pytest.mark.parametrize("timestamp", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"])
    def test_a_signature_timestamp_out_of_range_is_401_not_500(self, app, client, timestamp):
        payload = shape_a("message.received", contact_id=new_contact_id(), body="Hola")
        assert post_signed(client, app, payload, timestamp=timestamp).status_code == 401

    @pytest.mark.parametrize("event", ["message.received", "message.sent"])
    def test_a_delivery_without_a_message_id_delivered_three_times_is_stored_once(self, app, client, event):
        payload = shape_a(event, contact_id=new_contact_id(), body="Sin id")
        del payload["data"]["message_id"]

        answers = [post_signed(client, app, payload) for _ in range(3)]

        assert [a.get_json()["state"] for a in answers] == ["processed"] * 3
        [message] = messages(app)
        assert {d.message_id for d in deliveries(app)} == {message.id}

    def test_two_messages_without_ids_that_differ_are_both_stored(self, app, client):
        contact = new_contact_id()
        for text in ("Hola", "¿Siguen ahí?"):
            payload = shape_a("message.received", contact_id=contact, body=text)
            del payload["data"]["message_id"]
            post_signed(client, app, payload)
        assert [m.body for m in messages(app)] == ["Hola", "¿Siguen ahí?"]
