"""Locators, steps and checks that several browser tests share."""

import re

from tests.conftest import TEST_PASSWORD

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips (or fails under CI) with the reason
    expect = None


def expect_page(page, heading: str) -> None:
    """Wait for the page a click led to: its heading, then its ``load`` event. The scripts are deferred,
    so a key pressed as soon as the heading shows could reach a page whose shortcuts are not bound yet."""
    expect(page.get_by_role("heading", name=heading, level=1)).to_be_visible()
    page.wait_for_load_state("load")


def sign_in(page, base_url: str, email: str, password: str = TEST_PASSWORD) -> None:
    page.goto(base_url + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect_page(page, "Inbox")


def inbox_row(page, name: str):
    """A conversation's row; its accessible name may start with "Unread: "."""
    return page.locator("#conversation-list").get_by_role("link", name=re.compile(r"\b" + re.escape(name) + r"\b"))


def open_conversation(page, name: str) -> None:
    inbox_row(page, name).click()
    expect_page(page, name)


def message_field(page):
    return page.get_by_label("Message", exact=True)


def send_button(page):
    return page.get_by_role("button", name="Send", exact=True)


def thread_items(page):
    return page.get_by_label("Messages", exact=True).get_by_role("listitem")


def thread_message(page, text: str):
    return thread_items(page).filter(has_text=text)


def mark_page(page) -> None:
    """Leave a variable on the window: it survives htmx swaps but not a full page load."""
    page.evaluate("window.__marker = 'still the same page'")


def assert_not_reloaded(page) -> None:
    assert page.evaluate("window.__marker") == "still the same page", "the page was reloaded"


def horizontal_overflow(page) -> int:
    """How many CSS pixels the page is wider than the viewport (0 when nothing sticks out)."""
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def stretched_checkboxes(page) -> list[str]:
    """Names of checkboxes drawn wider than a tick box (a width: 100% rule caught them once at 360 px)."""
    return page.evaluate(
        """() => [...document.querySelectorAll("input[type=checkbox]")]
            .filter(box => box.getBoundingClientRect().width > 32)
            .map(box => box.name)"""
    )
