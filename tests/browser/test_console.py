"""The agent console's everyday flows, driven in Chromium the way a support agent works.

Filters and search, a customer writing while the inbox is open, quoting, pausing the assistant, the
24-hour window, a failed send and its retry, assignment, quick replies, the keyboard, the "Sending…"
bubble and the console without JavaScript. Each runs on SQLite and PostgreSQL (``database_url``) at
1440x900; the inbox and a conversation are also photographed at 360x740.

Elements are found by role and accessible name; waits are Playwright's auto-waiting ``expect`` (or a
wait for a specific network event), never sleeps.
"""

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.clock import utcnow
from app.domain.assigning import assign, set_status
from app.extensions import db
from app.models import AuditEvent, AuditKind, Author, Conversation, ConversationStatus, Message, Outcome, Role, User
from app.sandbox.customers import CANNED_ANSWERS, customer_says
from tests import factories
from tests.browser.conftest import DESKTOP, PHONE, SCREENSHOTS
from tests.browser.pages import (
    assert_not_reloaded,
    expect_page,
    horizontal_overflow,
    inbox_row,
    mark_page,
    message_field,
    open_conversation,
    send_button,
    sign_in,
    stretched_checkboxes,
    thread_items,
    thread_message,
)
from tests.conftest import TEST_PASSWORD

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips (or fails under CI) with the reason
    expect = None

pytestmark = pytest.mark.browser

CUSTOMER_TEXT = "Hola, ¿me ayudan?"  # what tests.factories.make_sandbox_conversation has the customer write
COLLEAGUE = "Bea Lead"
OVERRIDE = "Override: outside the 24h window"
ASSISTANT_ACTIVE = "The AI assistant is active for this contact."
# The sandbox demo (app/sandbox/seeding.py) besides the two conversations tests/browser/conftest.py adds.
VALENTINA = "Valentina Rojas"  # window open, several customer messages, phone +56987654321
MATIAS = "Matías Fernández"  # window closing (wrote 23 h 15 m ago)
CAMILA = "Camila Soto"  # window closed (wrote 50 h ago): "Hola, me cobraron dos veces la misma compra."
JOAQUIN = "Joaquín Pérez"  # never wrote (only the assistant did), phone +5491155554444
SEARCH_WITHIN = 3_000  # ms
ARRIVAL_WITHIN = 5_000  # ms: the inbox polls every 3 s


# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture
def shot(backend):
    """Save a full-page screenshot as screenshots/console-<backend>-<width>-<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str):
        path = SCREENSHOTS / f"console-{backend}-{page.viewport_size['width']}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def colleague(live_app, seeded):
    """A second person on the team, a lead: someone to assign to, and who may edit quick replies."""
    with live_app.app_context():
        user = factories.make_user(email="bea@handoff.test", name=COLLEAGUE, role=Role.LEAD, password=TEST_PASSWORD)
        email = user.email
        db.session.remove()
    return email


@pytest.fixture
def no_js_page(browser):
    context = browser.new_context(
        viewport=DESKTOP, locale="en-US", timezone_id="America/Santiago", java_script_enabled=False
    )
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


# --- helpers -----------------------------------------------------------------------------------------


def inbox_rows(page):
    return page.locator("#conversation-list [data-inbox-row]")


def expect_rows(page, names: list[str], timeout: int | None = None) -> None:
    """The inbox lists exactly these conversations, in this order."""
    expect(inbox_rows(page)).to_have_count(len(names), timeout=timeout)
    if names:
        expect(inbox_rows(page).locator(".conversation-name")).to_contain_text(names, timeout=timeout)


def filter_select(page, label: str):
    """One of the inbox's filter selects. (Its label also holds the options' text, so get_by_label
    would need the whole of it; the accessible name is just the label's own text.)"""
    return page.get_by_role("combobox", name=label, exact=True)


def quote_chip(page):
    return page.locator("#composer").get_by_text(re.compile(r"^Replying to "))


def phone_of(live_app, conversation_id: int) -> str:
    with live_app.app_context():
        phone = db.session.get(Conversation, conversation_id).phone
        db.session.remove()
    return phone


