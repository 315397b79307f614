"""What an agent does to a conversation over HTTP: assign, resolve and reopen (each an audit event), read the
thread by local day, and send safely when someone else replied first or a send failed."""

import re
from datetime import datetime, timedelta
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from app.clock import utcnow
from app.extensions import db
from app.models import (
    AuditEvent,
    AuditKind,
    Author,
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    Outcome,
    Role,
    User,
)
from app.sandbox.customers import customer_says
from app.sandbox.state import SandboxContact, SandboxMessage
from tests import factories
from tests.conftest import Auth

PARTIAL = {"HX-Request": "true", "HX-Request-Type": "partial"}
SANTIAGO = ZoneInfo("America/Santiago")


# ---------------------------------------------------------------- helpers


class FormReader(HTMLParser):
    """The fields a browser would submit from the form with ``form_id`` (buttons listed apart)."""

    def __init__(self, form_id: str):
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.inside = False
        self.found = False
        self.fields: dict[str, str] = {}
        self.buttons: list[tuple[str | None, str | None, str]] = []
        self.textarea: str | None = None
        self.button: list | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form":
            self.inside = attributes.get("id") == self.form_id
            self.found = self.found or self.inside
            return
        if not self.inside:
            return
        name = attributes.get("name")
        if tag == "input":
            kind = attributes.get("type", "text")
            if kind == "submit":
                self.buttons.append((name, attributes.get("value"), ""))
            elif kind in ("checkbox", "radio"):
                if "checked" in attributes and name:
                    self.fields[name] = attributes.get("value") or "on"
            elif name:
                self.fields[name] = attributes.get("value") or ""
        elif tag == "textarea" and name:
            self.textarea = name
            self.fields[name] = ""
        elif tag == "button":
            self.button = [name, attributes.get("value"), ""]

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "textarea":
            self.textarea = None
        elif tag == "button" and self.button is not None:
            self.button[2] = " ".join(self.button[2].split())
            self.buttons.append(tuple(self.button))
            self.button = None

    def handle_data(self, data):
        if self.textarea is not None:
            # A browser drops the one newline right after <textarea>.
            self.fields[self.textarea] += data if self.fields[self.textarea] else re.sub(r"^\r?\n", "", data)
        if self.button is not None:
            self.button[2] += data


def read_form(html: str, form_id: str = "composer") -> FormReader:
    reader = FormReader(form_id)
    reader.feed(html)
    assert reader.found, f"no form #{form_id} on the page"
    return reader


def composer(html: str, **changes) -> dict[str, str]:
    """The composer's fields as the browser would post them, with ``changes`` applied."""
    fields = dict(read_form(html).fields)
    fields.update(changes)
    return fields


def sandbox_conversation(app, **kwargs) -> int:
    with app.app_context():
        return factories.make_sandbox_conversation(**kwargs).id


def token(auth: Auth, conversation_id: int) -> str:
    return auth.csrf_token(f"/conversations/{conversation_id}")


def events(app, conversation_id: int, *kinds: str) -> list[AuditEvent]:
    with app.app_context():
        query = select(AuditEvent).where(AuditEvent.conversation_id == conversation_id).order_by(AuditEvent.id)
        if kinds:
            query = query.where(AuditEvent.kind.in_(kinds))
        found = db.session.scalars(query).all()
        db.session.expunge_all()
        return found


def conversation_state(app, conversation_id: int) -> tuple[int | None, str]:
    with app.app_context():
        conversation = db.session.get(Conversation, conversation_id)
        return conversation.assignee_id, conversation.status


def messages_by(app, conversation_id: int, user_id: int | None = None) -> list[Message]:
    with app.app_context():
        query = select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
        if user_id is not None:
            query = query.where(Message.author_user_id == user_id)
        found = db.session.scalars(query).all()
        db.session.expunge_all()
        return found


def make_user(app, **kwargs) -> tuple[int, str]:
    with app.app_context():
        user = factories.make_user(**kwargs)
        return user.id, user.name


def user_name(app, user_id: int) -> str:
    with app.app_context():
        return db.session.get(User, user_id).name


