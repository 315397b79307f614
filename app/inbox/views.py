from datetime import timedelta

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app import vambe_client
from app.clock import utcnow
from app.domain import conversations, handoffs
from app.domain.assigning import AssignmentRefused, assign, set_status
from app.domain.assistant import assistant_state
from app.domain.quick_replies import list_quick_replies
from app.domain.reporting import late_failures_between
from app.domain.sending import (
    NewerReply,
    OutsideWindow,
    SendRefused,
    needs_a_template,
    send_reply,
    send_template,
    settle_stuck_sends,
)
from app.domain.syncing import refresh_conversation
from app.domain.templates import templates_for
from app.domain.window import window_status
from app.extensions import db
from app.htmx import is_partial_request, render_page_or_partial
from app.i18n import gettext
from app.inbox import bp
from app.inbox.forms import AssignForm, InboxFilterForm, ReplyForm, StatusForm, TemplateForm, new_idempotency_key
from app.inputs import id_or_none, record_id
from app.models import Conversation, ConversationStatus, Message, MessageTemplate, Outcome, Role, User
from app.presenting import duration, live_version

LIVE = "inbox/_conversation_live.html"
LATE_FAILURES_SHOWN = timedelta(days=30)


def viewer() -> User:
    return current_user._get_current_object()


def conversation_or_404(conversation_id: int) -> Conversation:
    return db.get_or_404(
        Conversation,
        conversation_id,
        description=gettext(
            "There is no conversation #%(number)s. The link may be wrong or out of date.", number=conversation_id
        ),
    )


@bp.get("/")
@login_required
def index():
    form = InboxFilterForm(request.args)
    poll_args = {name: value for name, value in request.args.items() if name != "v"}
    version = live_version((conversations.inbox_state(viewer(), now=utcnow()), sorted(poll_args.items())))
    if is_partial_request() and request.args.get("v") == version:
        return "", 204  # the list this poll shows has not changed
    try:
        page = conversations.inbox_page(
            viewer(),
            form.to_filters(),
            cursor=request.args.get("after") or None,
            now=utcnow(),
            warning=current_app.config["WINDOW_WARNING"],
        )
    except conversations.InvalidCursor:
        abort(400, gettext("That page link is broken. Go back to the first page of the inbox."))
    return render_page_or_partial(
        "inbox/index.html",
        "inbox/_conversation_list.html",
        page=page,
        filter_form=form,
        poll_url=url_for("inbox.index", **poll_args, v=version),
    )


@bp.get("/alerts")
@login_required
def alerts():
    """The header's counts of who needs a human; polled, and answered 204 while they have not changed."""
    counts = handoffs.alerts_for(
        viewer(), now=utcnow(), warning=current_app.config["WINDOW_WARNING"], lead=viewer().has_role(Role.LEAD)
    )
    version = live_version(counts)
    if request.args.get("v") == version:
        return "", 204
    return render_template("inbox/_alerts.html", alerts=counts, alerts_url=url_for("inbox.alerts", v=version))


@bp.get("/late-failures")
@login_required
def late_failures():
    """The viewer's own sends that WhatsApp failed after Vambe accepted them (the header's count links here)."""
    now = utcnow()
    failures = late_failures_between(now - LATE_FAILURES_SHOWN, now, agent_id=viewer().id)
    return render_template("inbox/late_failures.html", failures=failures, days=LATE_FAILURES_SHOWN.days)


@bp.post("/take-next")
@login_required
def take_next():
    """Give the agent the conversation that has waited longest for a human."""
    try:
        conversation, handoff = handoffs.take_next(viewer(), now=utcnow())
    except handoffs.NothingWaiting as refusal:
        flash(str(refusal), "error" if refusal.raced else "info")
        return redirect(url_for("inbox.index", scope="waiting"), 303)
    waited = duration(utcnow() - handoff.requested_at)
    flash(
        gettext(
            "You took %(name)s's conversation; they had waited %(waited)s for a human.",
            name=conversation.display_name,
            waited=waited,
        ),
        "info",
    )
    return redirect(url_for("inbox.show_conversation", conversation_id=conversation.id), 303)


@bp.get("/conversations/<id:conversation_id>")
@login_required
def show_conversation(conversation_id: int):
    conversation = conversation_or_404(conversation_id)
    conversations.mark_seen(conversation, viewer(), now=utcnow())
    quote = record_id(request.args.get("quote"), "quoted message")
    return render_conversation(conversation, ReplyForm(reply_to=str(quote or "")))