def count_messages(live_app, body: str) -> int:
    with live_app.app_context():
        count = db.session.scalar(select(func.count(Message.id)).where(Message.body == body))
        db.session.remove()
    return count


def is_send_post(response) -> bool:
    return response.request.method == "POST" and response.url.endswith("/messages")


# --- the inbox -----------------------------------------------------------------------------------------


def test_filters_narrow_the_list_in_place_and_update_the_url(page, live_server, live_app, seeded, shot, page_errors):
    with live_app.app_context():
        now = utcnow()
        alex = db.session.scalar(select(User).where(User.email == seeded.agent_email))
        assign(db.session.get(Conversation, seeded.open_id), alex, alex, now=now)
        camila = db.session.scalar(select(Conversation).where(Conversation.name == CAMILA))
        set_status(camila, alex, ConversationStatus.RESOLVED, now=now)
        valentina = db.session.scalar(select(Conversation).where(Conversation.name == VALENTINA))
        valentina.assistant_paused_at, valentina.assistant_paused_by = now, alex
        db.session.commit()
        db.session.remove()
    everyone_open = [seeded.open_name, VALENTINA, JOAQUIN, MATIAS, seeded.closed_name]

    sign_in(page, live_server, seeded.agent_email)
    expect_rows(page, everyone_open)
    mark_page(page)

    def choose(label: str, option: str, url_part: str, names: list[str]) -> None:
        filter_select(page, label).select_option(label=option)
        expect(page).to_have_url(re.compile(re.escape(url_part)))
        expect_rows(page, names)
        assert_not_reloaded(page)

    choose("Show", "Mine", "scope=mine", [seeded.open_name])
    choose("Show", "Unassigned", "scope=unassigned", [VALENTINA, JOAQUIN, MATIAS, seeded.closed_name])
    choose("Show", "All", "scope=all", everyone_open)
    choose("Window", "Closed", "window=closed", [seeded.closed_name])
    choose("Window", "Closing", "window=closing", [MATIAS])
    choose("Window", "No inbound yet", "window=unknown", [JOAQUIN])
    choose("Window", "Open", "window=open", [seeded.open_name, VALENTINA])
    choose("Window", "Any window", "window=&", everyone_open)
    choose("Status", "Resolved", "status=resolved", [CAMILA])
    choose("Status", "Open", "status=open", everyone_open)
    # Soonest-closing first; closed windows after the open ones, then customers who never wrote.
    by_closing = [MATIAS, VALENTINA, seeded.open_name, seeded.closed_name, JOAQUIN]
    choose("Sort", "Window closes soonest", "sort=closing_soon", by_closing)

    page.get_by_label("Assistant paused").check()
    expect(page).to_have_url(re.compile(r"paused=y"))
    expect_rows(page, [VALENTINA])
    assert_not_reloaded(page)
    expect(inbox_row(page, VALENTINA)).to_contain_text("Assistant paused")
    shot(page, "filters-paused-closing-soon")

    page.get_by_label("Assistant paused").uncheck()
    expect(page).not_to_have_url(re.compile(r"paused="))
    expect_rows(page, by_closing)
    assert_not_reloaded(page)

    # The URL is the state: loading it again shows the same filters and list.
    page.reload()
    expect(filter_select(page, "Sort")).to_have_value("closing_soon")
    expect_rows(page, by_closing)
    assert page_errors == []