def thread_text(html: str) -> str:
    thread = re.search(r'<ol class="thread">(.*?)</ol>', html, re.DOTALL).group(1)
    return " ".join(re.sub(r"<[^>]+>", " ", thread).split())


@pytest.fixture
def agent(auth):
    return auth.login_as(Role.AGENT)


@pytest.fixture
def colleague(app):
    """A second agent, signed in on their own browser."""
    other = Auth(app, app.test_client())
    other.user_id = other.login_as(Role.AGENT)
    return other


# ---------------------------------------------------------------- assignment


class TestAssignment:
    def test_assign_to_me_records_one_event_and_shows_it_in_the_thread(self, app, auth, agent):
        conversation_id = sandbox_conversation(app)
        me = user_name(app, agent)

        response = auth.client.post(
            f"/conversations/{conversation_id}/assignee",
            data={"csrf_token": token(auth, conversation_id), "assignee": "me"},
        )

        assert response.status_code == 303
        assert response.headers["Location"] == f"/conversations/{conversation_id}"
        assert conversation_state(app, conversation_id) == (agent, ConversationStatus.OPEN)
        [event] = events(app, conversation_id)
        assert (event.kind, event.actor_id, event.details) == (
            AuditKind.ASSIGNED,
            agent,
            {"from": None, "to": me},
        )
        html = auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
        assert f"{me} assigned the conversation to {me}" in thread_text(html)
        assert f"Assigned to {me}" in html
        assert ">Assign to me</button>" not in html  # already mine

    def test_assign_to_another_agent_then_unassign(self, app, auth, agent):
        conversation_id = sandbox_conversation(app)
        me = user_name(app, agent)
        other_id, other = make_user(app, name="Bernardita Núñez")
        url = f"/conversations/{conversation_id}/assignee"

        auth.client.post(url, data={"csrf_token": token(auth, conversation_id), "assignee": "me"})
        auth.client.post(url, data={"csrf_token": token(auth, conversation_id), "assignee": str(other_id)})
        assert conversation_state(app, conversation_id)[0] == other_id
        auth.client.post(url, data={"csrf_token": token(auth, conversation_id), "assignee": ""})
        assert conversation_state(app, conversation_id)[0] is None

        recorded = [(e.kind, e.actor_id, e.details) for e in events(app, conversation_id)]
        assert recorded == [
            (AuditKind.ASSIGNED, agent, {"from": None, "to": me}),
            (AuditKind.ASSIGNED, agent, {"from": me, "to": other}),
            (AuditKind.UNASSIGNED, agent, {"from": other, "to": None}),
        ]
        text = thread_text(auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True))
        assert f"{me} assigned the conversation to Bernardita Núñez" in text
        assert f"{me} unassigned the conversation" in text
        assert text.index("to Bernardita Núñez") < text.index("unassigned the conversation")

    def test_the_assign_menu_offers_active_users_only(self, app, auth, agent):
        conversation_id = sandbox_conversation(app)
        active_id, _ = make_user(app, name="Active Agent")
        gone_id, _ = make_user(app, name="Gone Agent")
        with app.app_context():
            db.session.get(User, gone_id).active = False
            db.session.commit()
        html = auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
        assert f'<option value="{active_id}">Active Agent</option>' in html
        assert "Gone Agent" not in html

    @pytest.mark.parametrize("choice", ["me", "other"])
    def test_repeating_the_same_assignment_records_nothing_more(self, app, auth, agent, choice):
        conversation_id = sandbox_conversation(app)
        other_id, _ = make_user(app)
        value = "me" if choice == "me" else str(other_id)
        for _ in range(3):
            response = auth.client.post(
                f"/conversations/{conversation_id}/assignee",
                data={"csrf_token": token(auth, conversation_id), "assignee": value},
            )
            assert response.status_code == 303
        assert len(events(app, conversation_id)) == 1

    def test_unassigning_an_unassigned_conversation_records_nothing(self, app, auth, agent):
        conversation_id = sandbox_conversation(app)
        response = auth.client.post(
            f"/conversations/{conversation_id}/assignee",
            data={"csrf_token": token(auth, conversation_id), "assignee": ""},
        )
        assert response.status_code == 303
        assert events(app, conversation_id) == []

    def test_a_deactivated_user_cannot_be_assigned(self, app, auth, agent):
        conversation_id = sandbox_conversation(app)
        gone_id, _ = make_user(app, name="Gone Agent")
        with app.app_context():
            db.session.get(User, gone_id).active = False
            db.session.commit()

        response = auth.client.post(
            f"/conversations/{conversation_id}/assignee",
            data={"csrf_token": token(auth, conversation_id), "assignee": str(gone_id)},
            headers=PARTIAL,
        )

        assert response.status_code == 422
        assert "Gone Agent is deactivated" in response.get_data(as_text=True)
        assert conversation_state(app, conversation_id)[0] is None
        assert events(app, conversation_id) == []

    @pytest.mark.parametrize("value", ["987654", "somebody", "-1"])
    def test_an_unknown_user_is_422(self, app, auth, agent, value):
        conversation_id = sandbox_conversation(app)
        response = auth.client.post(
            f"/conversations/{conversation_id}/assignee",
            data={"csrf_token": token(auth, conversation_id), "assignee": value},
        )
        assert response.status_code == 422
        assert conversation_state(app, conversation_id)[0] is None
        assert events(app, conversation_id) == []

    def test_without_a_csrf_token_nothing_changes(self, app, auth, agent):
        conversation_id = sandbox_conversation(app)
        response = auth.client.post(f"/conversations/{conversation_id}/assignee", data={"assignee": "me"})
        assert response.status_code == 400
        assert conversation_state(app, conversation_id)[0] is None

    def test_an_unknown_conversation_is_404(self, app, auth, agent):
        sandbox_conversation(app)
        response = auth.client.post(
            "/conversations/99999/assignee", data={"csrf_token": auth.csrf_token(), "assignee": "me"}
        )
        assert response.status_code == 404


