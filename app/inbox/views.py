from flask import current_app, redirect, request, url_for
from flask_login import current_user, login_required

from app import vambe_client
from app.clock import utcnow
from app.domain import conversations
from app.domain.sending import OutsideWindow, SendRefused, send_reply
from app.domain.syncing import refresh_conversation
from app.domain.window import window_status
from app.extensions import db
from app.htmx import is_partial_request, render_page_or_partial
from app.inbox import bp
from app.inbox.forms import ReplyForm, new_idempotency_key
from app.models import Conversation, Message, Outcome


@bp.get("/")
@login_required
def index():
    return render_page_or_partial(
        "inbox/index.html",
        "inbox/_conversation_list.html",
        summaries=conversations.list_conversations(utcnow(), current_app.config["WINDOW_WARNING"]),
    )


@bp.get("/conversations/<int:conversation_id>")
@login_required
def show_conversation(conversation_id: int):
    conversation = db.get_or_404(Conversation, conversation_id)
    form = ReplyForm(reply_to=request.args.get("quote", ""))
    return render_conversation(conversation, form)


@bp.get("/conversations/<int:conversation_id>/live")
@login_required
def show_live(conversation_id: int):
    conversation = db.get_or_404(Conversation, conversation_id)
    return render_conversation(conversation, ReplyForm(), partial="inbox/_conversation_live.html")


@bp.post("/conversations/<int:conversation_id>/refresh")
@login_required
def refresh(conversation_id: int):
    conversation = db.get_or_404(Conversation, conversation_id)
    report = refresh_conversation(vambe_client(), conversation, now=utcnow())
    if not is_partial_request():
        return redirect(url_for("inbox.show_conversation", conversation_id=conversation.id), 303)
    return render_conversation(conversation, ReplyForm(), partial="inbox/_conversation_live.html", refreshed=report)


@bp.post("/conversations/<int:conversation_id>/messages")
@login_required
def send(conversation_id: int):
    conversation = db.get_or_404(Conversation, conversation_id)
    form = ReplyForm()
    numbers = conversations.business_numbers()
    try:
        message = send_reply(
            conversation,
            current_user._get_current_object(),
            form.to_reply(several_numbers=len(numbers) > 1),
            client=vambe_client(),
            now=utcnow(),
            warning=current_app.config["WINDOW_WARNING"],
        )
    except OutsideWindow as refusal:
        return render_conversation(conversation, form, status=409, outside_window=refusal.window)
    except SendRefused as refusal:
        return render_conversation(conversation, form, status=422, error=str(refusal))
    if is_partial_request() or message.outcome == Outcome.FAILED:
        return render_conversation(conversation, composer_after(message), sent=message)
    return redirect(
        url_for("inbox.show_conversation", conversation_id=conversation.id, _anchor=f"message-{message.id}"), 303
    )


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


def render_conversation(
    conversation: Conversation,
    form: ReplyForm,
    status: int = 200,
    partial: str = "inbox/_conversation_panel.html",
    **context,
):
    numbers = conversations.business_numbers()
    form.offer_numbers(numbers, conversation)
    return render_page_or_partial(
        "inbox/conversation.html",
        partial,
        status=status,
        conversation=conversation,
        messages=conversations.thread(conversation),
        window=window_status(conversation.last_inbound_at, utcnow(), current_app.config["WINDOW_WARNING"]),
        quoted=conversations.quotable_message(conversation, form.quoted_message_id),
        numbers=numbers,
        form=form,
        **context,
    )