@pytest.mark.parametrize(
    ("query", "expected", "why"),
    [
        ("valentina", [VALENTINA], "name, any case"),
        ("+54 9 11 5555", [JOAQUIN], "phone digits, typed with spaces and a plus"),
        ("cobraron dos veces", [CAMILA], "message text"),
    ],
    ids=["name", "phone", "text"],
)
def test_search_finds_by_name_phone_and_message_text(
    page, live_server, seeded, shot, page_errors, query, expected, why
):
    sign_in(page, live_server, seeded.agent_email)
    expect(inbox_rows(page)).to_have_count(6)
    mark_page(page)
    page.get_by_label("Search").fill(query)
    expect_rows(page, expected, timeout=SEARCH_WITHIN)
    expect(page).to_have_url(re.compile(r"[?&]q="))
    assert_not_reloaded(page)
    expect(page.get_by_label("Search")).to_have_value(query)
    shot(page, f"search-{why.split(',')[0].replace(' ', '-')}")

    page.get_by_label("Search").fill("zzz no such customer")
    expect(page.get_by_text("No conversations match.")).to_be_visible(timeout=SEARCH_WITHIN)
    expect(page.get_by_role("link", name="Clear the filters")).to_be_visible()
    assert page_errors == []


def test_a_customer_message_arrives_at_the_top_keeping_the_search_and_the_focus(
    page, live_server, live_app, seeded, shot, page_errors
):
    sign_in(page, live_server, seeded.agent_email)
    search = page.get_by_label("Search")
    search.fill("pedido")  # only Valentina talked about an order so far
    expect_rows(page, [VALENTINA], timeout=SEARCH_WITHIN)
    mark_page(page)
    page.get_by_role("heading", name="Inbox", level=1).click()  # leave the search box, as an agent would
    page.keyboard.press("j")
    expect(inbox_row(page, VALENTINA)).to_be_focused()

    newcomer = "Rocío Díaz"
    with live_app.app_context():
        customer_says("+56 9 5550 1234", "Hola, ¿dónde está mi pedido 50110?", name=newcomer, now=utcnow())
        db.session.remove()

    expect(inbox_rows(page).first).to_contain_text(newcomer, timeout=ARRIVAL_WITHIN)
    expect_rows(page, [newcomer, VALENTINA])
    expect(inbox_rows(page).first).to_contain_text("Window open")
    expect(search).to_have_value("pedido")
    expect(inbox_row(page, VALENTINA)).to_be_focused()
    expect(page).to_have_url(re.compile(r"q=pedido"))
    assert_not_reloaded(page)
    shot(page, "live-arrival")

    # The next poll must not disturb anything either.
    with page.expect_response(lambda r: "q=pedido" in r.url and r.request.method == "GET"):
        pass
    expect(inbox_row(page, VALENTINA)).to_be_focused()
    expect(search).to_have_value("pedido")
    assert page_errors == []


# --- a conversation ------------------------------------------------------------------------------------


def test_quoting_a_message_and_following_the_quote_back(page, live_server, live_app, seeded, shot, page_errors):
    # A long thread, so that the original message is far above the reply.
    phone = phone_of(live_app, seeded.open_id)
    with live_app.app_context():
        for n in range(1, 9):
            customer_says(phone, f"Otra pregunta, la número {n}", now=utcnow())
        db.session.remove()

    sign_in(page, live_server, seeded.agent_email)
    open_conversation(page, seeded.open_name)
    mark_page(page)
    original = thread_message(page, CUSTOMER_TEXT)
    original_id = original.get_attribute("id")
    assert re.fullmatch(r"message-\d+", original_id or ""), original_id

    original.get_by_role("link", name="Reply to this message").click()
    expect(quote_chip(page)).to_have_text(f"Replying to {seeded.open_name}: “{CUSTOMER_TEXT}”")
    page.keyboard.press("Escape")
    expect(quote_chip(page)).to_have_count(0)
    expect(page.get_by_role("link", name="Remove quote")).to_have_count(0)
    assert_not_reloaded(page)

    original.get_by_role("link", name="Reply to this message").click()
    expect(quote_chip(page)).to_be_visible()
    reply = "Claro, Daniela: te ayudo con tu primera pregunta."
    message_field(page).fill(reply)
    shot(page, "quote-chip")
    send_button(page).click()

    sent = thread_message(page, reply)
    expect(sent.get_by_text("Sent", exact=True)).to_be_visible()
    quote = sent.get_by_role("link", name=re.compile(re.escape(CUSTOMER_TEXT)))
    expect(quote).to_be_visible()
    body = sent.get_by_text(reply, exact=True)
    assert quote.bounding_box()["y"] + quote.bounding_box()["height"] <= body.bounding_box()["y"] + 1, (
        "the quote is not rendered above the reply"
    )
    expect(quote_chip(page)).to_have_count(0)
    original = page.locator("#" + original_id)
    expect(original).not_to_be_in_viewport()  # the thread shows the newest messages
    assert_not_reloaded(page)

    quote.click()
    expect(page).to_have_url(re.compile(re.escape("#" + original_id) + "$"))
    assert page.evaluate("location.hash") == "#" + original_id
    expect(original).to_be_in_viewport()
    expect(page.locator(f"#{original_id}:target")).to_have_count(1)
    expect(original).to_have_css("outline-style", "solid")  # the :target highlight
    assert_not_reloaded(page)
    shot(page, "quote-followed")

    with live_app.app_context():
        message = db.session.scalar(select(Message).where(Message.body == reply))
        assert message.quoted_message_id == int(original_id.removeprefix("message-"))
        db.session.remove()
    assert page_errors == []