# ---------------------------------------------------------------- resolve / reopen


class TestStatus:
    def test_resolve_then_reopen_each_record_one_event_shown_in_the_thread(self, app, auth, agent):
        conversation_id = sandbox_conversation(app)
        me = user_name(app, agent)
        url = f"/conversations/{conversation_id}/status"

        resolved = auth.client.post(url, data={"csrf_token": token(auth, conversation_id), "status": "resolved"})
        assert resolved.status_code == 303
        assert conversation_state(app, conversation_id)[1] == ConversationStatus.RESOLVED
        html = auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
        assert "✓ Resolved" in html and 'name="status" value="open"' in html
        assert f"{me} marked it resolved" in thread_text(html)

        reopened = auth.client.post(url, data={"csrf_token": token(auth, conversation_id), "status": "open"})
        assert reopened.status_code == 303
        assert conversation_state(app, conversation_id)[1] == ConversationStatus.OPEN
        html = auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
        assert "✓ Resolved" not in html and 'name="status" value="resolved"' in html
        assert f"{me} reopened it" in thread_text(html)

        recorded = [(e.kind, e.actor_id, e.details) for e in events(app, conversation_id)]
        assert recorded == [(AuditKind.RESOLVED, agent, {}), (AuditKind.REOPENED, agent, {})]

    def test_repeating_a_status_records_nothing_more(self, app, auth, agent):
        conversation_id = sandbox_conversation(app)
        url = f"/conversations/{conversation_id}/status"
        for _ in range(2):
            auth.client.post(url, data={"csrf_token": token(auth, conversation_id), "status": "resolved"})
        assert [e.kind for e in events(app, conversation_id)] == [AuditKind.RESOLVED]
        auth.client.post(url, data={"csrf_token": token(auth, conversation_id), "status": "open"})
        auth.client.post(url, data={"csrf_token": token(auth, conversation_id), "status": "open"})
        assert [e.kind for e in events(app, conversation_id)] == [AuditKind.RESOLVED, AuditKind.REOPENED]

    def test_reopening_an_open_conversation_records_nothing(self, app, auth, agent):
        conversation_id = sandbox_conversation(app)
        response = auth.client.post(
            f"/conversations/{conversation_id}/status",
            data={"csrf_token": token(auth, conversation_id), "status": "open"},
        )
        assert response.status_code == 303
        assert events(app, conversation_id) == []

    @pytest.mark.parametrize("value", ["closed", "RESOLVED", "", None])
    def test_an_unknown_status_is_422(self, app, auth, agent, value):
        conversation_id = sandbox_conversation(app)
        data = {"csrf_token": token(auth, conversation_id)}
        if value is not None:
            data["status"] = value
        response = auth.client.post(f"/conversations/{conversation_id}/status", data=data)
        assert response.status_code == 422
        assert conversation_state(app, conversation_id)[1] == ConversationStatus.OPEN
        assert events(app, conversation_id) == []

    def test_a_resolved_conversation_leaves_the_inbox_and_comes_back_when_reopened(self, app, auth, agent):
        conversation_id = sandbox_conversation(app, name="Resolvable Customer")
        url = f"/conversations/{conversation_id}/status"
        auth.client.post(url, data={"csrf_token": token(auth, conversation_id), "status": "resolved"})
        assert "Resolvable Customer" not in auth.client.get("/").get_data(as_text=True)
        assert "Resolvable Customer" in auth.client.get("/?status=resolved").get_data(as_text=True)
        auth.client.post(url, data={"csrf_token": token(auth, conversation_id), "status": "open"})
        assert "Resolvable Customer" in auth.client.get("/").get_data(as_text=True)


