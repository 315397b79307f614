"""A draft survives the session ending under it, and the agent lands back on the conversation they were on."""

import pytest

from tests.browser.pages import expect_page, message_field, open_conversation, send_button, sign_in, thread_message
from tests.conftest import TEST_PASSWORD

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips (or fails under CI) with the reason
    expect = None

pytestmark = pytest.mark.browser

DRAFT = "Hola Camila, estoy revisando tu pedido y te confirmo en"


def test_a_draft_survives_sign_out_in_another_tab_and_goes_once_sent(
    page, new_context, live_server, seeded, screenshot, page_errors
):
    sign_in(page, live_server, seeded.agent_email)
    open_conversation(page, seeded.open_name)
    message_field(page).fill(DRAFT)

    # The same browser, another tab: signing out there ends the session this tab is using.
    other_tab = page.context.new_page()
    other_tab.goto(live_server + "/")
    other_tab.get_by_role("button", name="Sign out").click()
    expect_page(other_tab, "Sign in")
    other_tab.close()

    # The conversation's live update finds the session gone and sends this tab to the sign-in page.
    expect(page.get_by_role("heading", name="Sign in", level=1)).to_be_visible(timeout=15_000)
    page.get_by_label("Email").fill(seeded.agent_email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    expect_page(page, seeded.open_name)  # back on the conversation, not on its live-update URL
    assert page.url.endswith(f"/conversations/{seeded.open_id}")
    expect(message_field(page)).to_have_value(DRAFT)
    screenshot(page, "draft-restored")

    send_button(page).click()
    expect(thread_message(page, DRAFT)).to_be_visible()
    expect(message_field(page)).to_have_value("")
    page.reload()
    expect(message_field(page)).to_have_value("")  # sent: the draft is gone
    assert page_errors == []
