"""What the pages say and mark up: error pages, form errors, paging links, empty states, feedback after a change.

Plain test-client checks of the HTML (layout at 360 and 1440 px is checked in tests/browser)."""

import html as htmllib
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from app.clock import utcnow
from app.extensions import db
from app.models import Conversation, Role, User
from app.sandbox.state import SandboxContact
from tests import factories
from tests.conftest import TEST_PASSWORD, csrf_token_from

PARTIAL = {"HX-Request": "true", "HX-Request-Type": "partial"}
USERS = "/admin/users"


def text_of(response) -> str:
    return response.get_data(as_text=True)


def tag(html: str, pattern: str) -> str:
    """The first start tag matching ``pattern`` (a regex over the tag's text)."""
    found = re.search(r"<[a-z]+\b[^>]*" + pattern + r"[^>]*>", html)
    assert found, f"no tag matches {pattern!r}"
    return found.group(0)


def post_form(auth, page: str, action: str, headers=None, **data: str):
    token = csrf_token_from(text_of(auth.client.get(page)))
    return auth.client.post(action, data={"csrf_token": token, **data}, headers=headers or {})


# --- error pages -----------------------------------------------------------------------------------------


def test_an_unknown_page_says_so_plainly(client):
    response = client.get("/no/such/page")
    html = text_of(response)
    assert response.status_code == 404
    assert "404 · Not found" in html and "There is no such page." in html
    assert "spelling" not in html and "requested URL" not in html


def test_a_missing_conversation_names_it(auth):
    auth.login_as(Role.AGENT)
    html = text_of(auth.client.get("/conversations/999999"))
    assert "There is no conversation #999999." in html
    assert "spelling" not in html


def test_a_403_says_which_role_is_missing_not_werkzeug_text(auth):
    auth.login_as(Role.AGENT)
    response = auth.client.get("/review/")
    html = text_of(response)
    assert response.status_code == 403
    assert "Your role (agent) cannot open this page; Review needs a team lead." in html
    assert "read-protected" not in html and "readable by the server" not in html

    admin_page = text_of(auth.client.get(USERS))
    assert "Your role (agent) cannot open this page; Admin needs an admin." in admin_page


def test_a_405_has_its_own_title_and_keeps_allow(client):
    response = client.get("/logout")
    html = text_of(response)
    assert response.status_code == 405
    assert "405 · Method not allowed" in html
    assert "Not allowed" not in html.replace("Method not allowed", "")
    assert "The method is not allowed" not in html  # Werkzeug's own description
    assert "POST" in response.headers["Allow"]


# --- signing in ------------------------------------------------------------------------------------------