class TestHtmxAnswers:
    @pytest.mark.parametrize(
        ("path", "data", "shown"),
        [
            ("assignee", {"assignee": "me"}, "Assigned to "),
            ("status", {"status": "resolved"}, "✓ Resolved"),
        ],
    )
    def test_htmx_gets_the_live_fragment_and_others_a_redirect(self, app, auth, agent, path, data, shown):
        first = sandbox_conversation(app)
        second = sandbox_conversation(app)

        fragment = auth.client.post(
            f"/conversations/{first}/{path}", data={"csrf_token": token(auth, first), **data}, headers=PARTIAL
        )
        html = fragment.get_data(as_text=True)
        assert fragment.status_code == 200
        assert html.lstrip().startswith('<div id="conversation-live"')
        assert "<html" not in html and 'id="composer"' not in html
        assert shown in html
        assert 'id="thread"' in html and len(events(app, first)) == 1

        page = auth.client.post(f"/conversations/{second}/{path}", data={"csrf_token": token(auth, second), **data})
        assert page.status_code == 303
        assert page.headers["Location"] == f"/conversations/{second}"
        assert len(events(app, second)) == 1

    def test_a_refused_assignment_over_htmx_is_a_fragment_not_a_page(self, app, auth, agent):
        conversation_id = sandbox_conversation(app)
        response = auth.client.post(
            f"/conversations/{conversation_id}/assignee",
            data={"csrf_token": token(auth, conversation_id), "assignee": "424242"},
            headers=PARTIAL,
        )
        assert response.status_code == 422
        assert "<html" not in response.get_data(as_text=True)
        assert "That user does not exist." in response.get_data(as_text=True)


# ---------------------------------------------------------------- the customer reopens