def test_pausing_the_assistant_or_leaving_it_on(page, live_server, live_app, seeded, shot, page_errors):
    sign_in(page, live_server, seeded.agent_email)
    open_conversation(page, seeded.open_name)
    pause = page.get_by_label("Pause assistant")
    expect(pause).to_be_checked()
    expect(page.get_by_text(ASSISTANT_ACTIVE)).to_be_visible()
    paused_text = "Hola Daniela, desde aquí te atiendo yo."
    message_field(page).fill(paused_text)
    send_button(page).click()
    expect(thread_message(page, paused_text).get_by_text("Sent", exact=True)).to_be_visible()
    paused_by = re.compile(rf"Paused by {re.escape(seeded.agent_name)}\b")
    expect(page.locator("#composer").get_by_text(paused_by)).to_be_visible()
    expect(page.get_by_text(ASSISTANT_ACTIVE)).to_have_count(0)
    expect(thread_items(page).filter(has_text="paused the AI assistant")).to_be_visible()
    expect(pause).to_be_checked()
    shot(page, "pause-on")

    page.get_by_role("link", name="← Inbox").click()
    expect_page(page, "Inbox")
    expect(inbox_row(page, seeded.open_name)).to_contain_text("Assistant paused")
    open_conversation(page, VALENTINA)
    pause.uncheck()
    active_text = "Hola Valentina, reviso lo del courier y te escribo."
    message_field(page).fill(active_text)
    send_button(page).click()
    expect(thread_message(page, active_text).get_by_text("Sent", exact=True)).to_be_visible()
    expect(page.get_by_text(ASSISTANT_ACTIVE)).to_be_visible()
    expect(page.locator("#composer").get_by_text(re.compile(r"Paused by"))).to_have_count(0)
    expect(pause).not_to_be_checked()
    expect(thread_items(page).filter(has_text="paused the AI assistant")).to_have_count(0)
    shot(page, "pause-off")

    with live_app.app_context():
        daniela = db.session.get(Conversation, seeded.open_id)
        valentina = db.session.scalar(select(Conversation).where(Conversation.name == VALENTINA))
        assert daniela.assistant_paused_at is not None
        assert daniela.assistant_paused_by.name == seeded.agent_name
        assert valentina.assistant_paused_at is None
        assert db.session.scalar(select(Message).where(Message.body == active_text)).pause_assistant is False
        db.session.remove()
    assert page_errors == []


