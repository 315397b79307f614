"""A team lead reviews: search, a timeline, the report with its charts; an admin checks the settings."""

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from app.clock import utcnow
from app.models import Role
from app.sandbox.customers import customer_says
from tests import factories
from tests.browser.conftest import PHONE
from tests.browser.pages import expect_page, horizontal_overflow, sign_in, stretched_checkboxes

pytestmark = pytest.mark.browser


def sign_in_as(page, live_server, live_app, role: Role) -> None:
    email = f"{role}@review.test"
    with live_app.app_context():
        factories.make_user(email=email, name=f"Rita {role.capitalize()}", role=role)
    sign_in(page, live_server, email)


def handled_by_ana_days_ago() -> None:
    """Two customers, each answered by Ana: one after 4 minutes, one after 30 and again two hours later.

    At noon UTC (morning in the Americas) so that no reply crosses the viewer's midnight into another day.
    """
    ana = factories.make_user(email="ana@review.test", name="Ana Agent")
    noon = utcnow().replace(hour=12, minute=0, second=0, microsecond=0)
    for days_ago, wait_minutes in ((3, 4), (2, 30)):
        asked = noon - timedelta(days=days_ago)
        customer = factories.make_conversation(name=f"Customer {days_ago}")
        factories.make_message(customer, occurred_at=asked)
        factories.make_agent_reply(customer, ana, asked + timedelta(minutes=wait_minutes))
    factories.make_agent_reply(customer, ana, asked + timedelta(hours=2))


def drawn_bars(page, chart: str) -> set[str]:
    """The values written over a chart's bars (only bars with a value get one)."""
    return set(page.get_by_role("figure", name=chart).locator("text.value").all_text_contents())


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["1440", "360"], indirect=False)
def test_lead_searches_reads_a_timeline_and_the_report(new_context, viewport, live_server, live_app, screenshot):
    page = new_context(viewport).new_page() if viewport else new_context().new_page()
    sign_in_as(page, live_server, live_app, Role.LEAD)
    page.get_by_role("link", name="Review").click()
    expect_page(page, "Review")
    page.get_by_label("Message text").fill("PEDIDO transito")
    hit = page.locator(".search-hit").filter(has_text="está en tránsito")
    expect(hit).to_have_count(1)
    expect(page).to_have_url(re.compile(r"q=PEDIDO\+transito"))
    assert stretched_checkboxes(page) == []
    screenshot(page, "review-search")

    hit.get_by_role("link", name="timeline").click()
    expect(page.get_by_role("heading", name=re.compile("Valentina Rojas"))).to_be_visible()
    expect(page.locator(".day-separator").first).to_be_visible()
    screenshot(page, "review-timeline")

    with live_app.app_context():
        handled_by_ana_days_ago()
    page.goto(live_server + "/review/reports")
    expect(page.locator("svg")).to_have_count(2)
    expect(page.get_by_role("figure", name="Time to first human reply")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(r"^Ana Agent 2 3 "))).to_be_visible()
    assert drawn_bars(page, "Agent messages per day") == {"2", "1"}
    assert drawn_bars(page, "Time to first human reply") == {"1"}
    screenshot(page, "review-report")
    assert horizontal_overflow(page) <= 0


def test_admin_sees_the_vambe_connection_and_the_audit_log(page, live_server, live_app, screenshot):
    sign_in_as(page, live_server, live_app, Role.ADMIN)
    page.get_by_role("link", name="Admin").click()
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_text("Connected: Vambe lists 2 WhatsApp number(s).")).to_be_visible()
    page.get_by_role("button", name="Refresh business numbers from Vambe").click()
    expect(page.get_by_text("Vambe lists 2 business number(s).")).to_be_visible()
    screenshot(page, "admin-settings")
    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("cell", name="refreshed the business numbers")).to_be_visible()
    expect(page.get_by_role("cell", name="signed in").first).to_be_visible()
    screenshot(page, "admin-audit")


@pytest.mark.parametrize("viewport", [PHONE], ids=["360"])
def test_admin_pages_fit_a_phone(page, live_server, live_app, screenshot):
    with live_app.app_context():
        customer_says("+56 9 5555 0142", "Hola", name="Ana Cliente", now=utcnow())  # a webhook delivery to list
        factories.make_user(email="ana@review.test", name="Ana Agent")
    sign_in_as(page, live_server, live_app, Role.ADMIN)

    page.goto(live_server + "/admin/settings")
    expect(page.get_by_role("button", name=re.compile(r"^Replay delivery")).first).to_be_visible()
    screenshot(page, "admin-settings")
    assert horizontal_overflow(page) <= 0  # the visually hidden "Replay" header once stuck out by 113 px
    api = page.locator(".facts dd").nth(1)
    assert api.bounding_box()["width"] > 250  # values under their terms, not squeezed beside them

    page.goto(live_server + "/admin/users")
    screenshot(page, "admin-users")
    assert horizontal_overflow(page) <= 0
    # Each user's actions sit under their name, on screen, without scrolling sideways.
    card = page.get_by_role("row").filter(has_text="ana@review.test")
    deactivate = card.get_by_role("button", name="Deactivate Ana Agent")
    expect(card.get_by_text("Ana Agent", exact=True)).to_be_in_viewport()
    deactivate.scroll_into_view_if_needed()
    box = deactivate.bounding_box()
    assert 0 <= box["x"] and box["x"] + box["width"] <= PHONE["width"]
    deactivate.click()
    expect(page.get_by_role("status").filter(has_text="Ana Agent is now deactivated.")).to_be_visible()
    screenshot(page, "admin-users-deactivated")

    page.get_by_label("Email", exact=True).fill("nueva@review.test")
    page.get_by_label("Initial password").fill("short")
    page.get_by_role("button", name="Create user").click()
    summary = page.get_by_role("alert").filter(has_text="The new user was not created")
    expect(summary).to_be_in_viewport()  # at the top, where the page opens
    expect(page.get_by_label("Initial password")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("link", name="Users", exact=True)).to_have_attribute("aria-current", "page")
    screenshot(page, "admin-users-create-refused")
    assert horizontal_overflow(page) <= 0

    page.goto(live_server + "/admin/audit")
    screenshot(page, "admin-audit")
    assert horizontal_overflow(page) <= 0