class TestCustomerReopens:
    def resolve(self, auth, conversation_id):
        response = auth.client.post(
            f"/conversations/{conversation_id}/status",
            data={"csrf_token": token(auth, conversation_id), "status": "resolved"},
        )
        assert response.status_code == 303

    def test_a_sandbox_customer_writing_again_reopens_with_an_event(self, app, auth, agent):
        conversation_id = sandbox_conversation(app, name="Returning Customer")
        self.resolve(auth, conversation_id)

        with app.app_context():
            phone = db.session.get(Conversation, conversation_id).phone
            customer_says(phone, "Hola de nuevo, tengo otra duda", now=utcnow())

        assert conversation_state(app, conversation_id)[1] == ConversationStatus.OPEN
        resolved, reopened = events(app, conversation_id, AuditKind.RESOLVED, AuditKind.REOPENED)
        assert (resolved.kind, resolved.actor_id) == (AuditKind.RESOLVED, agent)
        assert (reopened.kind, reopened.actor_id) == (AuditKind.REOPENED, None)
        assert reopened.details == {"reason": "the customer wrote again"}
        html = auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
        text = thread_text(html)
        assert "Handoff reopened it (the customer wrote again)" in text
        assert text.index("Hola de nuevo") < text.index("Handoff reopened it")
        assert "Returning Customer" in auth.client.get("/").get_data(as_text=True)

    def test_an_ingested_inbound_message_reopens_once(self, app, auth, agent):
        conversation_id = sandbox_conversation(app)
        self.resolve(auth, conversation_id)
        with app.app_context():
            conversation = db.session.get(Conversation, conversation_id)
            factories.make_message(conversation, body="¿Siguen ahí?", occurred_at=utcnow())
            factories.make_message(conversation, body="¿Hola?", occurred_at=utcnow())
        assert conversation_state(app, conversation_id)[1] == ConversationStatus.OPEN
        assert len(events(app, conversation_id, AuditKind.REOPENED)) == 1

    def test_an_outbound_message_does_not_reopen(self, app, auth, agent):
        conversation_id = sandbox_conversation(app)
        self.resolve(auth, conversation_id)
        with app.app_context():
            conversation = db.session.get(Conversation, conversation_id)
            factories.make_message(conversation, direction=Direction.OUTBOUND, body="Encuesta", occurred_at=utcnow())
        assert conversation_state(app, conversation_id)[1] == ConversationStatus.RESOLVED
        assert events(app, conversation_id, AuditKind.REOPENED) == []

    def test_a_repeated_delivery_of_an_old_customer_message_does_not_reopen(self, app, auth, agent):
        conversation_id = sandbox_conversation(app)
        [old] = messages_by(app, conversation_id)
        self.resolve(auth, conversation_id)
        with app.app_context():
            conversation = db.session.get(Conversation, conversation_id)
            factories.make_message(
                conversation,
                body=old.body,
                provider_message_id=old.provider_message_id,
                occurred_at=old.occurred_at,
            )
        assert conversation_state(app, conversation_id)[1] == ConversationStatus.RESOLVED
        assert events(app, conversation_id, AuditKind.REOPENED) == []


# ---------------------------------------------------------------- day separators


def separators(html: str) -> list[str]:
    return re.findall(r'<li class="day-separator" role="separator"><span>([^<]+)</span></li>', html)


def local(*args) -> datetime:
    return datetime(*args, tzinfo=SANTIAGO)


class TestDaySeparators:
    def conversation_with_messages_at(self, app, *moments: datetime) -> int:
        with app.app_context():
            conversation = factories.make_conversation(name="Night Owl", now=moments[0] - timedelta(hours=1))
            for n, moment in enumerate(moments):
                factories.make_message(conversation, body=f"mensaje {n}", occurred_at=moment)
            return conversation.id

    def test_messages_either_side_of_local_midnight_get_two_separators(self, app, client, agent):
        # 23:50 and 00:10 in Santiago (UTC-3 in January) are 02:50 and 03:10 on the same UTC day.
        conversation_id = self.conversation_with_messages_at(app, local(2025, 1, 14, 23, 50), local(2025, 1, 15, 0, 10))
        client.set_cookie("tz", "America%2FSantiago")
        html = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
        assert separators(html) == ["Tuesday 14 January 2025", "Wednesday 15 January 2025"]
        assert html.index("Tuesday 14 January") < html.index("mensaje 0") < html.index("Wednesday 15 January")
        assert html.index("Wednesday 15 January") < html.index("mensaje 1")

        client.delete_cookie("tz")  # in UTC the two are on one day
        assert separators(client.get(f"/conversations/{conversation_id}").get_data(as_text=True)) == [
            "Wednesday 15 January 2025"
        ]

    def test_one_local_day_has_one_separator_even_across_utc_midnight(self, app, client, agent):
        # 00:10 and 23:50 on the same Santiago day are on two UTC days.
        conversation_id = self.conversation_with_messages_at(app, local(2025, 1, 15, 0, 10), local(2025, 1, 15, 23, 50))
        client.set_cookie("tz", "America%2FSantiago")
        html = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
        assert separators(html) == ["Wednesday 15 January 2025"]
        assert html.count('class="day-separator"') == 1

        client.delete_cookie("tz")
        assert separators(client.get(f"/conversations/{conversation_id}").get_data(as_text=True)) == [
            "Wednesday 15 January 2025",
            "Thursday 16 January 2025",
        ]

    def test_audit_events_take_part_in_the_days(self, app, auth, agent):
        conversation_id = self.conversation_with_messages_at(app, local(2025, 1, 14, 12, 0))
        auth.client.set_cookie("tz", "America%2FSantiago")
        auth.client.post(
            f"/conversations/{conversation_id}/status",
            data={"csrf_token": token(auth, conversation_id), "status": "resolved"},
        )
        html = auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
        # The event's own local day, not the clock's after the fact: Santiago's midnight may pass in between.
        [resolved] = events(app, conversation_id, AuditKind.RESOLVED)
        event_day = resolved.occurred_at.astimezone(SANTIAGO).strftime("%A %d %B %Y")
        assert separators(html) == ["Tuesday 14 January 2025", event_day]
        assert html.index(event_day) < html.index("marked it resolved")


