"""Administration over HTTP as an admin: users (create, role, deactivate, reset a password, the
last-admin rule), the settings page (sandbox and a real key against a loopback fake of Vambe),
webhook deliveries and their replay; every change is audited exactly once."""

import json
import re
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from app.clock import utcnow
from app.extensions import db
from app.models import AuditEvent, AuditKind, DeliveryState, Message, Role, User, WebhookDelivery
from app.sandbox.state import SandboxChannel
from tests import factories
from tests.conftest import TEST_PASSWORD, Auth, build_app
from tests.fake_vambe import RecordedRequest, Reply, running_fake_vambe

USERS = "/admin/users"
SETTINGS = "/admin/settings"
CHANNELS_PATH = "/api/public/channels/whatsapp"
LIVE_KEY = "vk_live_abcdefghijklmnop1234"
NEW_PASSWORD = "a brand new passphrase"
ACCOUNT_EVENTS = (
    AuditKind.USER_CREATED,
    AuditKind.USER_DEACTIVATED,
    AuditKind.USER_REACTIVATED,
    AuditKind.ROLE_CHANGED,
    AuditKind.PASSWORD_RESET,
    AuditKind.WEBHOOKS_REPLAYED,
)


# --- helpers ---------------------------------------------------------------------------------------


@pytest.fixture
def admin(auth):
    """The signed-in admin's id."""
    return auth.login_as(Role.ADMIN, email="boss@example.com")


def post(auth: Auth, path: str, **data: str):
    token = auth.csrf_token(USERS)
    return auth.client.post(path, data={"csrf_token": token, **data})


def make_user(app, role: Role = Role.AGENT, email: str | None = None) -> int:
    with app.app_context():
        return factories.make_user(email=email or f"person-{uuid.uuid4().hex[:6]}@example.com", role=role).id


def user_state(app, user_id: int) -> tuple[str, bool]:
    with app.app_context():
        user = db.session.get(User, user_id)
        return user.role, user.active


def last_event_id(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.max(AuditEvent.id))) or 0


def admin_events_since(app, event_id: int) -> list[dict]:
    """Account and webhook events (not sign-ins) written after ``event_id``, oldest first."""
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.id > event_id, AuditEvent.kind.in_([str(kind) for kind in ACCOUNT_EVENTS]))
            .order_by(AuditEvent.id)
        ).all()
        return [{"kind": row.kind, "actor_id": row.actor_id, "details": dict(row.details)} for row in rows]


def assert_one_event(app, since: int, kind: AuditKind, actor_id: int, target_id: int) -> dict:
    events = admin_events_since(app, since)
    assert [event["kind"] for event in events] == [kind], events
    assert events[0]["actor_id"] == actor_id
    assert events[0]["details"]["user_id"] == target_id
    return events[0]


def signs_in(app, email: str, password: str = TEST_PASSWORD) -> bool:
    """Whether a fresh browser can sign in as ``email`` with ``password``."""
    response = Auth(app, app.test_client()).login(email, password)
    return response.status_code == 302


def text_of(response) -> str:
    return response.get_data(as_text=True)


# --- creating users --------------------------------------------------------------------------------


def test_an_admin_creates_a_user_who_is_listed_and_can_sign_in(app, auth, admin):
    before = last_event_id(app)
    response = post(
        auth, USERS, email="  Nueva.Agente@Example.com ", name="Nueva Agente", role="lead", password="s3guro-y-largo"
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith(USERS)

    page = text_of(auth.client.get(USERS))
    assert "Created nueva.agente@example.com (lead)." in page
    assert "nueva.agente@example.com" in page and "Nueva Agente" in page
    with app.app_context():
        created = db.session.scalar(select(User).where(User.email == "nueva.agente@example.com"))
        assert (created.role, created.active, created.name) == ("lead", True, "Nueva Agente")
        created_id = created.id
    event = assert_one_event(app, before, AuditKind.USER_CREATED, admin, created_id)
    assert event["details"]["email"] == "nueva.agente@example.com"
    assert "s3guro-y-largo" not in json.dumps(event["details"])
    assert signs_in(app, "nueva.agente@example.com", "s3guro-y-largo")
    assert not signs_in(app, "nueva.agente@example.com", "another-password")


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        pytest.param("TAKEN@example.com", "long enough password", "already exists", id="duplicate-email"),
        pytest.param("fresh@example.com", "short", "at least 8 characters", id="short-password"),
    ],
)
def test_a_refused_new_user_gets_422_with_the_reason_and_nothing_is_stored(app, auth, admin, email, password, message):
    make_user(app, email="taken@example.com")
    with app.app_context():
        users_before = db.session.scalar(select(func.count(User.id)))
    before = last_event_id(app)

    response = post(auth, USERS, email=email, name="Someone", role="agent", password=password)

    assert response.status_code == 422
    assert message in text_of(response)
    assert 'name="email"' in text_of(response)  # the form is shown again, to correct
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == users_before
    assert admin_events_since(app, before) == []
    assert not signs_in(app, email, password)


