"""Leads manage the quick replies that agents insert with "/" in the composer."""

from flask import flash, redirect, url_for
from flask_login import current_user

from app.clock import utcnow
from app.domain.quick_replies import QuickReplyRefused, delete_quick_reply, list_quick_replies, save_quick_reply
from app.extensions import db
from app.htmx import render_page_or_partial
from app.i18n import gettext
from app.inbox import bp
from app.inbox.forms import QuickReplyForm
from app.models import QuickReply, Role
from app.security import role_required

lead_only = role_required(Role.LEAD, area="Quick replies")


@bp.get("/quick-replies")
@lead_only
def list_replies():
    return render_replies(QuickReplyForm(formdata=None))


@bp.post("/quick-replies")
@lead_only
def create_reply():
    return save(QuickReplyForm(), None)


@bp.route("/quick-replies/<id:quick_reply_id>", methods=["GET", "POST"])
@lead_only
def edit_reply(quick_reply_id: int):
    quick_reply = db.get_or_404(QuickReply, quick_reply_id)
    form = QuickReplyForm(obj=quick_reply)
    if form.is_submitted():
        return save(form, quick_reply)
    return render_replies(form, editing=quick_reply)


@bp.post("/quick-replies/<id:quick_reply_id>/delete")
@lead_only
def delete_reply(quick_reply_id: int):
    quick_reply = db.get_or_404(QuickReply, quick_reply_id)
    shortcut = quick_reply.shortcut
    delete_quick_reply(quick_reply)
    flash(gettext("Deleted the quick reply /%(shortcut)s.", shortcut=shortcut))
    return redirect(url_for("inbox.list_replies"), 303)


def save(form: QuickReplyForm, quick_reply: QuickReply | None):
    if form.validate_on_submit():
        try:
            saved = save_quick_reply(
                form.shortcut.data,
                form.body.data,
                actor=current_user._get_current_object(),
                now=utcnow(),
                quick_reply=quick_reply,
            )
        except QuickReplyRefused as refusal:
            form.shortcut.errors.append(str(refusal))
        else:
            done = (
                gettext("Updated the quick reply /%(shortcut)s.")
                if quick_reply
                else gettext("Added the quick reply /%(shortcut)s.")
            )
            flash(done % {"shortcut": saved.shortcut})
            return redirect(url_for("inbox.list_replies"), 303)
    return render_replies(form, editing=quick_reply, status=422)


def render_replies(form: QuickReplyForm, editing: QuickReply | None = None, status: int = 200):
    return render_page_or_partial(
        "inbox/quick_replies.html",
        "inbox/_quick_reply_form.html",
        status=status,
        form=form,
        editing=editing,
        quick_replies=list_quick_replies(),
    )
