"""The audit trail: sign-ins and failed sign-ins, the failed-login limit (kept in the database; more in
test_sign_in_throttle.py),
the audit log page (filters, time zones, paging) and its append-only promise."""

import html
import json
import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.clock import utcnow
from app.extensions import db
from app.models import AuditEvent, AuditKind, Role
from tests import factories
from tests.conftest import TEST_PASSWORD, Auth, build_app

AUDIT = "/admin/audit"
SECRET_ATTEMPT = "Tr0ub4dor&3-never-log-me"
TOO_MANY = "Too many failed attempts. Wait 15 seconds and try again."


# --- helpers ---------------------------------------------------------------------------------------


def events_of(app, kind: AuditKind) -> list[AuditEvent]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEvent).where(AuditEvent.kind == kind).order_by(AuditEvent.id)).all()
        db.session.expunge_all()
        return rows


def fresh_browser(app) -> Auth:
    return Auth(app, app.test_client())


def add_events(app, *events: dict) -> None:
    """Insert audit events as they would have been written at explicit times."""
    with app.app_context():
        db.session.add_all(AuditEvent(**event) for event in events)
        db.session.commit()


def markers(page: str) -> list[str]:
    """The ``marker`` detail of every row of an audit log page, top to bottom."""
    return re.findall(r"marker: (m-\d+)", page)


def older_link(page: str) -> str | None:
    match = re.search(r'<a href="([^"]+)">Older entries', page)
    return html.unescape(match.group(1)) if match else None


# --- sign-ins --------------------------------------------------------------------------------------


def test_a_sign_in_writes_a_login_event_for_the_user(app, auth):
    user_id = auth.login_as(Role.AGENT)

    logins = events_of(app, AuditKind.LOGIN)
    assert [(event.actor_id, event.conversation_id) for event in logins] == [(user_id, None)]
    assert events_of(app, AuditKind.LOGIN_FAILED) == []


@pytest.mark.parametrize("known", [True, False], ids=["wrong-password", "unknown-email"])
def test_a_failed_sign_in_records_the_email_but_never_the_password(app, auth, caplog, known):
    caplog.set_level(logging.DEBUG)
    if known:
        with app.app_context():
            factories.make_user(email="maria@example.com")

    response = auth.login("  Maria@Example.com ", SECRET_ATTEMPT)

    assert response.status_code == 422
    failures = events_of(app, AuditKind.LOGIN_FAILED)
    assert len(failures) == 1
    assert failures[0].actor_id is None
    assert failures[0].details == {"email": "maria@example.com"}
    assert SECRET_ATTEMPT not in json.dumps(failures[0].details)
    assert events_of(app, AuditKind.LOGIN) == []
    for record in caplog.records:
        assert SECRET_ATTEMPT not in record.getMessage()
        assert SECRET_ATTEMPT not in repr(record.args)
    assert SECRET_ATTEMPT not in caplog.text

    # Nor does it reach an admin's audit log page.
    admin = fresh_browser(app)
    admin.login_as(Role.ADMIN)
    page = admin.client.get(AUDIT, query_string={"kind": "login_failed"}).get_data(as_text=True)
    assert "maria@example.com" in page
    assert SECRET_ATTEMPT not in page


# --- the failed sign-in limit ----------------------------------------------------------------------


def test_after_five_failures_the_sixth_attempt_is_refused_even_with_the_right_password(app):
    with app.app_context():
        factories.make_user(email="target@example.com")
        factories.make_user(email="bystander@example.com")
    browser = fresh_browser(app)
    # The same email however it is typed.
    variants = [
        "target@example.com",
        "Target@example.com",
        "TARGET@EXAMPLE.COM",
        " target@example.com ",
        "target@Example.com",
    ]
    for email in variants:
        assert browser.login(email, "wrong password").status_code == 422

    refused = browser.login("target@example.com", TEST_PASSWORD)

    assert refused.status_code == 429
    assert TOO_MANY in html.unescape(refused.get_data(as_text=True))
    assert events_of(app, AuditKind.LOGIN) == []
    assert fresh_browser(app).login("target@example.com", TEST_PASSWORD).status_code == 429  # not per browser
    assert fresh_browser(app).login("bystander@example.com", TEST_PASSWORD).status_code == 302