@bp.get("/conversations/<id:conversation_id>/live")
@login_required
def show_live(conversation_id: int):
    conversation = conversation_or_404(conversation_id)
    settle_stuck_sends(now=utcnow(), older_than=current_app.config["STUCK_SEND_AGE"], conversation=conversation)
    if is_partial_request() and request.args.get("v") == conversation_version(conversation):
        return "", 204  # nothing this fragment shows has changed: no render, no write
    conversations.mark_seen(conversation, viewer(), now=utcnow())
    return render_conversation(conversation, ReplyForm(), partial=LIVE, live_update=is_partial_request())


@bp.post("/conversations/<id:conversation_id>/refresh")
@login_required
def refresh(conversation_id: int):
    conversation = conversation_or_404(conversation_id)
    report = refresh_conversation(vambe_client(), conversation, now=utcnow())
    return after_change(conversation, refreshed=report)


@bp.post("/conversations/<id:conversation_id>/assignee")
@login_required
def change_assignee(conversation_id: int):
    conversation = conversation_or_404(conversation_id)
    form = AssignForm()
    choice = form.assignee.data or ""
    chosen = id_or_none(choice)
    assignee = viewer() if choice == "me" else db.session.get(User, chosen) if chosen else None
    if choice not in ("", "me") and assignee is None:
        abort(422, gettext("That user does not exist."))
    try:
        assign(conversation, viewer(), assignee, now=utcnow())
    except AssignmentRefused as refusal:
        abort(422, str(refusal))
    return after_change(conversation)


@bp.post("/conversations/<id:conversation_id>/status")
@login_required
def change_status(conversation_id: int):
    conversation = conversation_or_404(conversation_id)
    form = StatusForm()
    if form.status.data not in tuple(ConversationStatus):
        abort(422, gettext("Unknown status."))
    set_status(conversation, viewer(), ConversationStatus(form.status.data), now=utcnow())
    return after_change(conversation)


@bp.get("/conversations/<id:conversation_id>/template-form")
@login_required
def template_form(conversation_id: int):
    """The form for the template chosen in the composer's picker; the whole page without htmx."""
    conversation = conversation_or_404(conversation_id)
    chosen = chosen_template(conversation, record_id(request.args.get("template"), "template"))
    if not is_partial_request():
        return render_conversation(conversation, ReplyForm(formdata=None), chosen=chosen)
    return render_template(
        "inbox/_template_form.html", conversation=conversation, chosen=chosen, template_form=TemplateForm(formdata=None)
    )


@bp.post("/conversations/<id:conversation_id>/templates")
@login_required
def send_template_view(conversation_id: int):
    conversation = conversation_or_404(conversation_id)
    form = TemplateForm()
    chosen_send = form.to_send()
    try:
        message = send_template(
            conversation,
            viewer(),
            chosen_send,
            client=vambe_client(),
            now=utcnow(),
            assign_unassigned=current_app.config["ASSIGN_ON_REPLY"],
        )
    except SendRefused as refusal:
        chosen = chosen_template(conversation, chosen_send.template_id)
        return render_conversation(
            conversation,
            ReplyForm(formdata=None),
            status=422,
            chosen=chosen,
            template_form=form,
            template_error=str(refusal),
        )
    if is_partial_request() or message.outcome == Outcome.FAILED:
        # The free-form composer is untouched by a template: a fresh one, not one read from this form.
        return render_conversation(conversation, ReplyForm(formdata=None), sent=message)
    return redirect(
        url_for("inbox.show_conversation", conversation_id=conversation.id, _anchor=f"message-{message.id}"), 303
    )


def chosen_template(conversation: Conversation, template_id: int | None) -> MessageTemplate | None:
    """The template asked for, when it is one this conversation may use."""
    return next((t for t in templates_for(conversation) if t.id == template_id), None)


