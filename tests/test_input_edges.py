"""Values no form or link of the app produces get a clear 4xx at the edge, never a 500 from the database."""

import io
import json

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEvent, Conversation, Message, QuickReply, Role
from tests import factories
from tests.conftest import csrf_token_from

HUGE = str(2**63)
UNICODE_DIGITS = "١٢"  # Arabic-Indic 12: int() takes it, the database does not
SUPERSCRIPT_TWO = "²"  # str.isdigit() says yes, int() raises


@pytest.fixture
def conversation_id(app):
    with app.app_context():
        return factories.make_conversation().id


class TestRecordIdsInPaths:
    @pytest.mark.parametrize("raw", [HUGE, str(2**31), UNICODE_DIGITS, "0", "-1", "007x", "1e3"])
    def test_an_id_no_record_can_have_is_404(self, auth, raw):
        auth.login_as(Role.ADMIN)
        for path in (f"/conversations/{raw}", f"/conversations/{raw}/live", f"/review/conversations/{raw}"):
            assert auth.client.get(path).status_code == 404, path
        token = auth.csrf_token()
        for path in (f"/conversations/{raw}/messages", f"/admin/users/{raw}/role", f"/quick-replies/{raw}/delete"):
            assert auth.client.post(path, data={"csrf_token": token}).status_code == 404, path

    def test_the_largest_id_a_column_holds_is_an_ordinary_404(self, auth):
        auth.login_as(Role.AGENT)
        assert auth.client.get(f"/conversations/{2**31 - 1}").status_code == 404


class TestRecordIdsInQueriesAndForms:
    @pytest.mark.parametrize("raw", [HUGE, UNICODE_DIGITS, SUPERSCRIPT_TWO, "-5", "abc"])
    def test_a_bad_id_in_a_query_is_400(self, auth, raw):
        auth.login_as(Role.ADMIN)
        for path in (
            f"/admin/audit?actor={raw}",
            f"/admin/audit?before={raw}",
            f"/review/?q=hola&before={raw}",
            f"/review/?agent={raw}&q=x",
        ):
            response = auth.client.get(path)
            assert response.status_code == 400, path
            assert "record number" in response.get_data(as_text=True)

    @pytest.mark.parametrize("raw", [HUGE, UNICODE_DIGITS, SUPERSCRIPT_TWO])
    def test_a_bad_quote_or_last_seen_id_in_the_composer_is_400_and_sends_nothing(
        self, app, auth, conversation_id, raw
    ):
        auth.login_as(Role.AGENT)
        token = auth.csrf_token(f"/conversations/{conversation_id}")
        for field in ("reply_to", "seen_through", "business_number"):
            response = auth.client.post(
                f"/conversations/{conversation_id}/messages",
                data={"csrf_token": token, "message": "Hola", "idempotency_key": f"k-{field}", field: raw},
            )
            assert response.status_code == 400, field
        with app.app_context():
            assert db.session.scalar(select(func.count(Message.id))) == 0

    @pytest.mark.parametrize("raw", [HUGE, UNICODE_DIGITS, SUPERSCRIPT_TWO, "somebody"])
    def test_an_assignee_that_cannot_be_a_user_is_422(self, auth, conversation_id, raw):
        auth.login_as(Role.AGENT)
        token = auth.csrf_token(f"/conversations/{conversation_id}")
        response = auth.client.post(
            f"/conversations/{conversation_id}/assignee", data={"csrf_token": token, "assignee": raw}
        )
        assert response.status_code == 422


class TestDays:
    @pytest.mark.parametrize(
        "raw", ["0001-01-01", "9999-12-31", "1999-12-31", "2101-01-01", "2024-02-30", "٢٠٢٤-01-01"]
    )
    def test_a_day_outside_2000_to_2100_or_not_a_day_is_400(self, auth, raw):
        auth.login_as(Role.ADMIN)
        for path in (f"/admin/audit?since={raw}", f"/admin/audit?until={raw}", f"/review/?since={raw}"):
            response = auth.client.get(path)
            assert response.status_code == 400, path
            assert "YYYY-MM-DD" in response.get_data(as_text=True)

    def test_days_at_the_bounds_are_taken(self, auth):
        auth.login_as(Role.ADMIN)
        assert auth.client.get("/admin/audit?since=2000-01-01&until=2100-12-31").status_code == 200
        assert auth.client.get("/review/?since=2000-01-01&until=2100-12-31").status_code == 200

    def test_a_forged_inbox_cursor_is_400(self, auth):
        auth.login_as(Role.AGENT)
        deep = "[" * 100_000
        assert auth.client.get("/?after=" + "A" * 5000).status_code == 400
        assert auth.client.get("/?after=" + deep).status_code == 400