def test_the_page_asked_for_before_signing_in_is_reached_without_a_stray_question_mark(app, client):
    with app.app_context():
        conversation_id = factories.make_conversation(name="Asked For").id
        factories.make_user(email="next@example.com", password=TEST_PASSWORD)
    to_login = client.get(f"/conversations/{conversation_id}")
    login_page = to_login.headers["Location"]

    html = text_of(client.get(login_page))
    assert re.search(rf'name="next" type="hidden" value="/conversations/{conversation_id}"', html)
    token = csrf_token_from(html)
    next_value = parse_qs(urlsplit(login_page).query)["next"][0]
    response = client.post(
        "/login", data={"email": "next@example.com", "password": TEST_PASSWORD, "csrf_token": token, "next": next_value}
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/conversations/{conversation_id}")


def test_after_a_wrong_password_the_cursor_is_in_the_password_field(app, client):
    with app.app_context():
        factories.make_user(email="typo@example.com", password=TEST_PASSWORD)
    token = csrf_token_from(text_of(client.get("/login")))
    html = text_of(client.post("/login", data={"email": "typo@example.com", "password": "nope", "csrf_token": token}))
    password, email = tag(html, 'name="password"'), tag(html, 'name="email"')
    assert "autofocus" in password and "autofocus" not in email
    assert 'aria-describedby="password-error"' in email  # the refusal concerns the email too
    assert 'id="password-error"' in html


def test_pages_name_no_favicon_file_to_fetch(client):
    html = text_of(client.get("/login"))
    assert '<link rel="icon" href="data:,">' in html


# --- Admin › Users -----------------------------------------------------------------------------------------


@pytest.fixture
def admin(auth):
    return auth.login_as(Role.ADMIN, email="boss@example.com")


def users_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(User.id)))


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        pytest.param({"password": "short"}, "password", "at least 8 characters", id="short-password"),
        pytest.param({"password": ""}, "password", "Enter an initial password.", id="no-password"),
        pytest.param({"email": "not-an-email"}, "email", "is not an email address", id="bad-email"),
        pytest.param({"name": "n" * 121}, "name", "120 characters", id="long-name"),
        pytest.param({"role": "superuser"}, "role", "Not a valid choice", id="unknown-role"),
    ],
)
def test_a_refused_new_user_shows_each_error_on_its_own_field_and_a_summary_at_the_top(
    app, auth, admin, data, field, message
):
    before = users_count(app)
    fields = {"email": "fresh@example.com", "name": "Fresh", "role": "agent", "password": "long enough", **data}

    response = post_form(auth, USERS, USERS, **fields)

    html = text_of(response)
    assert response.status_code == 422
    error = re.search(rf'<small class="field-error" id="{field}-error">([^<]*)</small>', html)
    assert error and message in htmllib.unescape(error.group(1))
    for other in {"email", "name", "role", "password"} - {field}:
        assert f'id="{other}-error"' not in html
    control = tag(html, f'id="{field}"')
    assert 'aria-invalid="true"' in control and f'aria-describedby="{field}-error"' in control
    summary = re.search(r'<div class="alert alert-error error-summary" role="alert".*?</div>', html, re.S)
    assert summary and message in htmllib.unescape(summary.group(0))
    assert html.index("error-summary") < html.index("<table")  # at the top, not under the table
    assert re.search(r'<a href="/admin/users" aria-current="page">Users</a>', html)
    assert users_count(app) == before


def test_a_duplicate_email_is_shown_under_the_email(app, auth, admin):
    response = post_form(auth, USERS, USERS, email="BOSS@example.com", role="agent", password="long enough")
    html = text_of(response)
    assert response.status_code == 422
    assert re.search(r'id="email-error">[^<]*already exists', html)
    assert 'id="password-error"' not in html


def test_a_row_change_names_the_user_and_a_deactivated_row_looks_different(app, auth, admin):
    with app.app_context():
        target = factories.make_user(email="ana@example.com", name="Ana Agent").id

    deactivated = auth.client.get(post_form(auth, USERS, f"/admin/users/{target}/active", active="no").location)
    html = text_of(deactivated)
    assert "Ana Agent is now deactivated." in html
    row = re.search(r"<tr[^>]*>\s*<td[^>]*>Ana Agent</td>", html).group(0)
    assert 'class="user-inactive"' in row

    promoted = auth.client.get(post_form(auth, USERS, f"/admin/users/{target}/role", role="lead").location)
    assert "Ana Agent is now a lead." in text_of(promoted)
    reset = auth.client.get(
        post_form(auth, USERS, f"/admin/users/{target}/password", password="a new password").location
    )
    assert "Ana Agent&#39;s password has been reset." in text_of(reset)


def test_the_audit_kind_filter_offers_the_labels_the_table_shows(auth, admin):
    html = text_of(auth.client.get("/admin/audit"))
    assert '<option value="window_override">Sent outside the 24h window</option>' in html
    assert ">window_override<" not in html


# --- quick replies ---------------------------------------------------------------------------------------------


def test_quick_reply_actions_sit_in_a_box_inside_the_cell_and_delete_asks_first(app, auth):
    auth.login_as(Role.LEAD)
    post_form(auth, "/quick-replies", "/quick-replies", shortcut="hola", body="Hola, ¿en qué te ayudo?")
    html = text_of(auth.client.get("/quick-replies"))
    assert '<td class="row-actions"' not in html
    assert re.search(r'<td>\s*<div class="row-actions">', html)
    delete_form = tag(html, r'action="/quick-replies/\d+/delete"')
    assert 'hx-confirm="Delete the quick reply /hola?"' in delete_form
    assert 'method="post"' in delete_form  # and without JavaScript it still posts


