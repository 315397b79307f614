"""Outside the window, a template: the closed conversation offers the account's approved templates first, the
agent fills one in while the preview shows what the customer will read, and it goes out and shows in the thread."""

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Message
from tests.browser.conftest import DESKTOP, PHONE
from tests.browser.pages import assert_not_reloaded, mark_page, open_conversation, sign_in, thread_message

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips (or fails under CI) with the reason
    expect = None

pytestmark = pytest.mark.browser

EXPECTED = "Hola Tomás, te escribimos por tu pedido A-4821. Responde este mensaje y seguimos la conversación."


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1440", "360"])
def test_a_closed_window_offers_templates_and_one_is_sent_as_previewed(
    page, live_server, live_app, seeded, screenshot, page_errors, viewport
):
    sign_in(page, live_server, seeded.agent_email)
    open_conversation(page, seeded.closed_name)
    mark_page(page)
    panel = page.get_by_role("region", name="Send a template")
    expect(panel).to_be_visible()
    # The template path comes before the free-form box, and there is one warning about the window.
    assert panel.bounding_box()["y"] < page.get_by_label("Message", exact=True).bounding_box()["y"]
    expect(page.locator(".alert-warning")).to_have_count(1)
    screenshot(page, "template-1-offered")

    panel.get_by_label("Template").select_option(label="seguimiento_pedido (es, utility)")
    first = panel.get_by_label("Value for {{1}}")
    expect(first).to_be_visible()
    preview = panel.locator("[data-template-preview]")
    expect(preview).to_contain_text("Hola {{1}}, te escribimos por tu pedido {{2}}.")
    first.fill("Tomás")
    panel.get_by_label("Value for {{2}}").fill("A-4821")
    expect(preview).to_have_text(EXPECTED)
    expect(panel).to_contain_text("does not pause the AI assistant")
    screenshot(page, "template-2-filled")

    panel.get_by_role("button", name="Send template").click()
    sent = thread_message(page, EXPECTED)
    expect(sent).to_be_visible()
    expect(sent).to_contain_text("Template: seguimiento_pedido")
    expect(sent.get_by_text("Sent", exact=True)).to_be_visible()
    assert_not_reloaded(page)
    screenshot(page, "template-3-sent")

    with live_app.app_context():
        [message] = db.session.scalars(select(Message).where(Message.body == EXPECTED)).all()
        assert message.template_name == "seguimiento_pedido" and message.conversation_id == seeded.closed_id
        db.session.remove()
    assert page_errors == []