class TestUnstorableCharacters:
    @pytest.mark.parametrize("text", ["a\x00b", "\x00"])
    def test_nul_in_any_query_is_400(self, auth, text):
        auth.login_as(Role.ADMIN)
        for path in ("/", "/review/", "/admin/audit", "/login"):
            assert auth.client.get(path, query_string={"q": text}).status_code == 400, path
            assert auth.client.get(path, query_string={text: "x"}).status_code == 400, path

    def test_nul_in_sign_in_is_400_and_signs_no_one_in(self, app, client):
        with app.app_context():
            factories.make_user(email="ana@example.com")
        token = csrf_token_from(client.get("/login").get_data(as_text=True))
        response = client.post("/login", data={"csrf_token": token, "email": "ana@example.com\x00", "password": "x"})
        assert response.status_code == 400

    def test_nul_in_the_composer_is_400_and_nothing_is_sent(self, app, auth, conversation_id):
        auth.login_as(Role.AGENT)
        token = auth.csrf_token(f"/conversations/{conversation_id}")
        response = auth.client.post(
            f"/conversations/{conversation_id}/messages",
            data={"csrf_token": token, "message": "Hola\x00", "idempotency_key": "k-nul"},
        )
        assert response.status_code == 400
        assert "cannot be stored" in response.get_data(as_text=True)
        with app.app_context():
            assert db.session.scalar(select(func.count(Message.id))) == 0

    def test_nul_in_a_quick_reply_or_new_user_is_400_and_stores_nothing(self, app, auth):
        auth.login_as(Role.ADMIN)
        token = auth.csrf_token("/quick-replies")
        quick = auth.client.post("/quick-replies", data={"csrf_token": token, "shortcut": "h\x00", "body": "Hola"})
        user = auth.client.post(
            "/admin/users",
            data={"csrf_token": token, "email": "x@example.com", "name": "X\x00", "password": "long-password-1"},
        )
        assert (quick.status_code, user.status_code) == (400, 400)
        with app.app_context():
            assert db.session.scalar(select(func.count(QuickReply.id))) == 0


class TestBodiesNoFormSends:
    @pytest.mark.parametrize(
        "payload",
        [
            {"message": ["a", "b"]},
            {"message": {"x": 1}},
            {"message": True},
            {"message": "\ud800"},
            {"message": "a\x00"},
        ],
    )
    def test_a_json_body_on_a_form_route_is_415(self, app, auth, conversation_id, payload):
        auth.login_as(Role.AGENT)
        token = auth.csrf_token(f"/conversations/{conversation_id}")
        body = json.dumps({**payload, "csrf_token": token, "idempotency_key": "k-json"})
        response = auth.client.post(
            f"/conversations/{conversation_id}/messages",
            data=body,
            headers={"Content-Type": "application/json", "X-CSRFToken": token},
        )
        assert response.status_code == 415
        with app.app_context():
            assert db.session.scalar(select(func.count(Message.id))) == 0

    def test_a_file_where_text_belongs_is_400(self, app, auth, conversation_id):
        auth.login_as(Role.AGENT)
        token = auth.csrf_token(f"/conversations/{conversation_id}")
        response = auth.client.post(
            f"/conversations/{conversation_id}/messages",
            data={"csrf_token": token, "idempotency_key": "k-file", "message": (io.BytesIO(b"Hola"), "m.txt")},
            content_type="multipart/form-data",
        )
        assert response.status_code == 400
        with app.app_context():
            assert db.session.scalar(select(func.count(Message.id))) == 0

    def test_a_multipart_form_without_files_still_works(self, auth):
        auth.login_as(Role.ADMIN)
        token = auth.csrf_token("/quick-replies")
        response = auth.client.post(
            "/quick-replies",
            data={"csrf_token": token, "shortcut": "hola", "body": "Hola, ¿cómo te ayudo?"},
            content_type="multipart/form-data",
        )
        assert response.status_code in (200, 303)


class TestTheReviewTimelineIsARecord:
    def test_it_offers_no_reply_links_and_the_inbox_still_does(self, app, auth):
        auth.login_as(Role.LEAD)
        with app.app_context():
            conversation = factories.make_conversation()
            factories.make_message(conversation, body="¿Me ayudan?")
            conversation_id = conversation.id
        timeline = auth.client.get(f"/review/conversations/{conversation_id}").get_data(as_text=True)
        inbox = auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
        assert "¿Me ayudan?" in timeline and "reply-link" not in timeline and "hx-get" not in timeline.split("<main")[1]
        assert "reply-link" in inbox
        assert f'href="/conversations/{conversation_id}"' in timeline


class TestSeedReset:
    def test_reset_works_after_a_customer_was_simulated_and_a_conversation_read(self, app, auth):
        runner = app.test_cli_runner()
        assert runner.invoke(args=["sandbox", "seed"]).exit_code == 0
        auth.login_as(Role.AGENT)
        with app.app_context():
            conversation_id = db.session.scalar(select(Conversation.id).limit(1))
            user_events = db.session.scalar(
                select(func.count(AuditEvent.id)).where(AuditEvent.conversation_id.is_(None))
            )
        auth.client.get(f"/conversations/{conversation_id}")  # a read marker
        page = auth.client.get("/sandbox/").get_data(as_text=True)
        token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
        simulated = auth.client.post(
            "/sandbox/customer-messages",
            data={
                "csrf_token": token,
                "contact": "new",
                "new_name": "Lucía",
                "new_phone": "+56 9 1234 5678",
                "message": "Hola",
            },
        )
        assert simulated.status_code in (200, 303), simulated.get_data(as_text=True)

        result = runner.invoke(args=["sandbox", "seed", "--reset"])

        assert result.exit_code == 0, result.output
        with app.app_context():
            assert db.session.scalar(select(func.count(Conversation.id))) > 0
            kept = db.session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.conversation_id.is_(None)))
            assert kept >= user_events  # sign-ins and user changes survive a demo reset