def test_four_failures_do_not_lock_the_account(app):
    with app.app_context():
        factories.make_user(email="careful@example.com")
    browser = fresh_browser(app)
    for _ in range(4):
        assert browser.login("careful@example.com", "wrong password").status_code == 422

    assert browser.login("careful@example.com", TEST_PASSWORD).status_code == 302


def test_the_limit_holds_across_two_app_instances_on_the_same_database(database_url):
    first, second = build_app(database_url), build_app(database_url)
    restarted = None
    try:
        with first.app_context():
            factories.make_user(email="shared@example.com")
        browsers = [fresh_browser(first), fresh_browser(second)]
        for attempt in range(5):
            assert browsers[attempt % 2].login("shared@example.com", "wrong password").status_code == 422

        assert browsers[0].login("shared@example.com", TEST_PASSWORD).status_code == 429
        assert browsers[1].login("shared@example.com", TEST_PASSWORD).status_code == 429
        restarted = build_app(database_url)  # an instance started after the failures: nothing in its memory
        assert fresh_browser(restarted).login("shared@example.com", TEST_PASSWORD).status_code == 429
    finally:
        for app in (first, second, restarted):
            if app is None:
                continue
            with app.app_context():
                db.engine.dispose()


# --- the audit log page ----------------------------------------------------------------------------


@pytest.fixture
def admin(auth):
    """The signed-in admin's id."""
    return auth.login_as(Role.ADMIN, email="auditor@example.com")


def audit_page(auth, **query) -> str:
    response = auth.client.get(AUDIT, query_string=query)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_the_audit_log_filters_by_kind_and_by_actor(app, auth, admin):
    with app.app_context():
        lead_id = factories.make_user(email="lead@example.com", role=Role.LEAD, name="Lena Lead").id
    moment = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    add_events(
        app,
        {"occurred_at": moment, "kind": AuditKind.ROLE_CHANGED, "actor_id": admin, "details": {"marker": "m-1"}},
        {"occurred_at": moment, "kind": AuditKind.ROLE_CHANGED, "actor_id": lead_id, "details": {"marker": "m-2"}},
        {"occurred_at": moment, "kind": AuditKind.RESOLVED, "actor_id": lead_id, "details": {"marker": "m-3"}},
        {"occurred_at": moment, "kind": AuditKind.PASSWORD_RESET, "actor_id": admin, "details": {"marker": "m-4"}},
    )

    assert markers(audit_page(auth)) == ["m-4", "m-3", "m-2", "m-1"]  # newest first
    assert markers(audit_page(auth, kind="role_changed")) == ["m-2", "m-1"]
    assert markers(audit_page(auth, actor=lead_id)) == ["m-3", "m-2"]
    assert markers(audit_page(auth, actor=admin)) == ["m-4", "m-1"]
    assert markers(audit_page(auth, kind="role_changed", actor=lead_id)) == ["m-2"]
    assert markers(audit_page(auth, kind="assigned")) == []
    assert "Nothing matches." in audit_page(auth, kind="assigned")
    page = audit_page(auth, actor=lead_id)
    assert "Lena Lead" in page and "changed a role" in page and "marked it resolved" in page
    # The sign-in of the admin is there too, unfiltered, and only under its own kind.
    assert "signed in" in audit_page(auth, kind="login")
    assert markers(audit_page(auth, kind="login")) == []