def test_sending_outside_the_window_needs_a_reason_and_a_deliberate_click(
    page, live_server, live_app, seeded, shot, page_errors
):
    sign_in(page, live_server, seeded.agent_email)
    open_conversation(page, seeded.closed_name)
    mark_page(page)
    text = "Hola Tomás, ¿todavía necesitas ayuda?"
    field = message_field(page)
    field.fill(text)
    field.press("Enter")
    expect(page.get_by_role("alert").filter(has_text="Outside the 24-hour window.")).to_be_visible()
    send_anyway = page.get_by_role("button", name="Send anyway")
    expect(send_anyway).to_be_visible()
    # The focus stays in the message box: a second Enter asks again, it never sends an override.
    expect(field).to_be_focused()
    field.press("Enter")
    expect(page.get_by_role("alert").filter(has_text="Outside the 24-hour window.")).to_be_visible()
    assert count_messages(live_app, text) == 0

    send_anyway.click()  # without a reason
    expect(page.get_by_text("Say why (a few words)")).to_be_visible()
    assert count_messages(live_app, text) == 0

    page.get_by_label("Why send free text anyway?").fill("Me pidió que le escribiera hoy")
    page.get_by_role("button", name="Send anyway").click()
    sent = thread_message(page, text)
    expect(sent.get_by_text(OVERRIDE)).to_be_visible()
    expect(thread_items(page).filter(has_text="sent outside the 24h window")).to_contain_text(
        "Me pidió que le escribiera hoy"
    )
    assert_not_reloaded(page)
    shot(page, "outside-window-override")

    with live_app.app_context():
        message = db.session.scalar(select(Message).where(Message.body == text))
        assert message.window_override is True
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.kind == AuditKind.WINDOW_OVERRIDE)).all()
        assert [(event.message_id, event.details["reason"]) for event in events] == [
            (message.id, "Me pidió que le escribiera hoy")
        ]
        db.session.remove()
    assert page_errors == []


def test_a_send_refused_for_the_closed_window_offers_a_template_not_a_retry(
    page, live_server, live_app, seeded, shot, page_errors
):
    sign_in(page, live_server, seeded.agent_email)
    open_conversation(page, CAMILA)
    mark_page(page)
    text = "Hola Camila, ya pedimos la devolución del cobro duplicado."
    message_field(page).fill(text)
    page.get_by_label("Why send free text anyway?").fill("Seguimiento del reclamo")
    page.get_by_role("button", name="Send anyway").click()

    failed = thread_message(page, text)
    expect(failed.get_by_text("Failed", exact=True)).to_be_visible()
    alert = page.get_by_role("alert").filter(has_text="Not sent")
    expect(alert).to_contain_text("the 24-hour window has closed")
    expect(alert.get_by_role("link", name="send a template")).to_be_visible()
    expect(message_field(page)).to_have_value(text)
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    assert_not_reloaded(page)
    shot(page, "failed-offers-template")

    # Sending it anyway once more is a new override, and a double click still stores one message.
    page.get_by_label("Why send free text anyway?").fill("Insisto, lo pidió el cliente")
    with page.expect_response(is_send_post):
        page.get_by_role("button", name="Send anyway").dblclick()
    expect(thread_message(page, text)).to_have_count(2)
    page.wait_for_load_state("networkidle")  # let a second request, if any, finish and swap
    expect(thread_message(page, text)).to_have_count(2)
    assert count_messages(live_app, text) == 2
    assert page_errors == []


