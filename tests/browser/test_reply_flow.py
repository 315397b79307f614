"""The reply flow of the issue, driven in a real browser the way a new agent would do it.

Everything is found by role and accessible name (or visible text), because those names are part of
what the console promises; waits are Playwright's auto-waiting ``expect``, never sleeps.
"""

import re

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEvent, AuditKind, Author, Message, Outcome
from tests.browser.conftest import DESKTOP, PHONE
from tests.browser.pages import (
    assert_not_reloaded,
    horizontal_overflow,
    inbox_row,
    mark_page,
    message_field,
    open_conversation,
    send_button,
    sign_in,
    thread_message,
)

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips (or fails under CI) with the reason
    expect = None

pytestmark = pytest.mark.browser

VIEWPORTS = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1440x900", "360x740"])
CUSTOMER_TEXT = "Hola, ¿me ayudan?"  # what tests.factories.make_sandbox_conversation has the customer write
REENGAGEMENT = "(#131047) Re-engagement message"


def sandbox_banner(page):
    return page.get_by_role("note").filter(has_text="Sandbox mode.")


@VIEWPORTS
def test_reply_with_a_quote_keeps_the_draft_and_pauses_the_assistant(
    page, live_server, live_app, seeded, screenshot, page_errors
):
    overflow = {}
    page.goto(live_server + "/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(sandbox_banner(page)).to_be_visible()
    sign_in(page, live_server, seeded.agent_email)
    expect(sandbox_banner(page)).to_be_visible()
    expect(inbox_row(page, seeded.open_name)).to_contain_text("Window open")
    overflow["inbox"] = horizontal_overflow(page)
    screenshot(page, "open-window-1-inbox")

    open_conversation(page, seeded.open_name)
    expect(sandbox_banner(page)).to_be_visible()
    conversation = page.get_by_role("region", name=seeded.open_name)
    expect(conversation.locator("#conversation-live").get_by_text(re.compile("Window open"))).to_be_visible()
    pause = page.get_by_label("Pause assistant")
    expect(pause).to_be_checked()
    expect(page.get_by_text("The AI assistant is active for this contact.")).to_be_visible()
    mark_page(page)

    # A draft typed before choosing what to reply to must survive choosing it.
    draft = "Hola Daniela, "
    field = message_field(page)
    field.click()
    field.press_sequentially(draft)
    customer_message = thread_message(page, CUSTOMER_TEXT)
    customer_message.get_by_role("link", name="Reply to this message").click()
    expect(page.get_by_text(f"Replying to {seeded.open_name}: “{CUSTOMER_TEXT}”")).to_be_visible()
    expect(page.get_by_role("link", name="Remove quote")).to_be_visible()
    expect(field).to_have_value(draft)
    expect(pause).to_be_checked()
    assert_not_reloaded(page)

    field.click()
    field.press("Control+End")
    field.press_sequentially("ya revisé tu pedido: sale hoy.")
    reply = draft + "ya revisé tu pedido: sale hoy."
    expect(field).to_have_value(reply)
    overflow["conversation, quoting"] = horizontal_overflow(page)
    screenshot(page, "open-window-2-quote-and-draft")

    send_button(page).click()
    sent = thread_message(page, reply)
    expect(sent).to_be_visible()
    expect(sent.get_by_text("Sent", exact=True)).to_be_visible()
    quote = sent.get_by_role("link", name=re.compile(re.escape(CUSTOMER_TEXT)))
    expect(quote).to_be_visible()
    body = sent.get_by_text(reply, exact=True)
    assert quote.bounding_box()["y"] + quote.bounding_box()["height"] <= body.bounding_box()["y"] + 1, (
        "the quote is not rendered above the reply"
    )
    expect(page.get_by_role("status").filter(has_text="Sent: Vambe accepted the message.")).to_be_visible()
    assert_not_reloaded(page)
    # A fresh composer: empty, no quote, assistant pause still offered, and the state says who paused it.
    expect(field).to_have_value("")
    expect(page.get_by_role("link", name="Remove quote")).to_have_count(0)
    expect(pause).to_be_checked()
    paused_by = re.compile(rf"Paused by {seeded.agent_name}\b")
    expect(page.locator("#composer").get_by_text(paused_by)).to_be_visible()  # next to the checkbox
    overflow["conversation, sent"] = horizontal_overflow(page)
    screenshot(page, "open-window-3-sent")

    with live_app.app_context():
        message = db.session.scalar(select(Message).where(Message.body == reply))
        assert message.author == Author.AGENT
        assert message.outcome == Outcome.SENT
        assert message.quoted_message.body == CUSTOMER_TEXT
        assert message.pause_assistant is True
        assert message.window_override is False
        assert message.conversation.assistant_paused_at is not None
        db.session.remove()

    page.get_by_role("link", name="← Inbox").click()
    expect(inbox_row(page, seeded.open_name)).to_contain_text("Assistant paused")
    screenshot(page, "open-window-4-inbox-after")

    assert page_errors == []
    assert all(pixels <= 0 for pixels in overflow.values()), f"content wider than the viewport: {overflow}"


@VIEWPORTS
def test_sending_after_the_window_closed_needs_confirmation_and_is_recorded(
    page, live_server, live_app, seeded, screenshot, page_errors
):
    overflow = {}
    page.goto(live_server + "/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(sandbox_banner(page)).to_be_visible()
    sign_in(page, live_server, seeded.agent_email)
    expect(inbox_row(page, seeded.closed_name)).to_contain_text("Window closed")
    overflow["inbox"] = horizontal_overflow(page)
    screenshot(page, "closed-window-1-inbox")

    open_conversation(page, seeded.closed_name)
    conversation = page.get_by_role("region", name=seeded.closed_name)
    expect(conversation.get_by_text(re.compile("Window closed"))).to_be_visible()  # the badge
    # The agent learns the window closed before typing anything.
    expect(page.get_by_role("status").filter(has_text="The 24-hour window closed")).to_be_visible()
    expect(page.get_by_label("Pause assistant")).to_be_checked()
    overflow["conversation"] = horizontal_overflow(page)
    screenshot(page, "closed-window-2-notice")
    mark_page(page)

    text = "Hola Tomás, ¿sigues interesado en la chaqueta?"
    field = message_field(page)
    field.click()
    field.press_sequentially(text)
    expect(send_button(page)).to_have_count(0)  # outside the window there is no plain Send
    field.press("Enter")  # Enter in the message box asks; it never sends an override
    warning = page.get_by_role("alert").filter(has_text="Outside the 24-hour window.")
    expect(warning).to_be_visible()
    send_anyway = page.get_by_role("button", name="Send anyway")
    expect(send_anyway).to_be_visible()
    expect(field).to_have_value(text)
    expect(field).to_be_focused()
    expect(thread_message(page, text)).to_have_count(0)
    assert_not_reloaded(page)
    overflow["conversation, warning"] = horizontal_overflow(page)
    screenshot(page, "closed-window-3-warning")

    page.get_by_label("Why send free text anyway?").fill("Tomás pidió que le escribiéramos por aquí")
    send_anyway.click()
    sent = thread_message(page, text)
    expect(sent).to_be_visible()
    expect(sent.get_by_text("Override: outside the 24h window")).to_be_visible()
    # The sandbox, like WhatsApp, refuses a free-form message outside the window.
    expect(sent.get_by_text("Failed", exact=True)).to_be_visible()
    expect(sent).to_contain_text(REENGAGEMENT)
    expect(page.get_by_role("alert").filter(has_text="Not sent")).to_contain_text("Your text is kept below.")
    expect(field).to_have_value(text)  # kept for a retry
    expect(page.get_by_text("The AI assistant is active for this contact.")).to_be_visible()
    assert_not_reloaded(page)
    overflow["conversation, failed"] = horizontal_overflow(page)
    screenshot(page, "closed-window-4-sent-anyway-failed")

    with live_app.app_context():
        message = db.session.scalar(select(Message).where(Message.body == text))
        assert message.window_override is True
        assert message.outcome == Outcome.FAILED
        assert REENGAGEMENT in message.outcome_reason
        overrides = db.session.scalars(select(AuditEvent).where(AuditEvent.kind == AuditKind.WINDOW_OVERRIDE)).all()
        assert [event.message_id for event in overrides] == [message.id]
        db.session.remove()

    assert page_errors == []
    assert all(pixels <= 0 for pixels in overflow.values()), f"content wider than the viewport: {overflow}"


def test_double_clicking_send_sends_once(page, live_server, live_app, seeded, screenshot, page_errors):
    posts = []
    page.on("request", lambda request: posts.append(request) if request.url.endswith("/messages") else None)
    sign_in(page, live_server, seeded.agent_email)
    open_conversation(page, seeded.open_name)
    text = "Un solo mensaje, aunque haga doble clic."
    message_field(page).fill(text)

    send_button(page).dblclick()
    expect(thread_message(page, text)).to_have_count(1)
    expect(thread_message(page, text).get_by_text("Sent", exact=True)).to_be_visible()
    page.wait_for_load_state("networkidle")  # let a second request, if any, finish and swap
    expect(thread_message(page, text)).to_have_count(1)
    expect(page.get_by_role("alert")).to_have_count(0)
    expect(message_field(page)).to_have_value("")
    screenshot(page, "double-click-sent-once")

    with live_app.app_context():
        count = db.session.scalar(select(func.count(Message.id)).where(Message.body == text))
        db.session.remove()
    assert count == 1, f"{count} messages stored after a double click ({len(posts)} send requests)"
    assert page_errors == []