@bp.post("/conversations/<id:conversation_id>/messages")
@login_required
def send(conversation_id: int):
    conversation = conversation_or_404(conversation_id)
    form = ReplyForm()
    numbers = conversations.business_numbers()
    try:
        message = send_reply(
            conversation,
            viewer(),
            form.to_reply(several_numbers=len(numbers) > 1),
            client=vambe_client(),
            now=utcnow(),
            warning=current_app.config["WINDOW_WARNING"],
            assign_unassigned=current_app.config["ASSIGN_ON_REPLY"],
        )
    except NewerReply as refusal:
        return render_conversation(conversation, form, status=409, newer_reply=refusal.message)
    except OutsideWindow as refusal:
        return render_conversation(conversation, form, status=409, outside_window=refusal)
    except SendRefused as refusal:
        return render_conversation(conversation, form, status=422, error=str(refusal))
    if is_partial_request() or message.outcome == Outcome.FAILED:
        return render_conversation(conversation, composer_after(message), sent=message)
    return redirect(
        url_for("inbox.show_conversation", conversation_id=conversation.id, _anchor=f"message-{message.id}"), 303
    )


def after_change(conversation: Conversation, **context):
    """The refreshed header and thread for htmx; the page again (post/redirect/get) without it."""
    if not is_partial_request():
        return redirect(url_for("inbox.show_conversation", conversation_id=conversation.id), 303)
    return render_conversation(conversation, ReplyForm(), partial=LIVE, **context)


def conversation_version(conversation: Conversation) -> str:
    return live_version(conversations.conversation_state(conversation, viewer(), now=utcnow()))


def composer_after(message: Message) -> ReplyForm:
    """A fresh composer; after a failed send it keeps the text so the agent can retry it."""
    kept = message.outcome == Outcome.FAILED
    return ReplyForm(
        formdata=None,
        idempotency_key=new_idempotency_key(),
        message=message.body if kept else "",
        reply_to=str(message.quoted_message_id or "") if kept else "",
        pause_assistant=message.pause_assistant,
        business_number=message.business_number_id,
    )


def handoff_context(conversation: Conversation) -> dict:
    """The open handoff, and what the AI last told the customer, so the person taking over does not repeat it."""
    handoff = handoffs.open_handoff(conversation)
    return {
        "handoff": handoff,
        "assistant_said": handoffs.last_assistant_message(conversation) if handoff else None,
    }


def render_conversation(
    conversation: Conversation,
    form: ReplyForm,
    status: int = 200,
    partial: str = "inbox/_conversation_panel.html",
    **context,
):
    shown_from = record_id(request.args.get("from"), "first message")  # "Show earlier messages" pages back
    # A send whose worker died is settled the next time anyone looks (see also `flask sends sweep`).
    settle_stuck_sends(now=utcnow(), older_than=current_app.config["STUCK_SEND_AGE"], conversation=conversation)
    numbers = conversations.business_numbers()
    form.offer_numbers(numbers, conversation)
    # A warning keeps what the agent had seen, so that "Send anyway" is recorded as the override it is.
    if not form.seen_through.data or context.get("sent"):
        form.seen_through.data = str(conversations.latest_message_id(conversation) or "")
    assign_form = AssignForm(formdata=None)
    assign_form.offer_users(conversations.active_users())
    window = window_status(conversation.last_inbound_at, utcnow(), current_app.config["WINDOW_WARNING"])
    context.setdefault("template_form", TemplateForm(formdata=None))
    # What the page's composer offers (free text, or a template first); a live update that finds the window
    # turned since then replaces it.
    offers = window.state if window.allows_free_form else "closed"
    shown = request.args.get("offers")
    shown_thread = conversations.thread(conversation, from_id=shown_from)
    response = render_page_or_partial(
        "inbox/conversation.html",
        partial,
        status=status,
        live_url=url_for(
            "inbox.show_live",
            conversation_id=conversation.id,
            v=conversation_version(conversation),
            offers=offers,
            **{"from": shown_from},
        ),
        window_turned=shown is not None and shown != offers,
        thread_url=url_for("inbox.show_conversation", conversation_id=conversation.id),
        conversation=conversation,
        thread=shown_thread,
        window=window,
        # Outside the window (or near its end) only a template reaches the customer: offer them first.
        templates=templates_for(conversation) if window.state != "open" else [],
        needs_a_template=needs_a_template,
        quoted=conversations.quotable_message(conversation, form.quoted_message_id),
        numbers=numbers,
        form=form,
        assign_form=assign_form,
        quick_replies=list_quick_replies(),
        **handoff_context(conversation),
        assistant=assistant_state(conversation),
        **context,
    )
    # After rendering: the commit would expire every message the template reads.
    conversations.acknowledge_late_failures(shown_thread, viewer(), now=utcnow())
    return response
