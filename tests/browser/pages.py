"""Locators and checks that several browser tests share."""


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