# ---------------------------------------------------------------- newer-reply protection


def other_agent_replies(colleague: Auth, conversation_id: int, text: str) -> None:
    page = colleague.client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    response = colleague.client.post(f"/conversations/{conversation_id}/messages", data=composer(page, message=text))
    assert response.status_code == 303, response.get_data(as_text=True)


def assistant_replies(app, conversation_id: int, text: str) -> None:
    with app.app_context():
        factories.make_message(
            db.session.get(Conversation, conversation_id),
            direction=Direction.OUTBOUND,
            author=Author.ASSISTANT,
            body=text,
            occurred_at=utcnow(),
        )


class TestNewerReply:
    @pytest.mark.parametrize("who", ["colleague", "assistant"])
    def test_a_reply_by_someone_else_while_typing_asks_first_then_sends_once(self, app, auth, agent, colleague, who):
        conversation_id = sandbox_conversation(app)
        page = auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
        form = composer(page, message="Hola, te ayudo yo con el pedido")
        assert form["seen_through"] == str(messages_by(app, conversation_id)[-1].id)

        if who == "colleague":
            other_agent_replies(colleague, conversation_id, "Ya lo estoy viendo yo")
            label = user_name(app, colleague.user_id)
        else:
            assistant_replies(app, conversation_id, "Soy el asistente, ¿en qué te ayudo?")
            label = "AI assistant"
        [newer] = [m for m in messages_by(app, conversation_id) if m.direction == Direction.OUTBOUND]

        refused = auth.client.post(f"/conversations/{conversation_id}/messages", data=form, headers=PARTIAL)

        html = refused.get_data(as_text=True)
        assert refused.status_code == 409
        assert f"{label} replied while you were typing" in html
        assert newer.body in html
        warning = read_form(html)
        assert ("confirm_newer_reply", "yes", "Send anyway") in warning.buttons
        assert warning.fields["message"] == "Hola, te ayudo yo con el pedido"  # the text survives
        assert warning.fields["idempotency_key"] == form["idempotency_key"]
        assert messages_by(app, conversation_id, agent) == []

        confirmation = composer(html, confirm_newer_reply="yes")
        for _ in range(2):  # a double click
            confirmed = auth.client.post(
                f"/conversations/{conversation_id}/messages", data=confirmation, headers=PARTIAL
            )
            assert confirmed.status_code == 200
            assert "Sent: Vambe accepted the message." in confirmed.get_data(as_text=True)

        [sent] = messages_by(app, conversation_id, agent)
        assert (sent.body, sent.outcome) == ("Hola, te ayudo yo con el pedido", Outcome.SENT)
        [override] = events(app, conversation_id, AuditKind.NEWER_REPLY_OVERRIDE)
        assert (override.actor_id, override.message_id) == (agent, sent.id)
        assert override.details == {"newer_message_id": newer.id}
        assert "sent despite a newer reply" in thread_text(
            auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
        )

    def test_confirming_on_the_composer_as_first_loaded_sends_once_and_records_the_override(self, app, auth, agent):
        conversation_id = sandbox_conversation(app)
        url = f"/conversations/{conversation_id}/messages"
        form = composer(auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True), message="Voy")
        assistant_replies(app, conversation_id, "Respuesta del asistente")
        [newer] = [m for m in messages_by(app, conversation_id) if m.direction == Direction.OUTBOUND]
        assert auth.client.post(url, data=form, headers=PARTIAL).status_code == 409

        for _ in range(2):
            response = auth.client.post(url, data={**form, "confirm_newer_reply": "yes"}, headers=PARTIAL)
            assert response.status_code == 200

        [sent] = messages_by(app, conversation_id, agent)
        assert sent.body == "Voy" and sent.outcome == Outcome.SENT
        [override] = events(app, conversation_id, AuditKind.NEWER_REPLY_OVERRIDE)
        assert (override.actor_id, override.message_id, override.details) == (
            agent,
            sent.id,
            {"newer_message_id": newer.id},
        )

    def test_the_agents_own_earlier_message_does_not_trigger_the_warning(self, app, auth, agent):
        conversation_id = sandbox_conversation(app)
        first_tab = composer(auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True), message="Dos")
        second_tab = composer(
            auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True), message="Uno"
        )
        assert auth.client.post(f"/conversations/{conversation_id}/messages", data=second_tab).status_code == 303

        response = auth.client.post(f"/conversations/{conversation_id}/messages", data=first_tab, headers=PARTIAL)

        assert response.status_code == 200
        assert "replied while you were typing" not in response.get_data(as_text=True)
        assert [m.body for m in messages_by(app, conversation_id, agent)] == ["Uno", "Dos"]
        assert events(app, conversation_id, AuditKind.NEWER_REPLY_OVERRIDE) == []

    def test_a_customer_message_while_typing_does_not_trigger_the_warning(self, app, auth, agent):
        conversation_id = sandbox_conversation(app)
        form = composer(auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True), message="Claro")
        with app.app_context():
            factories.make_message(
                db.session.get(Conversation, conversation_id), body="¿Me ayudas?", occurred_at=utcnow()
            )
        response = auth.client.post(f"/conversations/{conversation_id}/messages", data=form, headers=PARTIAL)
        assert response.status_code == 200
        assert [m.body for m in messages_by(app, conversation_id, agent)] == ["Claro"]

    def test_a_fresh_composer_after_the_reply_does_not_warn(self, app, auth, agent, colleague):
        conversation_id = sandbox_conversation(app)
        other_agent_replies(colleague, conversation_id, "Ya lo estoy viendo yo")
        form = composer(auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True), message="Ok")
        response = auth.client.post(f"/conversations/{conversation_id}/messages", data=form)
        assert response.status_code == 303
        assert events(app, conversation_id, AuditKind.NEWER_REPLY_OVERRIDE) == []

    def test_newer_reply_and_closed_window_confirmed_one_after_the_other_send_once(self, app, auth, agent):
        conversation_id = sandbox_conversation(app, last_inbound_ago=timedelta(hours=30))
        url = f"/conversations/{conversation_id}/messages"
        form = composer(
            auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True),
            message="¿Sigues ahí?",
        )
        assistant_replies(app, conversation_id, "Mensaje automático de seguimiento")

        first = auth.client.post(url, data=form, headers=PARTIAL)
        assert first.status_code == 409
        assert "AI assistant replied while you were typing" in first.get_data(as_text=True)

        second = auth.client.post(
            url, data=composer(first.get_data(as_text=True), confirm_newer_reply="yes"), headers=PARTIAL
        )
        html = second.get_data(as_text=True)
        assert second.status_code == 409
        assert "Outside the 24-hour window." in html and "replied while you were typing" not in html
        carried = read_form(html)
        assert carried.fields.get("confirm_newer_reply") == "yes"  # the first confirmation is kept
        assert ("confirm_outside_window", "yes", "Send anyway") in carried.buttons
        assert messages_by(app, conversation_id, agent) == []

        final = composer(html, confirm_outside_window="yes", override_reason="Lo pidió el cliente")
        for _ in range(2):
            assert auth.client.post(url, data=final, headers=PARTIAL).status_code == 200

        [sent] = messages_by(app, conversation_id, agent)
        assert sent.body == "¿Sigues ahí?" and sent.window_override
        assert sent.outcome == Outcome.FAILED  # the sandbox applies WhatsApp's 24h rule
        assert len(events(app, conversation_id, AuditKind.WINDOW_OVERRIDE)) == 1
        assert len(events(app, conversation_id, AuditKind.NEWER_REPLY_OVERRIDE)) == 1