# --- roles -----------------------------------------------------------------------------------------


def test_an_admin_changes_a_role(app, auth, admin):
    target = make_user(app, Role.AGENT)
    before = last_event_id(app)

    response = post(auth, f"/admin/users/{target}/role", role="lead")

    assert response.status_code == 303
    assert "Saved." in text_of(auth.client.get(USERS))
    assert user_state(app, target) == ("lead", True)
    event = assert_one_event(app, before, AuditKind.ROLE_CHANGED, admin, target)
    assert (event["details"]["from"], event["details"]["to"]) == ("agent", "lead")


def test_an_unknown_role_is_refused(app, auth, admin):
    target = make_user(app, Role.AGENT)
    before = last_event_id(app)

    response = post(auth, f"/admin/users/{target}/role", role="superuser")

    assert response.status_code == 422
    assert user_state(app, target) == ("agent", True)
    assert admin_events_since(app, before) == []


# --- deactivating and reactivating -----------------------------------------------------------------


def test_deactivating_a_user_ends_their_session_and_reactivating_lets_them_back(app, auth, admin):
    email = "leaving@example.com"
    target = make_user(app, Role.AGENT, email=email)
    their_browser = Auth(app, app.test_client())
    assert their_browser.login(email).status_code == 302
    assert their_browser.client.get("/").status_code == 200

    before = last_event_id(app)
    response = post(auth, f"/admin/users/{target}/active", active="no")

    assert response.status_code == 303
    assert user_state(app, target) == ("agent", False)
    assert_one_event(app, before, AuditKind.USER_DEACTIVATED, admin, target)
    kicked_out = their_browser.client.get("/")
    assert kicked_out.status_code == 302 and "/login" in kicked_out.headers["Location"]
    assert not signs_in(app, email)
    page = text_of(auth.client.get(USERS))
    assert "Deactivated" in page and "Reactivate" in page

    before = last_event_id(app)
    response = post(auth, f"/admin/users/{target}/active", active="yes")

    assert response.status_code == 303
    assert user_state(app, target) == ("agent", True)
    assert_one_event(app, before, AuditKind.USER_REACTIVATED, admin, target)
    assert signs_in(app, email)


def test_deactivating_an_already_deactivated_user_writes_no_second_event(app, auth, admin):
    target = make_user(app, Role.AGENT)
    post(auth, f"/admin/users/{target}/active", active="no")
    before = last_event_id(app)

    response = post(auth, f"/admin/users/{target}/active", active="no")

    assert response.status_code == 303
    assert user_state(app, target) == ("agent", False)
    assert admin_events_since(app, before) == []


# --- passwords -------------------------------------------------------------------------------------


def test_resetting_a_password_replaces_the_old_one(app, auth, admin):
    email = "forgetful@example.com"
    target = make_user(app, Role.LEAD, email=email)
    before = last_event_id(app)

    response = post(auth, f"/admin/users/{target}/password", password=NEW_PASSWORD)

    assert response.status_code == 303
    assert "Saved." in text_of(auth.client.get(USERS))
    event = assert_one_event(app, before, AuditKind.PASSWORD_RESET, admin, target)
    assert NEW_PASSWORD not in json.dumps(event["details"])
    assert not signs_in(app, email, TEST_PASSWORD)
    assert signs_in(app, email, NEW_PASSWORD)


