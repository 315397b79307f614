"""Pages that once hid things on a 360 px phone: quick replies and the Simulate customer page."""

import re

import pytest
from playwright.sync_api import expect

from app.models import Role
from tests import factories
from tests.browser.conftest import PHONE
from tests.browser.pages import expect_page, horizontal_overflow, sign_in

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("viewport", [PHONE], ids=["360"])
def test_quick_replies_fit_a_phone_and_delete_asks_first(page, live_server, live_app, screenshot, page_errors):
    with live_app.app_context():
        factories.make_user(email="lead@small.test", name="Lea Lead", role=Role.LEAD)
    sign_in(page, live_server, "lead@small.test")
    page.goto(live_server + "/quick-replies")
    expect_page(page, "Quick replies")
    for shortcut in ("demora-envio-con-un-atajo-bastante-largo", "hola"):
        page.get_by_label("Shortcut", exact=True).fill(shortcut)
        page.get_by_label("Text", exact=True).fill("Hola, lamentamos la demora. Su pedido saldrá mañana. " * 4)
        page.get_by_role("button", name="Save quick reply").click()
        expect(page.get_by_role("button", name=f"Delete /{shortcut}")).to_be_visible()
    screenshot(page, "quick-replies")
    assert horizontal_overflow(page) <= 0
    delete = page.get_by_role("button", name="Delete /demora-envio-con-un-atajo-bastante-largo")
    delete.scroll_into_view_if_needed()
    box = delete.bounding_box()
    assert box["x"] + box["width"] <= PHONE["width"]  # once cut off at the right edge
    text = page.locator(".quick-reply-body").first.bounding_box()
    assert text["width"] > 250  # once ~100 px

    page.wait_for_load_state("load")  # htmx asks; a click before the (deferred) scripts run just posts
    page.once("dialog", lambda dialog: dialog.dismiss())
    delete.click()
    expect(delete).to_be_visible()  # dismissed: kept
    page.once("dialog", lambda dialog: dialog.accept())
    delete.click()
    expect(delete).to_have_count(0)
    expect(page.get_by_role("button", name="Delete /hola")).to_be_visible()
    assert page_errors == []


@pytest.mark.parametrize("viewport", [PHONE], ids=["360"])
def test_the_customer_sees_the_newest_messages_and_keeps_typing(page, live_server, seeded, screenshot, page_errors):
    sign_in(page, live_server, seeded.agent_email)
    page.goto(live_server + "/sandbox/")
    expect_page(page, "Simulate customer")
    phone = page.get_by_label("The customer's phone")
    new_customer = page.locator(".new-customer")
    expect(new_customer).to_be_hidden()  # only with "A new customer…" chosen
    for line in ("Hola, ¿dónde está mi pedido? " * 3, "Es el número 1180"):
        page.get_by_label("Customer message").fill(line)
        page.get_by_role("button", name="Send as customer").click()
        expect(page.get_by_role("status").filter(has_text="Delivered to Handoff.")).to_be_visible()
        expect(page.get_by_label("Customer message")).to_be_focused()
    newest = phone.get_by_role("listitem").last
    expect(newest).to_be_visible()
    assert phone.evaluate("e => e.scrollHeight > e.clientHeight")  # it does scroll: the top is hidden, not the end
    newest_box, phone_box = newest.bounding_box(), phone.bounding_box()
    assert newest_box["y"] + newest_box["height"] <= phone_box["y"] + phone_box["height"] + 1
    screenshot(page, "simulate-after-send")

    page.get_by_label("Customer", exact=True).select_option(label="A new customer…")
    expect(new_customer).to_be_visible()
    page.get_by_label("New customer's phone").fill("+56 9 5555 0177")
    page.get_by_label("Customer", exact=True).select_option(index=0)
    page.get_by_label("Customer message").fill("Hola")
    page.get_by_role("button", name="Send as customer").click()
    expect(page.get_by_text(re.compile("You filled in a new customer's details but chose"))).to_be_visible()
    expect(page.get_by_label("New customer's phone")).to_have_value("+56 9 5555 0177")
    screenshot(page, "simulate-new-customer-refused")
    assert horizontal_overflow(page) <= 0
    assert page_errors == []