# ---------------------------------------------------------------- a failed send and its retry


class TestRetry:
    def test_a_send_refused_for_the_window_offers_a_template_and_the_kept_text_sends_once_later(self, app, auth, agent):
        conversation_id = sandbox_conversation(app, last_inbound_ago=timedelta(hours=30))
        url = f"/conversations/{conversation_id}/messages"
        text = "Hola Camila, tu pedido ya salió"
        form = composer(
            auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True),
            message=text,
            confirm_outside_window="yes",
            override_reason="Seguimiento",
        )

        failed = auth.client.post(url, data=form, headers=PARTIAL)

        html = failed.get_data(as_text=True)
        assert failed.status_code == 200
        assert "Not sent" in html and "#131047" in html
        # WhatsApp refused it for the closed window: the way on is a template, not a retry that must fail.
        assert '<a href="#template-panel">send a template</a>' in html
        retry = read_form(html)
        assert (None, None, "Retry") not in retry.buttons
        assert retry.fields["message"] == text
        assert retry.fields["idempotency_key"] != form["idempotency_key"]
        [first] = messages_by(app, conversation_id, agent)
        assert first.outcome == Outcome.FAILED

        # The customer writes again (the assistant is already paused for them on Vambe's side), so the
        # window is open and the retry can go through.
        with app.app_context():
            contact = db.session.scalar(
                select(SandboxContact).where(
                    SandboxContact.phone == db.session.get(Conversation, conversation_id).phone[1:]
                )
            )
            contact.assistant_paused = True
            db.session.commit()
            customer_says("+" + contact.phone, "Sí, aquí estoy", now=utcnow())

        for _ in range(2):
            response = auth.client.post(url, data=dict(retry.fields), headers=PARTIAL)
            assert response.status_code == 200
            assert "Sent: Vambe accepted the message." in response.get_data(as_text=True)

        sent = messages_by(app, conversation_id, agent)
        assert [(m.body, m.outcome) for m in sent] == [(text, Outcome.FAILED), (text, Outcome.SENT)]
        assert sent[1].idempotency_key == retry.fields["idempotency_key"]
        with app.app_context():
            delivered = db.session.scalar(
                select(func.count(SandboxMessage.id)).where(SandboxMessage.sender == "api", SandboxMessage.body == text)
            )
        assert delivered == 1

    def test_a_failed_send_without_htmx_offers_the_template_path_too(self, app, auth, agent):
        conversation_id = sandbox_conversation(app, last_inbound_ago=timedelta(hours=30))
        form = composer(
            auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True),
            message="Texto que se conserva",
            confirm_outside_window="yes",
            override_reason="Seguimiento",
        )
        response = auth.client.post(f"/conversations/{conversation_id}/messages", data=form)
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        assert "send a template" in html
        after = read_form(html)
        assert (None, None, "Retry") not in after.buttons
        assert after.fields["message"] == "Texto que se conserva"

    def test_a_successful_send_offers_send_not_retry(self, app, auth, agent):
        conversation_id = sandbox_conversation(app)
        form = composer(auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True), message="Listo")
        response = auth.client.post(f"/conversations/{conversation_id}/messages", data=form, headers=PARTIAL)
        after = read_form(response.get_data(as_text=True))
        assert (None, None, "Send") in after.buttons and (None, None, "Retry") not in after.buttons
        assert after.fields["message"] == ""
