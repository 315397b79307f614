"""Property-based tests: whatever text or JSON arrives, the webhook parser and the console's forms and queries answer
with a result or a clear refusal, never an exception or a 5xx; on SQLite and PostgreSQL."""

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.clock import utcnow
from app.domain.deliveries import MAX_BODY_BYTES, MessageEvent, UnrecognisedEvent, parse_event, read_json
from app.extensions import db
from app.models import Role, WebhookDelivery
from tests import factories

# Text as hostile clients send it: NUL and other controls, lone surrogates, right-to-left marks, and long runs.
HOSTILE_TEXT = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(["\x00", "\ud800", "\udfff", "\u202e", "\u200f", "é", "a", "9", " ", "%"])),
    st.builds(lambda n, unit: unit * n, st.integers(2000, 12000), st.sampled_from(["x", "\x00", "ñ", "\ud800"])),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | HOSTILE_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(HOSTILE_TEXT, children, max_size=4),
    max_leaves=20,
)
FIELD_NAMES = ["contact_id", "message_id", "message_body", "contact_name", "aiContactId", "messageId", "message",
               "fromNumber", "toNumber", "name", "timestamp", "createdAt", "event"]  # fmt: skip
SHAPED = st.fixed_dictionaries(
    {"event": st.sampled_from(["message.received", "message.sent"]) | JSON_VALUES, "timestamp": JSON_VALUES},
    optional={"aiContactId": JSON_VALUES},
).flatmap(lambda top: st.dictionaries(st.sampled_from(FIELD_NAMES), JSON_VALUES).map(lambda d: {**top, "data": d}))
PROPERTIES = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Through the app and its database: fewer, slower examples.
THROUGH_THE_APP = settings(PROPERTIES, max_examples=20)
RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)


@PROPERTIES
@given(payload=JSON_VALUES | SHAPED, business_phones=st.sets(st.text(alphabet="0123456789", max_size=12)))
def test_the_parser_returns_an_event_or_refuses_clearly(payload, business_phones):
    try:
        event = parse_event(payload, RECEIVED, business_phones)
    except UnrecognisedEvent:
        return
    assert isinstance(event, MessageEvent)
    assert event.occurred_at <= RECEIVED
    assert "\x00" not in event.body and "\x00" not in event.contact.name


@PROPERTIES
@given(depth=st.integers(min_value=1, max_value=200_000))
def test_nesting_of_any_depth_is_read_or_refused(depth):
    body = "[" * depth + "]" * depth
    try:
        read_json(body)
    except UnrecognisedEvent:
        assert depth > 32


def signed_post(client, secret: str, body: bytes):
    timestamp = str(int(utcnow().timestamp()))
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    response = client.post(
        "/webhooks/vambe",
        data=body,
        headers={"content-type": "application/json", "x-vambe-timestamp": timestamp, "x-vambe-signature": signature},
    )
    response.close()
    return response


@THROUGH_THE_APP
@given(payload=SHAPED)
def test_a_signed_delivery_of_any_shape_is_stored_and_answered_without_a_5xx(app, client, payload):
    body = json.dumps(payload).encode("utf-8", "surrogatepass")  # ensure_ascii: surrogates travel as \\ud800
    with app.app_context():
        before = db.session.scalar(select(func.count(WebhookDelivery.id)))

    response = signed_post(client, app.config["VAMBE_WEBHOOK_SECRET"], body)

    fits = len(body) <= MAX_BODY_BYTES
    assert response.status_code == (200 if fits else 413), response.status_code
    with app.app_context():
        assert db.session.scalar(select(func.count(WebhookDelivery.id))) == before + fits


def raw_query(**values: str) -> str:
    """A query string carrying exactly these characters, surrogates and all, percent-encoded byte by byte."""
    return "&".join(f"{name}={quote(value.encode('utf-8', 'surrogatepass'))}" for name, value in values.items())


@THROUGH_THE_APP
@given(text=HOSTILE_TEXT, other=HOSTILE_TEXT)
def test_inbox_and_review_queries_never_answer_5xx(app, auth, text, other):
    if not getattr(auth, "signed_in", False):
        auth.login_as(Role.ADMIN)
        auth.signed_in = True
    for path, query in (
        ("/", raw_query(q=text, after=other)),
        ("/review/", raw_query(q=text, contact=other, since=other, agent=text)),
        ("/review/reports", raw_query(since=text, until=other)),
        ("/admin/audit", raw_query(kind=text, actor=other, before=text)),
    ):
        response = auth.client.get(f"{path}?{query}")
        assert response.status_code < 500, (path, query[:200])


@THROUGH_THE_APP
@given(text=HOSTILE_TEXT, quoted=HOSTILE_TEXT)
def test_the_composer_never_answers_5xx_and_stores_only_what_it_can(app, auth, text, quoted):
    if not getattr(auth, "conversation_id", None):
        auth.login_as(Role.AGENT)
        with app.app_context():
            auth.conversation_id = factories.make_conversation(last_inbound_at=utcnow()).id
        auth.token = auth.csrf_token(f"/conversations/{auth.conversation_id}")
    body = raw_query(
        csrf_token=auth.token, idempotency_key=uuid.uuid4().hex, message=text, reply_to=quoted, seen_through=quoted
    )
    response = auth.client.post(
        f"/conversations/{auth.conversation_id}/messages",
        data=body,
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code < 500