def test_resetting_a_password_signs_out_the_sessions_made_with_the_old_one(app, auth, admin):
    email = "stolen@example.com"
    target = make_user(app, Role.AGENT, email=email)
    their_browser = Auth(app, app.test_client())  # or whoever holds a copy of its session cookie
    assert their_browser.login(email).status_code == 302
    assert their_browser.client.get("/").status_code == 200

    response = post(auth, f"/admin/users/{target}/password", password=NEW_PASSWORD)

    assert response.status_code == 303
    signed_out = their_browser.client.get("/")
    assert signed_out.status_code == 302 and "/login" in signed_out.headers["Location"]
    assert auth.client.get(USERS).status_code == 200  # the admin's own session is not affected
    assert their_browser.login(email, NEW_PASSWORD).status_code == 302
    assert their_browser.client.get("/").status_code == 200


def test_an_admin_who_resets_their_own_password_stays_signed_in_here_only(app, auth, admin):
    other_browser = Auth(app, app.test_client())
    assert other_browser.login("boss@example.com").status_code == 302

    response = post(auth, f"/admin/users/{admin}/password", password=NEW_PASSWORD)

    assert response.status_code == 303
    assert auth.client.get(USERS).status_code == 200
    elsewhere = other_browser.client.get(USERS)
    assert elsewhere.status_code == 302 and "/login" in elsewhere.headers["Location"]


def test_a_too_short_new_password_is_refused_and_the_old_one_still_works(app, auth, admin):
    email = "keeper@example.com"
    target = make_user(app, Role.AGENT, email=email)
    before = last_event_id(app)

    response = post(auth, f"/admin/users/{target}/password", password="short")

    assert response.status_code == 303
    assert "at least 8 characters" in text_of(auth.client.get(USERS))
    assert admin_events_since(app, before) == []
    assert signs_in(app, email, TEST_PASSWORD)
    assert not signs_in(app, email, "short")


# --- the last active admin -------------------------------------------------------------------------

LAST_ADMIN_CHANGES = [
    pytest.param({"action": "active", "field": "active", "value": "no"}, id="deactivate"),
    pytest.param({"action": "role", "field": "role", "value": "lead"}, id="demote-to-lead"),
    pytest.param({"action": "role", "field": "role", "value": "agent"}, id="demote-to-agent"),
]


def change(auth: Auth, user_id: int, how: dict):
    return post(auth, f"/admin/users/{user_id}/{how['action']}", **{how["field"]: how["value"]})


@pytest.mark.parametrize("how", LAST_ADMIN_CHANGES)
def test_the_last_active_admin_can_be_neither_deactivated_nor_demoted(app, auth, admin, how):
    before = last_event_id(app)

    response = change(auth, admin, how)

    assert response.status_code == 303
    page = auth.client.get(USERS)
    assert page.status_code == 200  # still an admin, still signed in
    assert "This is the last active admin" in text_of(page)
    assert user_state(app, admin) == ("admin", True)
    assert admin_events_since(app, before) == []


@pytest.mark.parametrize("how", LAST_ADMIN_CHANGES)
def test_a_deactivated_admin_does_not_count_as_the_remaining_admin(app, auth, admin, how):
    other = make_user(app, Role.ADMIN)
    post(auth, f"/admin/users/{other}/active", active="no")
    assert user_state(app, other) == ("admin", False)
    before = last_event_id(app)

    change(auth, admin, how)

    assert "This is the last active admin" in text_of(auth.client.get(USERS))
    assert user_state(app, admin) == ("admin", True)
    assert admin_events_since(app, before) == []


@pytest.mark.parametrize("how", LAST_ADMIN_CHANGES)
def test_the_change_is_allowed_once_another_active_admin_exists(app, auth, admin, how):
    successor_email = "successor@example.com"
    make_user(app, Role.ADMIN, email=successor_email)
    before = last_event_id(app)

    response = change(auth, admin, how)

    assert response.status_code == 303
    if how["action"] == "active":
        assert user_state(app, admin) == ("admin", False)
        assert_one_event(app, before, AuditKind.USER_DEACTIVATED, admin, admin)
        assert auth.client.get(USERS).status_code == 302  # the session of a deactivated user ends
    else:
        assert user_state(app, admin) == (how["value"], True)
        assert_one_event(app, before, AuditKind.ROLE_CHANGED, admin, admin)
        assert auth.client.get(USERS).status_code == 403  # no longer an admin
    # The remaining admin is now the last one, and is protected in turn.
    successor = Auth(app, app.test_client())
    assert successor.login(successor_email).status_code == 302
    with app.app_context():
        successor_id = db.session.scalar(select(User.id).where(User.email == successor_email))
    before = last_event_id(app)
    change(successor, successor_id, how)
    assert "This is the last active admin" in text_of(successor.client.get(USERS))
    assert user_state(app, successor_id) == ("admin", True)
    assert admin_events_since(app, before) == []


