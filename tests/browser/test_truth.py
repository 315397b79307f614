"""Handoff truth in the browser: a send WhatsApp failed after Vambe accepted it reaches its agent; a lead works the
review queue and scores a conversation; an admin reads the health panel and reconciles."""

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app import vambe_client
from app.clock import utcnow
from app.domain.reconciling import run_reconciliation, settings_from
from app.extensions import db
from app.models import Author, Conversation, Message, Role, User
from app.sandbox.customers import customer_says, whatsapp_reports
from tests import factories
from tests.browser.pages import expect_page, message_field, open_conversation, send_button, sign_in, thread_message

pytestmark = pytest.mark.browser


def scheduled_reconciliation(live_app) -> None:
    """What `flask reconcile` does on its schedule."""
    with live_app.app_context():
        run_reconciliation(vambe_client(), now=utcnow(), clock=utcnow, wait=None, **settings_from(live_app.config))


def test_an_agent_learns_that_a_send_failed_after_vambe_accepted_it(page, live_server, live_app, seeded, screenshot):
    sign_in(page, live_server, seeded.agent_email)
    open_conversation(page, seeded.open_name)
    message_field(page).fill("Te envío el enlace de pago en un momento")
    send_button(page).click()
    expect(thread_message(page, "Te envío el enlace de pago")).to_contain_text("Sent")
    page.get_by_role("link", name="Inbox").first.click()
    expect_page(page, "Inbox")

    with live_app.app_context():
        send = db.session.scalar(select(Message).where(Message.body.startswith("Te envío el enlace de pago")))
        whatsapp_reports(send.provider_message_id, "failed")  # WhatsApp could not deliver it
    scheduled_reconciliation(live_app)

    count = page.get_by_role("link", name=re.compile("My messages that failed after sending"))
    expect(count).to_contain_text("1")  # the header's poll brings it, no reload
    screenshot(page, "late-failure-header")
    count.click()
    expect_page(page, "My messages that failed after sending")
    expect(page.get_by_role("row").filter(has_text="Te envío el enlace de pago")).to_contain_text("131026")
    screenshot(page, "late-failure-list")
    page.get_by_role("link", name=seeded.open_name).click()
    expect_page(page, seeded.open_name)
    failed = thread_message(page, "Te envío el enlace de pago")
    expect(failed).to_contain_text("Failed after Vambe accepted it")
    expect(failed).to_contain_text("Message undeliverable")
    screenshot(page, "late-failure-thread")
    expect(page.get_by_role("link", name=re.compile("My messages that failed after sending"))).to_have_count(0)


def test_a_lead_works_the_review_queue_and_scores_a_conversation(page, live_server, live_app, seeded, screenshot):
    with live_app.app_context():
        agent = db.session.scalar(select(User).where(User.email == seeded.agent_email))
        conversation = db.session.get(Conversation, seeded.closed_id)
        conversation.assignee_id = agent.id
        reply = factories.make_agent_reply(conversation, agent, utcnow() - timedelta(hours=1), override=True)
        reply.body = "Hola Tomás, ¿sigues interesado en el plan?"
        db.session.commit()
        factories.make_user(email="lead@truth.test", name="Lina Lead", role=Role.LEAD)
    sign_in(page, live_server, "lead@truth.test")
    page.get_by_role("link", name="Review").first.click()
    page.get_by_role("link", name="Review queue").click()
    expect_page(page, "Review queue")
    row = page.locator("#pending").get_by_role("row").filter(has_text=seeded.closed_name)
    expect(row).to_contain_text("Sent outside the window (override)")
    screenshot(page, "review-queue")

    row.get_by_role("link", name=seeded.closed_name).click()
    expect_page(page, re.compile(seeded.closed_name))
    sent = thread_message(page, "sigues interesado en el plan")
    sent.locator("summary", has_text="Comment").click()
    sent.get_by_label("Comment on this message").fill("Fuera de la ventana: correspondía una plantilla.")
    sent.get_by_role("button", name="Add comment").click()
    expect(thread_message(page, "sigues interesado en el plan")).to_contain_text("correspondía una plantilla")
    page.get_by_label("4").check()
    page.get_by_label("Note").fill("Buen tono, pero debió usar la plantilla de seguimiento.")
    page.get_by_role("button", name="Mark reviewed").click()
    expect_page(page, "Review queue")
    expect(page.get_by_role("status").or_(page.locator(".flash"))).to_contain_text("4 of 5")
    page.locator("#reviewed").get_by_role("link", name=seeded.closed_name).click()
    expect(page.locator("#verdict")).to_contain_text("4 of 5")
    screenshot(page, "review-scored")


def test_an_admin_sees_what_the_webhooks_missed_and_reconciles(page, live_server, live_app, seeded, screenshot):
    with live_app.app_context():
        phone = db.session.get(Conversation, seeded.open_id).phone
        customer_says(phone, "¿Me pueden llamar hoy?", now=utcnow(), lose_webhooks=True)
        factories.make_user(email="admin@truth.test", name="Ada Admin", role=Role.ADMIN)
    sign_in(page, live_server, "admin@truth.test")
    page.goto(live_server + "/admin/health")
    expect_page(page, "Health of the connection to Vambe")
    expect(page.locator('[data-health="reconciliation"]')).to_contain_text("never")
    page.get_by_role("button", name="Reconcile now").click()
    expect_page(page, "Health of the connection to Vambe")
    expect(page.locator('[data-health="missed"] .health-figure')).to_have_text("2")
    expect(page.locator('[data-health="reconciliation"]')).to_contain_text("2 missed by webhooks")
    screenshot(page, "health-panel")
    with live_app.app_context():
        found = db.session.scalars(select(Message).where(Message.missed_by_webhook)).all()
        assert {m.author for m in found} == {Author.CUSTOMER, Author.ASSISTANT}