# Santiago is UTC-3 in January (summer time).
ZONE_EVENTS = [
    ("m-1", datetime(2024, 1, 15, 2, 30, tzinfo=UTC)),  # 14 Jan 23:30 in Santiago, 15 Jan in UTC
    ("m-2", datetime(2024, 1, 15, 4, 0, tzinfo=UTC)),  # 15 Jan 01:00 in Santiago
    ("m-3", datetime(2024, 1, 16, 2, 59, tzinfo=UTC)),  # 15 Jan 23:59 in Santiago, 16 Jan in UTC
    ("m-4", datetime(2024, 1, 16, 3, 0, tzinfo=UTC)),  # 16 Jan 00:00 in Santiago
]


def test_the_audit_log_filters_by_dates_in_the_viewers_time_zone(app, auth, admin):
    add_events(
        app,
        *(
            {"occurred_at": at, "kind": AuditKind.RESOLVED, "actor_id": admin, "details": {"marker": marker}}
            for marker, at in ZONE_EVENTS
        ),
    )

    # No zone reported yet: days are UTC days.
    assert markers(audit_page(auth, since="2024-01-15", until="2024-01-15")) == ["m-2", "m-1"]

    auth.client.set_cookie("tz", "America%2FSantiago")  # as static/localtime.js writes it
    assert markers(audit_page(auth, since="2024-01-15", until="2024-01-15")) == ["m-3", "m-2"]
    assert markers(audit_page(auth, since="2024-01-16", kind="resolved")) == ["m-4"]
    assert markers(audit_page(auth, until="2024-01-14")) == ["m-1"]
    assert markers(audit_page(auth, since="2024-01-14", until="2024-01-16")) == ["m-4", "m-3", "m-2", "m-1"]
    page = audit_page(auth, since="2024-01-15", until="2024-01-15")
    assert "15 Jan 2024, 23:59" in page and "15 Jan 2024, 01:00" in page  # shown in the same zone


@pytest.mark.parametrize("filtered", [False, True], ids=["unfiltered", "by-kind"])
def test_older_entries_page_through_everything_without_repeats_or_gaps(app, auth, admin, filtered):
    start = datetime(2024, 2, 1, 9, 0, tzinfo=UTC)
    events = []
    for number in range(120):
        events.append(
            {
                "occurred_at": start + timedelta(minutes=number),
                "kind": AuditKind.ASSIGNED,
                "actor_id": admin,
                "details": {"marker": f"m-{number:03d}"},
            }
        )
        if filtered and number % 4 == 0:  # other kinds in between, which the filter must keep out
            events.append(
                {
                    "occurred_at": start + timedelta(minutes=number),
                    "kind": AuditKind.RESOLVED,
                    "actor_id": admin,
                    "details": {"marker": f"m-9{number:03d}"},
                }
            )
    add_events(app, *events)

    query = {"kind": "assigned"} if filtered else {}
    pages = [audit_page(auth, **query)]
    while (link := older_link(pages[-1])) is not None:
        assert len(pages) < 10, "the Older entries links never end"
        if filtered:
            assert "kind=assigned" in link
        response = auth.client.get(link)
        assert response.status_code == 200
        pages.append(response.get_data(as_text=True))

    seen = [marker for page in pages for marker in markers(page)]
    expected = [f"m-{number:03d}" for number in reversed(range(120))]
    assert seen == expected  # newest first, each exactly once, none skipped
    assert [len(markers(page)) for page in pages] == [50, 50, 20]
    assert older_link(pages[-1]) is None


def test_the_page_after_the_last_full_page_is_empty_not_repeated(app, auth, admin):
    start = datetime(2024, 2, 1, 9, 0, tzinfo=UTC)
    add_events(
        app,
        *(
            {"occurred_at": start, "kind": AuditKind.ASSIGNED, "actor_id": admin, "details": {"marker": f"m-{n:03d}"}}
            for n in range(50)
        ),
    )
    first = audit_page(auth, kind="assigned")
    assert len(markers(first)) == 50
    link = older_link(first)
    if link is not None:  # a full page may offer a next one, which must then be empty
        assert markers(auth.client.get(link).get_data(as_text=True)) == []


# --- append-only -----------------------------------------------------------------------------------

