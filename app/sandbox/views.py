"""The page where a newcomer plays the customer."""

from flask import abort, redirect, request, url_for
from flask_login import login_required
from sqlalchemy import select
from wtforms import SelectChoice

from app.clock import utcnow
from app.extensions import db
from app.htmx import is_partial_request, render_page_or_partial
from app.i18n import gettext
from app.sandbox import bp
from app.sandbox.customers import (
    NotABusinessMessage,
    UnknownSandboxPhone,
    customer_says,
    recent_messages,
    whatsapp_reports,
)
from app.sandbox.forms import NEW_CUSTOMER, CustomerMessageForm, WhatsAppStatusForm
from app.sandbox.state import SandboxContact


@bp.get("/")
@login_required
def index():
    return render_customer_page(CustomerMessageForm(contact=request.args.get("contact")))


@bp.post("/customer-messages")
@login_required
def send_as_customer():
    form = CustomerMessageForm()
    offer_contacts(form)
    if not form.validate_on_submit():
        return render_customer_page(form, status=422)
    chosen = db.session.get(SandboxContact, form.contact.data) if form.contact.data != NEW_CUSTOMER else None
    try:
        message = customer_says(
            chosen.phone if chosen else form.new_phone.data or "",
            form.message.data,
            name=form.new_name.data or "",
            now=utcnow(),
            ai_ignores_pause=bool(form.ai_ignores_pause.data),
            lose_webhooks=bool(form.lose_webhooks.data),
        )
    except UnknownSandboxPhone as error:
        form.new_phone.errors.append(str(error))
        return render_customer_page(form, status=422)
    if not is_partial_request():
        return redirect(url_for("sandbox.index", contact=message.contact_id), 303)
    return render_customer_page(CustomerMessageForm(formdata=None, contact=message.contact_id), delivered=True)


@bp.post("/messages/<message_id>/status")
@login_required
def report_status(message_id: str):
    """WhatsApp delivers, reads or fails a message the business sent (the sandbox's history records it)."""
    form = WhatsAppStatusForm()
    if not form.validate_on_submit():
        abort(400, gettext("Choose delivered, read or failed."))
    try:
        message = whatsapp_reports(message_id, form.status.data)
    except NotABusinessMessage as error:
        abort(404, str(error))
    if not is_partial_request():
        return redirect(url_for("sandbox.index", contact=message.contact_id), 303)
    return render_customer_page(CustomerMessageForm(contact=message.contact_id))


def offer_contacts(form: CustomerMessageForm) -> None:
    contacts = db.session.scalars(select(SandboxContact).order_by(SandboxContact.name))
    form.contact.choices = [SelectChoice(c.id, f"{c.name} (+{c.phone})") for c in contacts]
    form.contact.choices.append(SelectChoice(NEW_CUSTOMER, "A new customer…"))
    form.contact.data = form.contact.data or form.contact.choices[0].value


def render_customer_page(form: CustomerMessageForm, status: int = 200, **context):
    offer_contacts(form)
    return render_page_or_partial(
        "sandbox/index.html",
        "sandbox/_customer_message_form.html",
        status=status,
        form=form,
        recent=recent_messages(form.contact.data),
        **context,
    )
