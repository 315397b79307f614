"""The handoff queue in a browser: a customer asks the sandbox for a person, the agent's header count rises
without a reload (and is read out), the conversation appears in "Waiting for a human", the agent takes it with
"Take next" and it leaves the queue. Nothing sleeps: ``expect`` waits for the 5 s header poll."""

import re

import pytest
from sqlalchemy import select

from app.clock import utcnow
from app.extensions import db
from app.models import Conversation, Handoff
from app.sandbox.customers import HANDOVERS
from tests.browser.conftest import DESKTOP
from tests.browser.pages import (
    assert_not_reloaded,
    expect_page,
    inbox_row,
    mark_page,
    message_field,
    send_button,
    sign_in,
)
from tests.browser.test_live_arrival import customer_writes

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips (or fails under CI) with the reason
    expect = None

pytestmark = pytest.mark.browser

POLL_TIMEOUT = 15_000  # ms: a 5 s header poll, with room for a loaded machine


def count(page, label: str):
    return page.locator("#alerts").get_by_role("link", name=re.compile("^" + re.escape(label)))


def test_a_customer_asking_for_a_person_is_queued_seen_and_taken(
    page, new_context, live_server, live_app, seeded, screenshot, page_errors
):
    with live_app.app_context():
        phone = db.session.get(Conversation, seeded.open_id).phone
        # The demo data has a customer already waiting; answer it first, so that the queue starts empty.
        for waiting in db.session.scalars(select(Handoff)):
            waiting.ended_at = waiting.answered_at = utcnow()
        db.session.commit()
        db.session.remove()

    agent = page
    sign_in(agent, live_server, seeded.agent_email)
    expect(count(agent, "Waiting for a human")).to_contain_text("0")
    expect(agent.get_by_role("button", name="Take next")).to_be_disabled()
    mark_page(agent)

    customer = new_context(DESKTOP).new_page()
    sign_in(customer, live_server, seeded.agent_email)
    customer.goto(live_server + "/sandbox/")
    customer_writes(customer, f"{seeded.open_name} ({phone})", "Hola, quiero hablar con una persona por favor")

    # The header count rises on its own, and is read out to screen readers.
    expect(count(agent, "Waiting for a human")).to_contain_text("1", timeout=POLL_TIMEOUT)
    expect(agent.locator("#announcer")).to_contain_text("1 waiting for a human.")
    expect(agent.locator("#announcer")).to_contain_text(f"New message from {seeded.open_name}.")
    assert_not_reloaded(agent)
    expect(agent.get_by_role("button", name="Take next")).to_be_enabled()
    screenshot(agent, "handoff-1-header-count")

    count(agent, "Waiting for a human").click()
    expect(agent).to_have_url(re.compile(r"scope=waiting"))
    expect_page(agent, "Inbox")
    row = inbox_row(agent, seeded.open_name)
    expect(row).to_contain_text(re.compile(r"Waiting for a human · (under a minute|\d+ m)"))
    expect(agent.locator("#conversation-list").get_by_role("link")).to_have_count(1)
    screenshot(agent, "handoff-2-waiting-view")

    # Take next (here with its key): the conversation opens, assigned, with why it was handed over.
    agent.keyboard.press("t")
    expect(agent.get_by_role("heading", name=seeded.open_name, level=1)).to_be_visible()
    expect(agent.get_by_role("status").filter(has_text="You took")).to_be_visible()
    banner = agent.locator(".handoff-banner")
    expect(banner).to_contain_text("Taken by Alex Agent, not answered yet")
    expect(banner).to_contain_text("The customer asked for a person: “hablar con una persona”")
    expect(banner).to_contain_text(HANDOVERS["es"][1])  # what the AI last told the customer
    expect(count(agent, "Waiting for a human")).to_contain_text("0")
    expect(agent.locator("#conversation-live")).to_contain_text("Assigned to Alex Agent")
    screenshot(agent, "handoff-3-taken")

    message_field(agent).fill("Hola Daniela, soy Alex. ¿En qué te ayudo?")
    send_button(agent).click()
    expect(agent.locator(".handoff-banner")).to_have_count(0)
    screenshot(agent, "handoff-4-answered")

    with live_app.app_context():
        handoff = db.session.scalar(select(Handoff).where(Handoff.conversation_id == seeded.open_id))
        assert handoff.answered_at is not None and handoff.taken_at is not None
        assert handoff.answered_at >= handoff.requested_at
        db.session.remove()
    assert page_errors == []
