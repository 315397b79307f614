"""Every route in the URL map, tried with hostile values in its path, its query string and every form field the
app knows: nothing may answer 5xx. A new route or form field is covered without anyone remembering to add it."""

import io
import json
import re
from urllib.parse import quote

import pytest
from flask_wtf import FlaskForm
from sqlalchemy import select

from app.extensions import db
from app.models import Role, User
from tests import factories
from tests.conftest import TEST_PASSWORD, Auth, csrf_token_from

HOSTILE = [
    "\x00",
    "a\x00b",
    "\x01\x1f\x7f",
    "\u202eevil",
    "x" * 5000,
    "9" * 30,
    str(2**31),
    str(2**63),
    "-1",
    "0",
    "١٢",
    "²",
    "0001-01-01",
    "9999-12-31",
    "2024-02-30",
    "2024-01-01T00:00:00+23:59",
    " ",
    "",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "[]",
    "null",
    "%00",
    "\ufffd",
]
# Percent-encoded in a raw query string: bytes no UTF-8 decoder takes, and a NUL.
RAW_QUERIES = ["q=%ED%A0%80", "q=%FF%FE", "after=%00", "since=%C0%AF", "v=%ED%B0%80x"]
QUERY_PARAMETERS = [
    "q", "after", "before", "since", "until", "actor", "kind", "agent", "contact", "quote", "v", "page", "days",
    "state", "next", "direction", "outcome", "scope", "window", "status", "sort", "paused", "overrides", "from",
]  # fmt: skip
ARGUMENT = re.compile(r"<(?:\w+:)?(\w+)>")
SKIPPED_ENDPOINTS = {"static", "auth.logout"}  # signing out is tried last, on its own


def form_fields() -> set[str]:
    """Every field of every form class the app defines."""
    names, pending = set(), list(FlaskForm.__subclasses__())
    while pending:
        form = pending.pop()
        pending.extend(form.__subclasses__())
        names.update(name for name, value in vars(form).items() if hasattr(value, "field_class"))
    return names - {"csrf_token"}


def rotated(index: int, count: int) -> list[str]:
    return [HOSTILE[(index * 7 + offset) % len(HOSTILE)] for offset in range(count)]


class Walker:
    def __init__(self, app, auth: Auth, ids: dict[str, int]):
        self.app, self.auth, self.ids = app, auth, ids
        self.tried, self.server_errors = 0, []

    def request(self, method: str, url: str, **kwargs):
        response = self.auth.client.open(url, method=method, **kwargs)
        self.tried += 1
        if response.status_code >= 500:
            self.server_errors.append(f"{method} {url[:120]} {str(kwargs)[:160]} -> {response.status_code}")
        if response.status_code in (302, 401) and "/login" in response.headers.get("Location", "") + str(
            response.headers.get("HX-Redirect", "")
        ):
            self.auth.login(self.auth.email)
        response.close()
        return response

    def token(self) -> str:
        return csrf_token_from(self.auth.client.get("/admin/users").get_data(as_text=True))

    def paths(self, rule) -> list[str]:
        """The rule's URL with a real record in each argument, then with hostile values in each."""

        def build(value_for) -> str:
            return ARGUMENT.sub(lambda match: value_for(match[1]), rule.rule)

        real = build(lambda argument: str(self.ids.get(argument, 1)))
        return [real] + [build(lambda _, v=value: quote_path(v)) for value in HOSTILE[:12] if rule.arguments]

    def walk(self, rule) -> None:
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        for path in self.paths(rule):
            for method in methods:
                self.request(method, path)
        real = self.paths(rule)[0]
        if "GET" in methods:
            for index, name in enumerate(QUERY_PARAMETERS):
                for value in rotated(index, 3):
                    self.request("GET", real, query_string={name: value})
            for raw in RAW_QUERIES:
                self.request("GET", f"{real}?{raw}")
        if "POST" in methods:
            self.post_forms(real)

    def post_forms(self, url: str) -> None:
        token, fields = self.token(), sorted(form_fields())
        for value in HOSTILE:
            self.request("POST", url, data={"csrf_token": token, **dict.fromkeys(fields, value)})
        for index, name in enumerate(fields):
            for value in rotated(index, 2):
                self.request("POST", url, data={"csrf_token": token, name: value})
        for body in ({"message": ["a"]}, {"message": "\ud800"}, {"message": True, "status": {"x": 1}}):
            self.request(
                "POST", url, data=json.dumps({**body, "csrf_token": token}),
                headers={"Content-Type": "application/json", "X-CSRFToken": token},
            )  # fmt: skip
        self.request(
            "POST", url, content_type="multipart/form-data",
            data={"csrf_token": token, "message": (io.BytesIO(b"hola"), "m.txt"), "body": (io.BytesIO(b"x"), "b")},
        )  # fmt: skip
        self.request("POST", url, data={"csrf_token": "\x00" + token, "message": "hola"})
        self.request("POST", url, headers={"X-CSRFToken": "é" + token}, data={"message": "hola"})


def quote_path(value: str) -> str:
    return quote(value, safe="") or "%20"


@pytest.fixture
def walker(app):
    with app.app_context():
        conversation = factories.make_conversation()
        message = factories.make_message(conversation, body="Hola, ¿me ayudan?")
        victim = factories.make_user(email="victim@example.com", role=Role.AGENT)
        ids = {"conversation_id": conversation.id, "user_id": victim.id, "quick_reply_id": 1, "delivery_id": 1}
        assert message.id
    auth = Auth(app, app.test_client())
    auth.email = "walker@example.com"
    with app.app_context():
        factories.make_user(email=auth.email, role=Role.ADMIN, password=TEST_PASSWORD)
    auth.login(auth.email)
    return Walker(app, auth, ids)


def test_no_route_answers_5xx_to_hostile_values(app, walker):
    rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint not in SKIPPED_ENDPOINTS]
    for rule in rules:
        walker.walk(rule)
    walker.post_forms("/logout")

    print(f"\nhostile requests tried: {walker.tried}, server errors: {len(walker.server_errors)}")
    assert walker.server_errors == [], "\n".join(walker.server_errors[:40])
    assert walker.tried > 3000
    with app.app_context():  # the walk itself did not break the store
        assert db.session.scalar(select(User).where(User.email == "walker@example.com")) is not None
