import re, threading, time
import pytest
from playwright.sync_api import expect
from sqlalchemy import select, func
from app.extensions import db
from app.models import Message

pytestmark = pytest.mark.browser

def sign_in(page, base, seeded):
    page.goto(base + "/login")
    page.get_by_label("Email").fill(seeded.agent_email)
    page.get_by_label("Password").fill(seeded.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Inbox", level=1)).to_be_visible()

def test_explore(page, live_server, live_app, seeded, database_url):
    if "postgres" in database_url: pytest.skip()
    sign_in(page, live_server, seeded)
    ev = threading.Event()
    def handler(route):
        t = time.monotonic()
        ok = ev.wait(timeout=4)
        print("handler waited", time.monotonic() - t, ok)
        route.continue_()
    page.goto(f"{live_server}/conversations/{seeded.open_id}")
    page.route("**/messages", handler)
    f = page.get_by_label("Message", exact=True)
    f.fill("Pendiente")
    page.get_by_role("button", name="Send", exact=True).click()
    t = time.monotonic()
    expect(page.get_by_text("Sending…")).to_be_visible()
    print("expect took", time.monotonic() - t)
    ev.set()
    expect(page.get_by_label("Messages", exact=True).get_by_role("listitem").filter(has_text="Pendiente").get_by_text("Sent", exact=True)).to_be_visible()