# --- the inbox: paging back, empty results -------------------------------------------------------------------


def test_an_older_page_links_back_to_the_newest_keeping_the_search(app, auth):
    auth.login_as(Role.AGENT)
    with app.app_context():
        now = utcnow()
        for i in range(1, 28):
            factories.make_conversation(name=f"Paged {i:02d}", last_inbound_at=now - timedelta(minutes=i))

    first = text_of(auth.client.get("/?q=paged&scope=all"))
    assert "Newest conversations" not in first
    older = re.search(r'<a href="([^"]+)">Older conversations →</a>', first).group(1)
    second = text_of(auth.client.get(htmllib.unescape(older)))
    back = re.search(r'<a href="([^"]+)">← Newest conversations</a>', second)
    assert back, "page 2 has no way back"
    query = parse_qs(urlsplit(htmllib.unescape(back.group(1))).query)
    assert query == {"q": ["paged"], "scope": ["all"]}


def test_an_empty_search_echoes_the_term_and_points_at_the_resolved_conversations(auth):
    auth.login_as(Role.AGENT)
    html = htmllib.unescape(text_of(auth.client.get("/?q=nadie+se+llama+asi", headers=PARTIAL)))
    assert "No conversations match." in html
    assert "No open conversation has “nadie se llama asi”" in html
    assert "Resolved conversations are hidden while Status is Open" in html
    resolved = re.search(r'<a href="([^"]+)">look among the resolved ones</a>', html).group(1)
    assert parse_qs(urlsplit(resolved).query) == {"q": ["nadie se llama asi"], "status": ["resolved"]}

    resolved_html = htmllib.unescape(text_of(auth.client.get("/?q=nadie&status=resolved", headers=PARTIAL)))
    assert "No conversation has “nadie”" in resolved_html and "hidden while Status is Open" not in resolved_html


# --- Simulate customer ----------------------------------------------------------------------------------------


def sandbox_token(client) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', text_of(client.get("/sandbox/"))).group(1)


def test_new_customer_fields_with_an_existing_customer_chosen_are_refused_not_ignored(app, auth):
    auth.login_as(Role.AGENT)
    with app.app_context():
        conversation = factories.make_sandbox_conversation(name="Camila Soto")
        contact_id = conversation.vambe_contact_id
        contacts_before = db.session.scalar(select(func.count(SandboxContact.id)))
        messages_before = db.session.scalar(select(func.count()).select_from(Conversation))

    response = auth.client.post(
        "/sandbox/customer-messages",
        data={
            "csrf_token": sandbox_token(auth.client),
            "contact": contact_id,
            "new_phone": "+56 9 5555 0199",
            "message": "Hola",
        },
        headers=PARTIAL,
    )

    html = htmllib.unescape(text_of(response))
    assert response.status_code == 422
    assert "You filled in a new customer's details but chose Camila Soto." in html
    assert 'class="new-customer keep-open"' in html  # the typed phone stays in view, to clear or use
    assert "Delivered to Handoff." not in html
    with app.app_context():
        assert db.session.scalar(select(func.count(SandboxContact.id))) == contacts_before
        assert db.session.scalar(select(func.count()).select_from(Conversation)) == messages_before


def test_after_a_send_the_message_box_has_the_focus(app, auth):
    auth.login_as(Role.AGENT)
    with app.app_context():
        contact_id = factories.make_sandbox_conversation(name="Camila Soto").vambe_contact_id

    html = text_of(
        auth.client.post(
            "/sandbox/customer-messages",
            data={"csrf_token": sandbox_token(auth.client), "contact": contact_id, "message": "Hola"},
            headers=PARTIAL,
        )
    )
    assert "Delivered to Handoff." in html
    assert "autofocus" in tag(html, 'name="message"')