# --- settings: the sandbox -------------------------------------------------------------------------


def test_settings_in_sandbox_mode_show_the_mode_and_a_live_check_listing_the_sandbox_numbers(app, auth, admin):
    with app.app_context():
        factories.make_sandbox_channels((1951, "56211111111", "Ventas"))
        # A number the sandbox ("Vambe") has but Handoff has not stored yet: only a live check knows it.
        db.session.add(SandboxChannel(id=1952, phone_number="56233333333", name="Soporte"))
        db.session.commit()

    page = text_of(auth.client.get(SETTINGS))

    assert "Sandbox" in page
    assert "Connected: Vambe lists 2 WhatsApp number(s)." in page
    assert "alert-ok" in page
    assert "56211111111" in page
    assert "56233333333" in page, "the live check's numbers are not listed on the page"


def test_settings_explain_the_webhook_url_and_show_when_the_last_delivery_arrived(app, auth, admin):
    page = text_of(auth.client.get(SETTINGS))
    assert "http://localhost/webhooks/vambe" in page
    assert "message.received" in page and "message.sent" in page
    assert "VAMBE_WEBHOOK_SECRET" in page
    assert re.search(r"Last webhook received</dt><dd>never</dd>", page)

    with app.app_context():
        for received_at in (datetime(2024, 3, 5, 14, 7, tzinfo=UTC), datetime(2024, 3, 4, 9, 0, tzinfo=UTC)):
            db.session.add(delivery(received_at=received_at, state=DeliveryState.PROCESSED))
        db.session.commit()

    page = text_of(auth.client.get(SETTINGS))
    last = re.search(r"Last webhook received</dt><dd>(.*?)</dd>", page).group(1)
    assert 'datetime="2024-03-05T14:07:00+00:00"' in last and "05 Mar 2024, 14:07" in last

    auth.client.set_cookie("tz", "America%2FSantiago")
    page = text_of(auth.client.get(SETTINGS))
    last = re.search(r"Last webhook received</dt><dd>(.*?)</dd>", page).group(1)
    assert "05 Mar 2024, 11:07" in last  # UTC-3 in March (Chilean summer time)


def delivery(*, received_at: datetime | None = None, state: str = DeliveryState.FAILED, body: str = "{}", **fields):
    return WebhookDelivery(
        received_at=received_at or utcnow(),
        authenticated_by="signature",
        headers={"content-type": "application/json"},
        body=body,
        state=state,
        **fields,
    )


def replay_buttons(page: str) -> set[int]:
    return {int(number) for number in re.findall(r'aria-label="Replay delivery (\d+)"', page)}


def test_the_deliveries_table_lists_deliveries_and_filters_the_failed_ones(app, auth, admin):
    with app.app_context():
        processed = delivery(state=DeliveryState.PROCESSED, event="message.received")
        failed = delivery(state=DeliveryState.FAILED, error="unrecognised payload shape: no data object")
        db.session.add_all([processed, failed])
        db.session.commit()
        processed_id, failed_id = processed.id, failed.id

    page = text_of(auth.client.get(SETTINGS))
    assert replay_buttons(page) == {processed_id, failed_id}
    assert "unrecognised payload shape: no data object" in page
    assert 'href="/admin/settings?state=failed#deliveries"' in page
    assert "Failed only" in page

    failed_only = text_of(auth.client.get(SETTINGS, query_string={"state": "failed"}))
    assert replay_buttons(failed_only) == {failed_id}


# --- settings: a real key, against a loopback fake of Vambe ----------------------------------------


def channels_with_key(request: RecordedRequest):
    if (request.method, request.path) != ("GET", CHANNELS_PATH):
        return Reply(404, {"statusCode": 404, "message": "Cannot route", "error": "Not Found"})
    if request.headers.get("x-api-key") != LIVE_KEY:
        return Reply(401, {"statusCode": 401, "message": "Unauthorized"})
    return Reply(200, [{"id": 77, "phone_number": "56244444444", "name": "Soporte"}])


def unauthorized(request: RecordedRequest):
    return Reply(401, {"statusCode": 401, "message": "Unauthorized"})