def test_assigning_resolving_and_reopening(page, live_server, live_app, seeded, colleague, shot, page_errors):
    sign_in(page, live_server, seeded.agent_email)
    open_conversation(page, seeded.open_name)
    mark_page(page)
    header = page.locator(".conversation-header")
    expect(header.get_by_text("Unassigned", exact=True)).to_be_visible()

    page.get_by_role("button", name="Assign to me").click()
    expect(header.get_by_text(f"Assigned to {seeded.agent_name}")).to_be_visible()
    expect(thread_items(page).filter(has_text=f"assigned the conversation to {seeded.agent_name}")).to_be_visible()
    expect(page.get_by_role("button", name="Assign to me")).to_have_count(0)
    expect(page.get_by_label("Assign to", exact=True)).to_have_value(re.compile(r"^\d+$"))

    page.get_by_label("Assign to", exact=True).select_option(label=COLLEAGUE)
    expect(header.get_by_text(f"Assigned to {COLLEAGUE}")).to_be_visible()
    expect(thread_items(page).filter(has_text=f"assigned the conversation to {COLLEAGUE}")).to_be_visible()
    expect(page.get_by_role("button", name="Assign to me")).to_be_visible()

    page.get_by_role("button", name="Mark resolved").click()
    expect(header.get_by_text("✓ Resolved", exact=True)).to_be_visible()
    expect(thread_items(page).filter(has_text="marked it resolved")).to_be_visible()
    reopen = page.get_by_role("button", name="Reopen")
    expect(reopen).to_be_visible()
    shot(page, "assignment-resolved")
    reopen.click()
    expect(thread_items(page).filter(has_text="reopened it")).to_be_visible()
    expect(page.get_by_role("button", name="Mark resolved")).to_be_visible()
    expect(header.get_by_text("✓ Resolved", exact=True)).to_have_count(0)

    page.get_by_role("button", name="Assign to me").click()
    expect(header.get_by_text(f"Assigned to {seeded.agent_name}")).to_be_visible()
    assert_not_reloaded(page)
    shot(page, "assignment-events")

    page.get_by_role("link", name="← Inbox").click()
    expect_page(page, "Inbox")
    filter_select(page, "Show").select_option(label="Mine")
    expect(page).to_have_url(re.compile(r"scope=mine"))
    expect_rows(page, [seeded.open_name])
    expect(inbox_row(page, seeded.open_name)).to_contain_text(seeded.agent_name)
    shot(page, "assignment-mine")

    with live_app.app_context():
        kinds = db.session.scalars(
            select(AuditEvent.kind).where(AuditEvent.conversation_id == seeded.open_id).order_by(AuditEvent.id)
        ).all()
        db.session.remove()
    assert kinds == [AuditKind.ASSIGNED, AuditKind.ASSIGNED, AuditKind.RESOLVED, AuditKind.REOPENED, AuditKind.ASSIGNED]
    assert page_errors == []


def test_a_lead_creates_quick_replies_and_an_agent_inserts_one(
    page, live_server, live_app, seeded, colleague, shot, page_errors
):
    replies = {
        "envio-demora": "Tu pedido viene con retraso; te aviso apenas lo despachen.",
        "envio-gratis": "El envío es gratis en compras sobre $30.000.",
    }
    sign_in(page, live_server, colleague)
    page.get_by_role("link", name="Quick replies").click()
    expect_page(page, "Quick replies")
    for shortcut, body in replies.items():
        page.get_by_role("textbox", name="Shortcut").fill(shortcut)
        page.get_by_label("Text", exact=True).fill(body)
        page.get_by_role("button", name="Save quick reply").click()
        expect(page.get_by_role("cell", name=f"/{shortcut}", exact=True)).to_be_visible()
    expect(page.get_by_role("textbox", name="Shortcut")).to_have_value("")
    shot(page, "quick-replies-page")

    page.get_by_role("link", name="Inbox", exact=True).click()
    expect_page(page, "Inbox")
    open_conversation(page, VALENTINA)
    mark_page(page)
    field = message_field(page)
    field.click()
    field.press_sequentially("/envio")
    listbox = page.get_by_role("listbox", name="Quick replies")
    expect(listbox).to_be_visible()
    # "\/": Playwright sends a pattern to the browser as /…/, and does not escape a slash in it.
    first = listbox.get_by_role("option", name=re.compile(r"^\/envio-demora"))
    second = listbox.get_by_role("option", name=re.compile(r"^\/envio-gratis"))
    expect(first).to_have_attribute("aria-selected", "true")
    field.press("ArrowDown")
    expect(second).to_have_attribute("aria-selected", "true")
    expect(first).to_have_attribute("aria-selected", "false")
    shot(page, "quick-replies-listbox")
    field.press("Enter")
    expect(field).to_have_value(replies["envio-gratis"])
    expect(listbox).to_be_hidden()
    expect(field).to_be_focused()
    expect(thread_message(page, replies["envio-gratis"])).to_have_count(0)  # inserted, not sent
    expect(page.get_by_role("status").filter(has_text="Sent:")).to_have_count(0)
    expect(page.locator("#message-counter")).to_have_text(f"{len(replies['envio-gratis'])} / 4096")
    assert_not_reloaded(page)
    shot(page, "quick-replies-inserted")
    assert count_messages(live_app, replies["envio-gratis"]) == 0

    # Narrowing: "/envio-d" leaves one option; Tab inserts it too.
    field.fill("")
    field.press_sequentially("/envio-d")
    expect(listbox.get_by_role("option")).to_have_count(1)
    field.press("Tab")
    expect(field).to_have_value(replies["envio-demora"])
    assert count_messages(live_app, replies["envio-demora"]) == 0
    assert page_errors == []


