"""A customer's message arrives in the agent's open conversation while the agent is typing.

Two browser windows: the agent's conversation, and a second signed-in window where someone plays the
customer on the sandbox's "Simulate customer" page. The conversation polls every 3 s; nothing here
sleeps: Playwright's ``expect`` waits (up to 10 s), and "a poll that started after X" is waited for
as a network event.
"""

import re

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Author, Conversation, Message
from app.sandbox.customers import CANNED_ANSWERS
from app.sandbox.state import SandboxMessage
from tests.browser.conftest import DESKTOP
from tests.browser.pages import message_field, open_conversation, sign_in, thread_items, thread_message

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips (or fails under CI) with the reason
    expect = None

pytestmark = pytest.mark.browser

ARRIVAL_TIMEOUT = 10_000  # ms: a 3 s poll, with room for a loaded machine


def ai_messages(page):
    """Messages written by the AI (a message starts with its author; events such as "… paused the AI
    assistant" do not)."""
    return thread_items(page).filter(has_text=re.compile(r"^\s*AI assistant\s*·"))


def customer_writes(customer, option_label: str, text: str) -> None:
    customer.get_by_label("Customer", exact=True).select_option(label=option_label)
    customer.get_by_label("Customer message").fill(text)
    customer.get_by_role("button", name="Send as customer").click()
    expect(customer.get_by_role("status").filter(has_text="Delivered to Handoff.")).to_be_visible()
    expect(customer.get_by_label("Customer message")).to_have_value("")


def wait_for_a_poll_started_now(page, live_requests: list) -> None:
    """Wait until a /live poll that starts after this call has been answered, and the next one has
    started (by then the first one's answer has been swapped in)."""
    mark = len(live_requests)
    page.wait_for_event("requestfinished", predicate=lambda r: r in live_requests[mark:], timeout=ARRIVAL_TIMEOUT)
    after = len(live_requests)
    page.wait_for_event("request", predicate=lambda r: r in live_requests[after:], timeout=ARRIVAL_TIMEOUT)


def test_customer_messages_arrive_in_the_open_conversation_without_disturbing_the_draft(
    page, new_context, live_server, live_app, seeded, screenshot, page_errors
):
    with live_app.app_context():
        phone = db.session.get(Conversation, seeded.open_id).phone
        ai_lines_before = db.session.scalar(
            select(func.count(SandboxMessage.id)).where(SandboxMessage.sender == "assistant")
        )
        db.session.remove()
    option = f"{seeded.open_name} ({phone})"

    agent = page
    live_requests = []
    agent.on("request", lambda r: live_requests.append(r) if "/live" in r.url else None)
    sign_in(agent, live_server, seeded.agent_email)
    open_conversation(agent, seeded.open_name)
    expect(ai_messages(agent)).to_have_count(0)
    agent.evaluate("window.__marker = 'still the same page'")
    draft = "Hola Daniela, estoy revisando tu pedido y"
    field = message_field(agent)
    field.click()
    field.press_sequentially(draft)

    customer = new_context(DESKTOP).new_page()
    customer_errors = []
    customer.on("pageerror", lambda error: customer_errors.append(str(error)))
    sign_in(customer, live_server, seeded.agent_email)
    customer.goto(live_server + "/sandbox/")
    expect(customer.get_by_role("heading", name="Simulate customer")).to_be_visible()

    first = "¿Me pueden decir dónde está mi pedido 48213?"
    customer_writes(customer, option, first)

    arrived = thread_message(agent, first)
    expect(arrived).to_be_visible(timeout=ARRIVAL_TIMEOUT)
    expect(arrived).to_contain_text(seeded.open_name)  # shown as the customer's
    answer = thread_message(agent, CANNED_ANSWERS[0])
    expect(answer).to_be_visible(timeout=ARRIVAL_TIMEOUT)
    expect(answer).to_contain_text("AI assistant")
    expect(ai_messages(agent)).to_have_count(1)
    # The agent was typing all along: the text, the caret's field and the page itself are untouched.
    expect(field).to_have_value(draft)
    expect(field).to_be_focused()
    assert agent.evaluate("window.__marker") == "still the same page", "the page was fully reloaded"
    # Newest at the bottom: the AI's answer comes after the customer's message.
    assert answer.bounding_box()["y"] > arrived.bounding_box()["y"]
    screenshot(agent, "live-arrival-1-agent")
    screenshot(customer, "live-arrival-1-customer")

    # The agent takes over (pausing the assistant), then starts a new draft.
    field.press_sequentially(" ya sale hoy.")
    agent.get_by_role("button", name="Send", exact=True).click()
    # The AI answered after the composer was loaded: Handoff asks before sending over it.
    warning = agent.get_by_role("alert").filter(has_text="AI assistant replied while you were typing")
    expect(warning).to_contain_text(CANNED_ANSWERS[0])
    expect(field).to_have_value(draft + " ya sale hoy.")
    assert agent.evaluate("window.__marker") == "still the same page", "the page was fully reloaded"
    screenshot(agent, "live-arrival-2-agent-newer-reply-warning")
    warning.get_by_role("button", name="Send anyway").click()
    sent = thread_message(agent, draft + " ya sale hoy.")
    expect(sent.get_by_text("Sent", exact=True)).to_be_visible()
    expect(field).to_have_value("")
    second_draft = "Te aviso cuando"
    field.click()
    field.press_sequentially(second_draft)

    second = "¡Gracias! Quedo atento."
    customer_writes(customer, option, second)
    wait_for_a_poll_started_now(agent, live_requests)

    expect(thread_message(agent, second)).to_be_visible(timeout=ARRIVAL_TIMEOUT)
    expect(ai_messages(agent)).to_have_count(1)  # paused: the AI stayed silent
    expect(field).to_have_value(second_draft)
    expect(field).to_be_focused()
    assert agent.evaluate("window.__marker") == "still the same page", "the page was fully reloaded"
    screenshot(agent, "live-arrival-3-agent-paused")
    screenshot(customer, "live-arrival-3-customer")

    with live_app.app_context():
        authors = db.session.execute(
            select(Message.author, Message.body).where(Message.conversation_id == seeded.open_id).order_by(Message.id)
        ).all()
        ai_lines = db.session.scalar(select(func.count(SandboxMessage.id)).where(SandboxMessage.sender == "assistant"))
        db.session.remove()
    assert [tuple(row) for row in authors][-4:] == [
        (Author.CUSTOMER, first),
        (Author.ASSISTANT, CANNED_ANSWERS[0]),
        (Author.AGENT, draft + " ya sale hoy."),
        (Author.CUSTOMER, second),
    ]
    assert ai_lines == ai_lines_before + 1  # the one answer before the pause
    assert page_errors == []
    assert customer_errors == []