CHANGING_WORDS = ("edit", "delete", "remove", "update", "destroy", "purge", "clear", "erase", "truncate")
CHANGING_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def test_no_route_of_the_url_map_edits_or_deletes_audit_entries(app):
    rules = list(app.url_map.iter_rules())
    audit_rules = [rule for rule in rules if "audit" in rule.rule.lower() or "audit" in rule.endpoint.lower()]
    assert [rule.endpoint for rule in audit_rules] == ["admin.audit"]
    for rule in audit_rules:
        assert rule.methods <= {"GET", "HEAD", "OPTIONS"}, rule
    for rule in rules:
        names = f"{rule.endpoint} {rule.rule}".lower()
        if "audit" in names or "event" in names:
            assert not any(word in names for word in CHANGING_WORDS), rule


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_changing_methods_on_the_audit_log_are_not_allowed(app, auth, admin, method):
    add_events(app, {"occurred_at": utcnow(), "kind": AuditKind.RESOLVED, "actor_id": admin, "details": {}})
    token = auth.csrf_token(AUDIT)
    with app.app_context():
        before = db.session.execute(select(AuditEvent.id, AuditEvent.kind)).all()

    response = auth.client.open(AUDIT, method=method, data={"csrf_token": token}, headers={"X-CSRFToken": token})

    assert response.status_code == 405
    for path in (f"{AUDIT}/{before[0].id}", f"{AUDIT}/{before[0].id}/delete", f"{AUDIT}/{before[0].id}/edit"):
        assert auth.client.open(path, method=method, data={"csrf_token": token}).status_code == 404
    with app.app_context():
        assert db.session.execute(select(AuditEvent.id, AuditEvent.kind)).all() == before


def test_the_405_on_the_audit_log_says_which_methods_are_allowed(auth, admin):
    token = auth.csrf_token(AUDIT)
    response = auth.client.post(AUDIT, data={"csrf_token": token})
    assert response.status_code == 405
    # RFC 9110 section 15.5.6: a 405 response MUST carry an Allow header.
    assert "GET" in response.headers.get("Allow", ""), dict(response.headers)


def test_no_route_changes_or_removes_an_existing_audit_entry(app, auth, admin):
    """Every route that takes a body, called as an admin with a valid token and each argument set to an
    existing audit entry's id: entries may be added, never changed or removed."""
    with app.app_context():
        factories.make_sandbox_conversation()
    add_events(
        app,
        *(
            {"occurred_at": datetime(2024, 1, 1, tzinfo=UTC), "kind": kind, "actor_id": admin, "details": {"n": i}}
            for i, kind in enumerate(AuditKind)
        ),
    )
    with app.app_context():
        snapshot = {
            row.id: (row.kind, row.actor_id, row.occurred_at, json.dumps(row.details, sort_keys=True))
            for row in db.session.scalars(select(AuditEvent))
        }
    token = auth.csrf_token(AUDIT)
    tried = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("auth.logout", "auth.login", "static") or rule.rule.startswith("/sandbox/api/"):
            continue
        for event_id in sorted(snapshot)[:3]:
            path = rule.build({name: event_id for name in rule.arguments})[1]
            for method in sorted(rule.methods & CHANGING_METHODS):
                response = auth.client.open(path, method=method, data={"csrf_token": token})
                assert response.status_code < 500, f"{method} {path}"
                response.close()
                tried += 1
    assert tried >= 15
    with app.app_context():
        after = {
            row.id: (row.kind, row.actor_id, row.occurred_at, json.dumps(row.details, sort_keys=True))
            for row in db.session.scalars(select(AuditEvent))
        }
    assert {event_id: after.get(event_id) for event_id in snapshot} == snapshot


@pytest.mark.parametrize("role", [Role.AGENT, Role.LEAD])
def test_only_admins_see_the_audit_log(app, auth, role):
    auth.login_as(role)
    response = auth.client.get(AUDIT)
    assert response.status_code == 403
    assert "Audit log</h1>" not in response.get_data(as_text=True)