def test_the_keyboard_drives_the_inbox_and_the_composer(page, live_server, live_app, seeded, shot, page_errors):
    phone = phone_of(live_app, seeded.open_id)
    later = "Y otra cosa: ¿puedo cambiar la talla?"
    with live_app.app_context():
        customer_says(phone, later, now=utcnow())  # the assistant answers after it
        db.session.remove()

    sign_in(page, live_server, seeded.agent_email)
    expect(inbox_rows(page)).to_have_count(6)
    first, second = inbox_rows(page).nth(0), inbox_rows(page).nth(1)
    expect(first).to_contain_text(seeded.open_name)
    page.keyboard.press("j")
    expect(first).to_be_focused()
    page.keyboard.press("j")
    expect(second).to_be_focused()
    page.keyboard.press("k")
    expect(first).to_be_focused()
    shot(page, "keyboard-inbox-focus")
    page.keyboard.press("Enter")
    expect_page(page, seeded.open_name)

    page.go_back()
    expect(page.get_by_role("heading", name="Inbox", level=1)).to_be_visible()
    page.keyboard.press("/")
    expect(page.get_by_label("Search")).to_be_focused()
    expect(page.get_by_label("Search")).to_have_value("")

    open_conversation(page, seeded.open_name)
    expect(message_field(page)).to_be_focused()  # ready to type
    expect(thread_message(page, CANNED_ANSWERS[0])).to_be_visible()  # the assistant spoke last
    # Single-key shortcuts do nothing while typing: the agent clicks an empty spot of the thread first.
    page.get_by_label("Messages", exact=True).click(position={"x": 4, "y": 4})
    expect(message_field(page)).not_to_be_focused()
    page.keyboard.press("r")
    expect(quote_chip(page)).to_have_text(f"Replying to {seeded.open_name}: “{later}”")

    page.get_by_label("Messages", exact=True).click(position={"x": 4, "y": 4})
    page.keyboard.press("?")
    help_dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(help_dialog).to_be_visible()
    shot(page, "keyboard-help")
    page.keyboard.press("Escape")
    expect(help_dialog).to_be_hidden()
    expect(quote_chip(page)).to_be_visible()  # Esc closed the help, not the quote

    field = message_field(page)
    field.click()
    field.press_sequentially("Primera línea")
    field.press("Shift+Enter")
    field.press_sequentially("segunda línea")
    expect(field).to_have_value("Primera línea\nsegunda línea")
    expect(thread_message(page, "Primera línea")).to_have_count(0)
    field.press("Enter")
    sent = thread_message(page, "Primera línea")
    expect(sent.get_by_text("Sent", exact=True)).to_be_visible()
    expect(sent.locator(".message-body")).to_have_text("Primera línea\nsegunda línea")
    expect(sent.get_by_role("link", name=re.compile(re.escape(later)))).to_be_visible()
    expect(field).to_have_value("")
    shot(page, "keyboard-sent")
    assert count_messages(live_app, "Primera línea\nsegunda línea") == 1
    assert page_errors == []