def test_a_customer_writing_after_the_window_closed_reopens_it_on_the_open_page(
    page, new_context, live_server, live_app, seeded, screenshot, page_errors
):
    with live_app.app_context():
        phone = db.session.get(Conversation, seeded.closed_id).phone
        db.session.remove()
    agent = page
    sign_in(agent, live_server, seeded.agent_email)
    open_conversation(agent, seeded.closed_name)
    conversation = agent.get_by_role("region", name=seeded.closed_name)
    expect(conversation.get_by_text(re.compile("Window closed")).first).to_be_visible()
    closed_notice = agent.get_by_role("status").filter(has_text="The 24-hour window closed")
    expect(closed_notice).to_be_visible()
    agent.evaluate("window.__marker = 'still the same page'")
    draft = "Hola Tomás, "
    field = message_field(agent)
    field.click()
    field.press_sequentially(draft)

    customer = new_context(DESKTOP).new_page()
    sign_in(customer, live_server, seeded.agent_email)
    customer.goto(live_server + "/sandbox/")
    text = "Hola, ¿todavía tienen la chaqueta?"
    customer_writes(customer, f"{seeded.closed_name} ({phone})", text)

    expect(thread_message(agent, text)).to_be_visible(timeout=ARRIVAL_TIMEOUT)
    expect(conversation.get_by_text(re.compile("Window open")).first).to_be_visible()
    expect(field).to_have_value(draft)
    assert agent.evaluate("window.__marker") == "still the same page", "the page was fully reloaded"
    screenshot(agent, "live-arrival-reopened-window")
    # Nothing on the page may still say the window is closed: the agent would believe a template is needed.
    expect(closed_notice).to_have_count(0, timeout=ARRIVAL_TIMEOUT)
    expect(conversation.get_by_text(re.compile("Window closed"))).to_have_count(0)
    # Nor offer what only a closed window needs: the template path and "Send anyway" give way to a plain Send.
    expect(agent.get_by_role("region", name="Send a template")).to_have_count(0)
    expect(agent.get_by_role("button", name="Send anyway")).to_have_count(0)
    expect(agent.get_by_role("button", name="Send", exact=True)).to_be_visible()
    expect(field).to_have_value(draft)
    assert page_errors == []