def settings_page_against(database_url, responder) -> tuple[str, list[RecordedRequest]]:
    """The settings page of an installation with a real key whose Vambe is a loopback fake."""
    with running_fake_vambe(responder) as fake:
        app = build_app(database_url, VAMBE_API_KEY=LIVE_KEY, VAMBE_API_BASE_URL=fake.url)
        try:
            auth = Auth(app, app.test_client())
            auth.login_as(Role.ADMIN)
            response = auth.client.get(SETTINGS)
            assert response.status_code == 200
            return text_of(response), list(fake.requests)
        finally:
            app.extensions["vambe_client"].session.close()
            with app.app_context():
                db.engine.dispose()


def test_settings_with_a_real_key_check_it_live_and_show_it_masked(database_url):
    page, requests = settings_page_against(database_url, channels_with_key)

    assert [(r.method, r.path) for r in requests] == [("GET", CHANNELS_PATH)]
    assert requests[0].headers["x-api-key"] == LIVE_KEY
    assert "Real Vambe account" in page
    assert "Sandbox (the built-in fake" not in page
    assert "Connected: Vambe lists 1 WhatsApp number(s)." in page
    assert f"vk_l…34 ({len(LIVE_KEY)} characters)" in page
    assert LIVE_KEY not in page
    assert "abcdefghijklmnop" not in page


def test_settings_show_a_failed_check_when_vambe_refuses_the_key(database_url):
    page, requests = settings_page_against(database_url, unauthorized)

    assert len(requests) == 1
    assert "alert-error" in page
    assert "Vambe rejected Handoff&#39;s API key" in page or "Vambe rejected Handoff's API key" in page
    assert "Connected" not in page
    assert LIVE_KEY not in page
    assert "abcdefghijklmnop" not in page


# --- replaying a delivery --------------------------------------------------------------------------


def test_replay_processes_a_failed_delivery_once_and_is_audited(app, auth, admin):
    contact_id = str(uuid.uuid4())
    body = json.dumps(
        {
            "event": "message.received",
            "timestamp": "2024-09-30T10:00:00.000Z",
            "data": {
                "contact_id": contact_id,
                "message_id": "wamid-replay-1",
                "message_body": "¿Siguen abiertos?",
                "platform": "whatsapp",
                "direction": "inbound",
                "contact_name": "Carla",
            },
        }
    )
    with app.app_context():
        stored = delivery(state=DeliveryState.FAILED, body=body, error="internal error: OperationalError")
        db.session.add(stored)
        db.session.commit()
        delivery_id = stored.id
    before = last_event_id(app)

    response = post(auth, f"/admin/webhooks/{delivery_id}/replay")

    assert response.status_code == 303
    assert response.headers["Location"].endswith("/admin/settings#deliveries")
    assert f"Delivery #{delivery_id} replayed: processed." in text_of(auth.client.get(SETTINGS))
    with app.app_context():
        replayed = db.session.get(WebhookDelivery, delivery_id)
        assert (replayed.state, replayed.error, replayed.event) == ("processed", None, "message.received")
        messages = db.session.scalars(select(Message)).all()
        assert [(m.body, m.provider_message_id) for m in messages] == [("¿Siguen abiertos?", "wamid-replay-1")]
        assert replayed.message_id == messages[0].id
        assert messages[0].conversation.vambe_contact_id == contact_id
    events = admin_events_since(app, before)
    assert [(e["kind"], e["actor_id"], e["details"]["delivery_id"]) for e in events] == [
        (AuditKind.WEBHOOKS_REPLAYED, admin, delivery_id)
    ]

    before = last_event_id(app)
    assert post(auth, f"/admin/webhooks/{delivery_id}/replay").status_code == 303
    with app.app_context():
        assert db.session.get(WebhookDelivery, delivery_id).state == "processed"
        assert db.session.scalar(select(func.count(Message.id))) == 1
    events = admin_events_since(app, before)
    assert [(e["kind"], e["actor_id"], e["details"]["delivery_id"]) for e in events] == [
        (AuditKind.WEBHOOKS_REPLAYED, admin, delivery_id)
    ]


def test_replaying_an_unknown_delivery_is_a_404(app, auth, admin):
    before = last_event_id(app)
    assert post(auth, "/admin/webhooks/999999/replay").status_code == 404
    assert admin_events_since(app, before) == []