def test_a_reply_shows_as_sending_at_once(page, live_server, live_app, seeded, shot, page_errors):
    sign_in(page, live_server, seeded.agent_email)
    open_conversation(page, seeded.open_name)
    # Hold the send request in the browser until "Sending…" has been seen. (A route handler that
    # blocked on a threading.Event would deadlock: sync Playwright runs it on the test's own thread.)
    held = []
    send_url = f"{live_server}/conversations/{seeded.open_id}/messages"
    page.route(send_url, lambda route: held.append(route))
    text = "Un momento, lo reviso con bodega."
    message_field(page).fill(text)
    send_button(page).click()
    pending = page.locator("#pending-sends").get_by_role("listitem").filter(has_text=text)
    expect(pending.get_by_text("Sending…")).to_be_visible()
    expect(send_button(page)).to_be_disabled()
    assert len(held) == 1 and count_messages(live_app, text) == 0, "the request was not held"
    shot(page, "sending")

    held[0].continue_()
    expect(thread_message(page, text).get_by_text("Sent", exact=True)).to_be_visible()
    expect(page.get_by_text("Sending…")).to_have_count(0)
    expect(thread_message(page, text)).to_have_count(1)
    page.unroute(send_url)
    assert count_messages(live_app, text) == 1
    assert page_errors == []


def test_the_sending_bubble_survives_a_poll_of_the_thread(page, live_server, seeded, shot, page_errors):
    """Vambe may take longer than the 3 s between polls; the bubble must not vanish meanwhile."""
    sign_in(page, live_server, seeded.agent_email)
    open_conversation(page, seeded.open_name)
    held = []
    send_url = f"{live_server}/conversations/{seeded.open_id}/messages"
    page.route(send_url, lambda route: held.append(route))
    text = "Esto tarda un poco en salir."
    message_field(page).fill(text)
    send_button(page).click()
    expect(page.get_by_text("Sending…")).to_be_visible()
    with page.expect_response(lambda r: "/live" in r.url):
        pass
    with page.expect_response(lambda r: "/live" in r.url):
        pass  # by now the first poll's answer has been swapped in
    sending_after_poll = page.get_by_text("Sending…").count()
    shot(page, "sending-after-poll")
    held[0].continue_()
    expect(thread_message(page, text).get_by_text("Sent", exact=True)).to_be_visible()
    page.unroute(send_url)
    assert sending_after_poll == 1, "a poll of the thread removed the “Sending…” bubble"
    assert page_errors == []


def test_the_console_works_without_javascript(no_js_page, live_server, live_app, seeded, shot):
    page = no_js_page
    sign_in(page, live_server, seeded.agent_email)
    open_conversation(page, seeded.open_name)
    text = "Hola Daniela, te escribo sin JavaScript."
    message_field(page).fill(text)
    send_button(page).click()
    sent = thread_message(page, text)
    expect(sent).to_be_visible()
    expect(sent.get_by_text("Sent", exact=True)).to_be_visible()
    expect(page).to_have_url(re.compile(r"/conversations/\d+#message-\d+$"))
    expect(message_field(page)).to_have_value("")
    shot(page, "no-javascript-sent")
    with live_app.app_context():
        message = db.session.scalar(select(Message).where(Message.body == text))
        assert message.author == Author.AGENT and message.outcome == Outcome.SENT
        db.session.remove()


# --- how it looks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1440x900", "360x740"])
def test_inbox_and_conversation_screenshots(page, live_server, live_app, seeded, shot, page_errors):
    with live_app.app_context():
        alex = db.session.scalar(select(User).where(User.email == seeded.agent_email))
        assign(db.session.get(Conversation, seeded.open_id), alex, alex, now=utcnow() - timedelta(minutes=1))
        db.session.remove()
    sign_in(page, live_server, seeded.agent_email)
    expect(inbox_rows(page)).to_have_count(6)
    overflow = {"inbox": horizontal_overflow(page)}
    assert stretched_checkboxes(page) == []
    shot(page, "inbox")

    open_conversation(page, VALENTINA)
    expect(thread_items(page).filter(has_text="Pero el courier dice")).to_be_visible()
    thread_message(page, "Pero el courier dice").get_by_role("link", name="Reply to this message").click()
    expect(quote_chip(page)).to_be_visible()
    message_field(page).fill("Hola Valentina, soy Alex. Ya estoy revisando con el courier.")
    overflow["conversation"] = horizontal_overflow(page)
    shot(page, "conversation")
    assert page_errors == []
    assert all(pixels <= 0 for pixels in overflow.values()), f"content wider than the viewport: {overflow}"
